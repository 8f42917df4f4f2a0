"""Our codecs against the libraries we chose not to use at run time, per frame, same frames, timeit.

    .venv/bin/pip install -e '.[bench]'      # pymodbus (also a test dependency) and construct
    .venv/bin/python bench/codecs_vs_libraries.py [--number 20000]

- Modbus RTU: decoding a read-holding-registers reply of 40 registers (85 bytes) and encoding the read
  request: protocols.modbus (`parse_rtu_reply`, `build_rtu_request`) against pymodbus 3.16's
  `FramerRTU(DecodePDU)` (`handleFrame`, `buildFrame`), the pieces a driver would use without its
  transport.
- DL/T 645: a read reply of DI 00010000 (active energy import, XXXXXX.XX kWh) with 4 FE preamble bytes:
  protocols.dlt645 (`parse_frame`, `parse_read_reply`, `values`) against a construct `Struct` doing the
  same work (preamble, 68 A0..A5 68 C L DATA CS 16, checksum checked, +0x33 removed, DI, BCD value).
- A reading payload (the MQTT contract, 12 values): `msgspec.json.decode` into protocols.messages.Reading
  against pydantic's `model_validate_json` into a model with the same fields (the structural part of
  `decode_payload`; the vocabulary checks after it are the same for both).

Printed: microseconds per frame (best of 5 repeats) and the ratio. The figures are in README.md
("Dependencies"); rerun after changing a codec.
"""

from __future__ import annotations

import argparse
import sys
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from protocols.dlt645.frame import parse_frame  # noqa: E402
from protocols.dlt645.messages import parse_read_reply, read_reply  # noqa: E402
from protocols.modbus import (  # noqa: E402
    ReadRequest,
    RegistersReply,
    build_rtu_reply,
    build_rtu_request,
    parse_rtu_reply,
)

ADDRESS = "000000000001"
DI_ENERGY = 0x00010000
REGISTERS = tuple(range(1000, 1040))


def _per_frame_us(fn: Callable[[], Any], number: int) -> float:
    return min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e6


def modbus(number: int) -> list[tuple[str, float, float]]:
    from pymodbus.framer import FramerRTU
    from pymodbus.pdu import DecodePDU
    from pymodbus.pdu.register_message import ReadHoldingRegistersRequest

    reply = build_rtu_reply(1, RegistersReply(3, REGISTERS))
    client = FramerRTU(DecodePDU(is_server=False))
    used, pdu = client.handleFrame(reply, 0, 0)  # the same frame decodes to the same registers
    assert used == len(reply) and pdu is not None and list(pdu.registers) == list(REGISTERS)
    assert parse_rtu_reply(reply).reply == RegistersReply(3, REGISTERS)
    request = ReadHoldingRegistersRequest(address=0, count=40, dev_id=1)
    assert client.buildFrame(request) == build_rtu_request(1, ReadRequest(3, 0, 40))
    return [
        (
            "Modbus RTU decode (40-register reply)",
            _per_frame_us(lambda: parse_rtu_reply(reply), number),
            _per_frame_us(lambda: client.handleFrame(reply, 0, 0), number),
        ),
        (
            "Modbus RTU encode (read request)",
            _per_frame_us(lambda: build_rtu_request(1, ReadRequest(3, 0, 40)), number),
            _per_frame_us(
                lambda: client.buildFrame(ReadHoldingRegistersRequest(address=0, count=40, dev_id=1)), number
            ),
        ),
    ]


def _construct_dlt645() -> Callable[[bytes], tuple[str, int, float]]:
    from construct import Bytes, Checksum, Const, GreedyRange, Int8ul, RawCopy, Struct, this

    body = Struct(
        "start" / Const(b"\x68"),
        "address" / Bytes(6),
        "start2" / Const(b"\x68"),
        "control" / Int8ul,
        "length" / Int8ul,
        "data" / Bytes(this.length),
    )
    frame = Struct(
        "preamble" / GreedyRange(Const(b"\xfe")),
        "body" / RawCopy(body),
        "cs" / Checksum(Int8ul, lambda data: sum(data) & 0xFF, this.body.data),
        "end" / Const(b"\x16"),
    )

    def parse(raw: bytes) -> tuple[str, int, float]:
        f = frame.parse(raw).body.value
        data = bytes((b - 0x33) & 0xFF for b in f.data)
        address = f.address[::-1].hex()
        return address, int.from_bytes(data[:4], "little"), int(data[4:8][::-1].hex()) / 100

    return parse


def dlt645(number: int) -> list[tuple[str, float, float]]:
    raw = read_reply(ADDRESS, DI_ENERGY, bytes.fromhex("56341200")).encode(preamble=4)  # 1234.56 kWh

    def ours() -> tuple[str, int, float]:
        reply = parse_read_reply(parse_frame(raw), di=DI_ENERGY)
        [value] = reply.values().values()
        assert isinstance(value, float)
        return reply.address, reply.di, value

    theirs = _construct_dlt645()
    assert ours() == theirs(raw) == (ADDRESS, DI_ENERGY, 1234.56), (ours(), theirs(raw))
    return [
        (
            "DL/T 645 read reply decode",
            _per_frame_us(ours, number),
            _per_frame_us(lambda: theirs(raw), number),
        )
    ]


def payload(number: int) -> list[tuple[str, float, float]]:
    import json
    from typing import Literal

    import msgspec
    from pydantic import BaseModel, ConfigDict, StrictBool, StrictFloat, StrictInt, StrictStr

    from protocols import messages as m

    scalar = StrictBool | StrictInt | StrictFloat | StrictStr

    class Strict(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)

    class PSample(Strict):
        seq: StrictInt
        ts: StrictInt
        values: dict[str, scalar]
        quality: dict[str, Literal["good", "stale", "error"]] = {}
        source: Literal["live", "frozen", "backfilled"] = "live"

    class PReading(PSample):
        schema_: StrictInt = 1
        gw: StrictStr
        dev: StrictStr
        protocol: StrictStr = ""
        more: list[PSample] = []

    values = {f"voltage_{p}_v": 220.0 + i for i, p in enumerate("abc")}
    values |= {f"current_{p}_a": 5.0 + i for i, p in enumerate("abc")}
    values |= {"power_active_kw": 3.3, "energy_import_kwh": 1234.56, "balance_cny": 88.5}
    values |= {"frequency_hz": 50.0, "power_factor": 0.98, "relay": "closed"}
    doc = {"schema": 1, "gw": "gw-1", "dev": "m0001", "seq": 7, "ts": 1763800000000, "values": values}
    raw = json.dumps({**doc, "protocol": "dlt645"}).encode()
    praw = raw.replace(b'"schema"', b'"schema_"')  # pydantic reserves `schema` on a BaseModel
    assert msgspec.json.decode(raw, type=m.Reading).values == PReading.model_validate_json(praw).values
    return [
        (
            "reading payload decode (msgspec/pydantic)",
            _per_frame_us(lambda: msgspec.json.decode(raw, type=m.Reading), number),
            _per_frame_us(lambda: PReading.model_validate_json(praw), number),
        )
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=20000, help="calls per timing repeat")
    args = parser.parse_args()
    print(f"{'per frame, µs (best of 5)':40} {'ours':>8} {'library':>8} {'library/ours':>13}")
    for label, mine, lib in [*modbus(args.number), *dlt645(args.number), *payload(args.number)]:
        print(f"{label:40} {mine:8.2f} {lib:8.2f} {lib / mine:12.1f}x")


if __name__ == "__main__":
    main()
