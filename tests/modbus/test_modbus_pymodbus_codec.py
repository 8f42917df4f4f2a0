"""Cross-check of our RTU framing with pymodbus's own framer and PDU classes (code no one here
wrote): frames we build, pymodbus parses to the same request/reply, and the other way round."""

from __future__ import annotations

import pytest
from pymodbus.framer import FramerRTU
from pymodbus.pdu import DecodePDU
from pymodbus.pdu.bit_message import ReadCoilsResponse, WriteMultipleCoilsRequest
from pymodbus.pdu.register_message import (
    ReadHoldingRegistersResponse,
    ReadInputRegistersRequest,
    WriteMultipleRegistersRequest,
)

from protocols.modbus import (
    BitsReply,
    ReadRequest,
    RegistersReply,
    WriteCoil,
    WriteCoils,
    WriteRegister,
    WriteRegisters,
    build_rtu_reply,
    build_rtu_request,
    crc16,
    parse_rtu_reply,
    parse_rtu_request,
)
from protocols.modbus.rtu import RtuReplyMatcher

REQUESTS = [
    ReadRequest(1, 0x13, 19),
    ReadRequest(2, 0xC4, 22),
    ReadRequest(3, 0x2000, 16),
    ReadRequest(4, 0, 80),
    WriteCoil(1, True),
    WriteRegister(0x1000, 0xBEEF),
    WriteCoils(0x13, (True, False, True, True, False, False, True, True, True, False)),
    WriteRegisters(0x1000, (0, 5500)),
]


@pytest.mark.parametrize("req", REQUESTS, ids=lambda r: type(r).__name__ + str(r.function))
def test_pymodbus_server_framer_parses_our_requests(req) -> None:
    frame = build_rtu_request(7, req)
    used, pdu = FramerRTU(DecodePDU(is_server=True)).handleFrame(frame, 0, 0)
    assert used == len(frame) and pdu is not None
    assert (pdu.dev_id, pdu.function_code, pdu.address) == (7, req.function, req.address)
    if isinstance(req, ReadRequest):
        assert pdu.count == req.count
    elif isinstance(req, WriteRegisters):
        assert list(pdu.registers) == list(req.values)
    elif isinstance(req, WriteCoils):
        assert list(pdu.bits)[: len(req.values)] == list(req.values)


def test_we_parse_pymodbus_built_frames() -> None:
    framer = FramerRTU(DecodePDU(is_server=False))
    frame = framer.buildFrame(ReadHoldingRegistersResponse(dev_id=5, registers=[1, 2, 0xFFFF]))
    assert parse_rtu_reply(frame).reply == RegistersReply(3, (1, 2, 0xFFFF))
    frame = framer.buildFrame(ReadCoilsResponse(dev_id=5, bits=[True, False, True]))
    reply = parse_rtu_reply(frame).reply
    assert isinstance(reply, BitsReply) and reply.bits[:3] == (True, False, True)
    frame = framer.buildFrame(ReadInputRegistersRequest(address=0x34, count=36, dev_id=9))
    assert parse_rtu_request(frame).request == ReadRequest(4, 0x34, 36)
    frame = framer.buildFrame(WriteMultipleRegistersRequest(address=1, registers=[10, 258], dev_id=1))
    assert parse_rtu_request(frame).request == WriteRegisters(1, (10, 258))
    frame = framer.buildFrame(WriteMultipleCoilsRequest(address=0x13, bits=[True, False, True], dev_id=1))
    assert parse_rtu_request(frame).request == WriteCoils(0x13, (True, False, True))


def test_our_reply_matcher_accepts_pymodbus_reply_and_crcs_agree() -> None:
    framer = FramerRTU(DecodePDU(is_server=True))
    frame = framer.buildFrame(ReadHoldingRegistersResponse(dev_id=3, registers=[0x4366, 0x3333]))
    assert frame == build_rtu_reply(3, RegistersReply(3, (0x4366, 0x3333)))
    matcher = RtuReplyMatcher.for_request(3, ReadRequest(3, 0, 2))
    assert [matcher.feed(frame[i : i + 1]) for i in range(len(frame))][-1] is not None
    for data in (b"", b"\x01", bytes(range(256)), frame):
        assert crc16(data) == int.from_bytes(FramerRTU.compute_CRC(data).to_bytes(2, "big"), "little")
