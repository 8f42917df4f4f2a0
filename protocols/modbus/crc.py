"""CRC-16/MODBUS (poly 0xA001 reflected, init 0xFFFF), transmitted low byte first.

Layer: pure (protocols). Modbus over Serial Line v1.02, section 6.2.2 and Appendix B.
"""

from __future__ import annotations

from typing import Final


def _table() -> tuple[int, ...]:
    out = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
        out.append(crc)
    return tuple(out)


_TABLE: Final = _table()


def crc16(data: bytes) -> int:
    """The CRC as an integer; on the wire it is sent as `crc.to_bytes(2, "little")`."""
    crc = 0xFFFF
    for byte in data:
        crc = (crc >> 8) ^ _TABLE[(crc ^ byte) & 0xFF]
    return crc


def crc_bytes(data: bytes) -> bytes:
    return crc16(data).to_bytes(2, "little")
