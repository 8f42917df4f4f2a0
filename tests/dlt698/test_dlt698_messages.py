"""Messages: the frames a master sends and a meter answers, and the checks that a reply answers its
request (service, PIID, OAD/OMD), with DARs and ERROR-Response raised by name."""

from __future__ import annotations

import pytest

from protocols.dlt698 import (
    Address,
    Data,
    DataType,
    DateTimeS,
    ErrorApdu,
    ErrorResponse,
    GetNextResponse,
    GetRecordRequest,
    GetResponse,
    GetResult,
    MeterRefused,
    Oad,
    Omd,
    OtherApdu,
    SecurityRequest,
    SecurityResponse,
    SetResponse,
    UnexpectedReply,
    Verify,
    action_request,
    answers,
    check_reply,
    columns,
    get_request,
    last_records_request,
    next_request,
    parse_apdu,
    parse_frame,
    piid,
    relay_request,
    reply_frame,
    secured_request,
    set_request,
    time_range_request,
)
from protocols.dlt698.apdu import GetRequest
from protocols.errors import DecodeError

from .vectors import CLOCK, E1_REQUEST, E1_RESPONSE, METER, RN, TRIP, VECTORS

IMPORT = Oad(0x0010, 2)


def test_request_builders_match_the_reference() -> None:
    assert get_request(METER, IMPORT, 1).encode() == VECTORS[0].raw
    assert get_request(METER, [Oad(0x2000, 2), Oad(0x2001, 2)], 2).encode() == VECTORS[2].raw
    assert action_request(METER, Omd(0x8000, 129), TRIP, 3).encode() == VECTORS[6].raw
    e5 = last_records_request(METER, Oad(0x5004, 2), 1, columns(Oad(0x2021, 2), IMPORT, Oad(0x0020, 2)), 7)
    assert e5.encode() == VECTORS[9].raw
    assert secured_request(METER, E1_REQUEST, RN).encode() == VECTORS[-1].raw


def test_time_range_and_next_and_set() -> None:
    frame = time_range_request(
        METER, Oad(0x5004, 2), DateTimeS(2024, 5, 1), DateTimeS(2024, 5, 8), rcsd=columns(IMPORT), piid=9
    )
    apdu = parse_apdu(frame.data)
    assert isinstance(apdu, GetRecordRequest) and apdu.rsd.selector == 2 and apdu.rsd.oad == Oad(0x2021, 2)
    assert next_request(METER, 3, 4).data == bytes.fromhex("05 05 04 00 03 00")
    assert set_request(METER, Oad(0x4000, 2), Data(DataType.DATE_TIME_S, CLOCK), 6).data.hex(" ").upper() == (
        "06 01 06 40 00 02 00 1C 07 E8 05 14 0C 00 00 00"
    )


def test_piid_helper() -> None:
    assert piid(65) == 1
    assert piid(2, high_priority=True) == 0x82


def test_check_reply_accepts_the_answer() -> None:
    request = get_request(METER, IMPORT, 1)
    reply = check_reply(request, parse_frame(VECTORS[1].raw))
    assert reply.apdu == E1_RESPONSE and reply.mac is None


@pytest.mark.parametrize(
    ("apdu", "match"),
    [
        (GetResponse(2, GetResult(IMPORT, Data(DataType.NULL))), "PIID 2, expected 1"),
        (
            GetResponse(1, GetResult(Oad(0x0020, 2), Data(DataType.NULL))),
            "objects 00200200, expected 00100200",
        ),
        (SetResponse(1, IMPORT), "SetResponse does not answer GetRequest"),
        (OtherApdu(0x88, b"\x01"), "OtherApdu does not answer GetRequest"),
    ],
)
def test_check_reply_refuses_what_does_not_answer(apdu: object, match: str) -> None:
    request = get_request(METER, IMPORT, 1)
    with pytest.raises(UnexpectedReply, match=match):
        check_reply(request, reply_frame(request, METER, apdu))  # type: ignore[arg-type]


def test_dar_and_error_response_are_raised_by_name() -> None:
    request = get_request(METER, Oad(0x202C, 2), 8)
    with pytest.raises(MeterRefused, match=r"202C0200 refused with DAR 4 \(object_undefined\)") as info:
        check_reply(request, parse_frame(VECTORS[11].raw))
    assert info.value.dar == 4 and not info.value.security
    with pytest.raises(ErrorResponse, match="service_unsupported"):
        check_reply(request, parse_frame(VECTORS[12].raw))
    refused = reply_frame(request, METER, SecurityResponse(dar=20))
    with pytest.raises(MeterRefused, match="security_mode_mismatch") as info:
        check_reply(request, refused)
    assert info.value.security
    trip = action_request(METER, Omd(0x8000, 129), TRIP, 3)
    with pytest.raises(MeterRefused, match="80008100 refused with DAR 15"):
        check_reply(trip, reply_frame(trip, METER, bytes.fromhex("87 01 03 80 00 81 00 0F 00 00 00")))
    nxt = next_request(METER, 1, 5)
    with pytest.raises(MeterRefused, match="block 2 refused with DAR 9"):
        check_reply(nxt, reply_frame(nxt, METER, GetNextResponse(5, True, 2, dar=9)))


def test_secured_plaintext_reply_keeps_the_mac() -> None:
    request = secured_request(METER, E1_REQUEST, RN)
    reply = check_reply(
        request, reply_frame(request, METER, SecurityResponse(E1_RESPONSE.encode(), mac=b"\x01\x02"))
    )
    assert reply.apdu == E1_RESPONSE and reply.mac_unverified


def test_ciphertext_is_relayed_unchanged() -> None:
    master = SecurityRequest(b"\xde\xad\xbe\xef", ciphered=True, verify=Verify.RN_MAC, rn=RN, mac=b"\x11" * 4)
    frame = relay_request(METER, master.encode())
    assert frame.data == master.encode()
    cipher_reply = SecurityResponse(b"\xca\xfe", ciphered=True, mac=b"\x22" * 4)
    reply = check_reply(frame, reply_frame(frame, METER, cipher_reply))
    assert reply.apdu == cipher_reply
    with pytest.raises(UnexpectedReply, match="not a SECURITY-Request"):
        relay_request(METER, E1_REQUEST.encode())


def test_meter_side_answers_only_its_own_frames() -> None:
    assert answers(get_request(METER, IMPORT, 1), METER)
    assert answers(get_request(Address.wildcard(), IMPORT, 1), METER)
    assert not answers(get_request(Address("123456789013"), IMPORT, 1), METER)
    assert not answers(parse_frame(VECTORS[8].raw), METER)  # broadcast time: never answered
    reply = reply_frame(get_request(METER, IMPORT, 1, ca=0x11), "123456789012", E1_RESPONSE)
    assert reply.ca == 0x11 and reply.control == 0xC3


def test_unmodelled_apdus_are_kept_raw_and_bad_ones_name_the_offset() -> None:
    assert parse_apdu(bytes.fromhex("01 00 00 01 2C")) == OtherApdu(1, bytes.fromhex("00 00 01 2C"))
    assert parse_apdu(bytes.fromhex("05 06 01 00 10 02 00 00")) == OtherApdu(
        5, bytes.fromhex("06 01 00 10 02 00 00")
    )
    with pytest.raises(DecodeError, match="TimeTag flag 02"):
        parse_apdu(bytes.fromhex("05 01 01 00 10 02 00 02"))
    with pytest.raises(DecodeError, match="Get-Result choice 2"):
        parse_apdu(bytes.fromhex("85 01 01 00 10 02 00 02"))
    assert parse_apdu(ErrorApdu(1, 1).encode()) == ErrorApdu(1, 1)
    assert isinstance(parse_apdu(GetRequest(1, IMPORT).encode()), GetRequest)
