"""DL/T 645 application messages: request builders and reply parsers for read data (2007 `11`/`12`,
1997 `01`/`02`), read address (`13`), broadcast time sync (`08`), write data (`14`/`04`) and remote
control (`1C`), abnormal replies decoded into `MeterRefused`; and the reverse direction (request
parsers, reply builders) for the simulator and the frame describer.

Layer: pure codec (protocols). Must not: read clocks (every time is an argument), do I/O, retry.

Layouts per dlt645.md §2 and §4, wire order, +0x33 applied by `frame`:
  read 2007      DI0..DI3 [N [mm hh DD MM YY]]    reply  DI + value            (91, B1 if more)
  follow-up 2007 DI + SEQ                         reply  DI + chunk + SEQ      (92 / B2)
  read 1997      DI0 DI1                          reply  DI + value            (81, A1 if more)
  write 2007     DI + PA P0 P1 P2 + C0..C3 + data (1997: no operator code)
  control 2007   PA P0 P1 P2 + C0..C3 + N1 N2 + ss mm hh DD MM YY (L = 0x10); reply 9C, L = 0
  time sync      ss mm hh DD MM YY to 99..99, no reply
  abnormal       C | 0x40 + ERR (1 byte); 2007 `C3` + SERR (2 bytes)
The password is sent level first, then P0 P1 P2 low byte first (§2.2: `02 56 34 12` for level 02 /
123456); `typed_order=True` sends the digits as typed, for meters built the other way (§9.1).
"""

from __future__ import annotations

import datetime as dt
import enum
import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, TypeAlias

from ..errors import DecodeError
from .errors import EncodeError, MeterRefused, SecurityRefused, UnexpectedReply
from .formats import Stamp, Value, decode, encode
from .frame import BROADCAST, WILDCARD, Frame, address_from_wire, address_to_wire, control_byte
from .items import DI_SIZE, Item, UnknownItem, Version, decode_values, di_from_wire, di_to_wire, find_item


class Fn2007(enum.IntEnum):
    SECURITY = 0x03
    TIME_SYNC = 0x08
    READ = 0x11
    READ_FOLLOW = 0x12
    READ_ADDRESS = 0x13
    WRITE = 0x14
    WRITE_ADDRESS = 0x15
    FREEZE = 0x16
    CHANGE_BAUD = 0x17
    CHANGE_PASSWORD = 0x18
    CLEAR_DEMAND = 0x19
    CLEAR_METER = 0x1A
    CLEAR_EVENTS = 0x1B
    CONTROL = 0x1C
    OUTPUT_CONTROL = 0x1D


class Fn1997(enum.IntEnum):
    READ = 0x01
    READ_FOLLOW = 0x02
    REREAD = 0x03
    WRITE = 0x04
    TIME_SYNC = 0x08
    WRITE_ADDRESS = 0x0A
    CHANGE_BAUD = 0x0C
    CHANGE_PASSWORD = 0x0F
    CLEAR_DEMAND = 0x10


class ControlCommand(enum.IntEnum):
    """N1 of the `1C` command (dlt645.md §4.1)."""

    TRIP = 0x1A
    ALLOW_CLOSE = 0x1B  # close permitted: the customer presses the meter's button
    CLOSE = 0x1C  # direct close
    ALARM_ON = 0x2A
    ALARM_OFF = 0x2B
    KEEP_POWER_ON = 0x3A
    KEEP_POWER_OFF = 0x3B


READ_FUNCTION: Final = {Version.V2007: Fn2007.READ, Version.V1997: Fn1997.READ}
FOLLOW_FUNCTION: Final = {Version.V2007: Fn2007.READ_FOLLOW, Version.V1997: Fn1997.READ_FOLLOW}
ESAM_LEVELS: Final = (0x96, 0x98)  # pseudo password levels: ciphertext instead of N1..N8 (§4.2)
_STAMP6: Final = Stamp("YYMMDDhhmmss")
_2007_ONLY: Final = frozenset(range(0x11, 0x1E))
_1997_ONLY: Final = frozenset((0x01, 0x02, 0x04, 0x0A, 0x0C, 0x0F, 0x10))


def version_of(frame: Frame) -> Version | None:
    """The protocol version a frame's function code belongs to, or None when both use it (`08`, and
    `03` except a 2007 `C3` with its 2-byte SERR)."""
    if frame.function in _2007_ONLY:
        return Version.V2007
    if frame.function in _1997_ONLY:
        return Version.V1997
    if frame.function == 0x03 and frame.abnormal and len(frame.data) == 2:
        return Version.V2007
    return None


def function_name(function: int, version: Version | str | None = None) -> str:
    order = (Fn2007, Fn1997) if version in (None, Version.V2007) else (Fn1997, Fn2007)
    for table in order:
        if function in table._value2member_map_:
            return table(function).name.lower()
    return f"function_{function:#04x}"


@dataclass(frozen=True, slots=True)
class Credentials:
    """Password level (00..09, ESAM 96/98/99), 6-digit password, 8-digit operator code."""

    level: int = 2
    password: str = "000000"
    operator: str = "00000000"
    typed_order: bool = False  # send the password digits as typed (§9.1); default: low byte first

    def encode(self, *, operator: bool = True) -> bytes:
        if not 0 <= self.level <= 99:
            raise EncodeError(f"password level {self.level} outside 00..99")
        if not re.fullmatch(r"[0-9]{6}", self.password):
            raise EncodeError("password must be 6 digits")
        if not re.fullmatch(r"[0-9]{8}", self.operator):
            raise EncodeError(f"operator code {self.operator!r} must be 8 digits")
        pwd = bytes.fromhex(self.password)
        out = bytes.fromhex(f"{self.level:02d}") + (pwd if self.typed_order else pwd[::-1])
        return out + (bytes.fromhex(self.operator)[::-1] if operator else b"")

    @classmethod
    def decode(cls, raw: bytes) -> Credentials:
        """From `PA P0 P1 P2 [C0..C3]` (low byte first); a non-BCD byte is kept as its hex."""
        operator = raw[4:8][::-1].hex() if len(raw) >= 8 else "00000000"
        return cls(
            int(raw[0:1].hex()) if raw[0:1].hex().isdigit() else raw[0], raw[1:4][::-1].hex(), operator
        )


# ---------------------------------------------------------------------------------------------------
# requests: builders (gateway)


def read_request(address: str, di: int, version: Version | str = Version.V2007) -> Frame:
    v = Version(version)
    return Frame(address, READ_FUNCTION[v], di_to_wire(di, v))


def read_follow_request(address: str, di: int, seq: int, version: Version | str = Version.V2007) -> Frame:
    """2007: DI + SEQ (1, 2, ... for the successive follow-up frames); 1997: DI only."""
    v = Version(version)
    if not 0 <= seq <= 255:
        raise EncodeError(f"meter {address}: follow-up SEQ {seq} outside 0..255")
    return Frame(
        address, FOLLOW_FUNCTION[v], di_to_wire(di, v) + (bytes((seq,)) if v == Version.V2007 else b"")
    )


def read_address_request() -> Frame:
    """Point to point only: one meter on the bus (§1.4)."""
    return Frame(WILDCARD, Fn2007.READ_ADDRESS)


def time_sync_request(when: dt.datetime, address: str = BROADCAST) -> Frame:
    """Broadcast time (no reply). Meters accept only small corrections, once a day (§4.3)."""
    return Frame(address, Fn2007.TIME_SYNC, encode(_STAMP6, when, f"meter {address}: time sync"))


def control_request(
    address: str, command: ControlCommand | int, valid_until: dt.datetime, credentials: Credentials
) -> Frame:
    """Plaintext remote control. `valid_until`: the meter rejects the command after this (meter-local)
    time, so keep it minutes ahead (§4.1)."""
    if not 0 <= command <= 0xFF:
        raise EncodeError(f"meter {address}: control command {command} outside 0..255")
    until = encode(_STAMP6, valid_until, f"meter {address}: control valid-until")
    return Frame(address, Fn2007.CONTROL, credentials.encode() + bytes((command, 0)) + until)


def control_ciphertext_request(address: str, ciphertext: bytes, credentials: Credentials) -> Frame:
    """ESAM meters: a `1C` whose N1..N8 were encrypted by the utility's key system; the prebuilt
    ciphertext goes out unchanged after PA (96/98) P0..P2 C0..C3 (§4.2)."""
    if not ciphertext or 8 + len(ciphertext) > 50:
        raise EncodeError(f"meter {address}: ciphertext of {len(ciphertext)} bytes (1..42 allowed)")
    return Frame(address, Fn2007.CONTROL, credentials.encode() + ciphertext)


def write_request(
    address: str, di: int, data: bytes, credentials: Credentials, version: Version | str = Version.V2007
) -> Frame:
    v = Version(version)
    payload = di_to_wire(di, v) + credentials.encode(operator=v == Version.V2007) + data
    if len(payload) > 50:
        raise EncodeError(f"meter {address}: write of {len(payload)} bytes, the maximum is 50 (§1.6)")
    fn = Fn2007.WRITE if v == Version.V2007 else Fn1997.WRITE
    return Frame(address, fn, payload)


BAUD_CODES: Final = {600: 0x02, 1200: 0x04, 2400: 0x08, 4800: 0x10, 9600: 0x20, 19200: 0x40}
_FREEZE_LIMITS: Final = (("minute", 0, 59), ("hour", 0, 23), ("day", 1, 31), ("month", 1, 12))


def freeze_request(
    address: str,
    *,
    minute: int | None = None,
    hour: int | None = None,
    day: int | None = None,
    month: int | None = None,
) -> Frame:
    """`16` freeze: at `mm hh DD MM` with None as the `99` wildcard (all None: freeze now; day and month
    None: daily at hh:mm). Data order mm hh DD MM per libDLT645 and the low-byte-first rule; dlt645.md §9
    item 2 notes that one library sends the reverse and no real frame settles it. To the `99..99`
    broadcast address it is a broadcast freeze (no reply)."""
    fields = (minute, hour, day, month)
    data = bytearray()
    for value, (name, low, high) in zip(fields, _FREEZE_LIMITS, strict=True):
        if value is None:
            data.append(0x99)
            continue
        if not low <= value <= high:
            raise EncodeError(f"meter {address}: freeze {name} {value} outside {low}..{high}")
        data.append(int(f"{value:02d}", 16))
    return Frame(address, Fn2007.FREEZE, bytes(data))


def change_baud_request(address: str, baud: int) -> Frame:
    """`17`: the meter switches its RS-485 port to `baud` after acknowledging (feature byte bitmap)."""
    code = BAUD_CODES.get(baud)
    if code is None:
        raise EncodeError(f"meter {address}: baud {baud} not settable ({', '.join(map(str, BAUD_CODES))})")
    return Frame(address, Fn2007.CHANGE_BAUD, bytes((code,)))


# ---------------------------------------------------------------------------------------------------
# replies: parsers (gateway)


@dataclass(frozen=True, slots=True)
class ReadReply:
    address: str
    version: Version
    di: int
    data: bytes  # the value bytes (a follow-up chunk without its SEQ)
    follow_up: bool  # D5: more frames follow
    seq: int | None = None  # 2007 follow-up replies echo SEQ as their last byte

    @property
    def item(self) -> Item | None:
        return find_item(self.di, self.version)

    def values(self, item: Item | None = None) -> dict[str, Value]:
        """Decode with the catalogue entry of the DI (or `item`); errors name the meter."""
        item = item or self.item
        if item is None:
            raise UnknownItem(
                f"meter {self.address}: DI {self.di:0{2 * DI_SIZE[self.version]}X} not in the catalogue"
            )
        try:
            return decode_values(item, self.data)
        except DecodeError as exc:
            raise DecodeError(f"meter {self.address}: {exc}") from None


def check_reply(frame: Frame, version: Version | str | None = None) -> Frame:
    """Raise `MeterRefused` (`SecurityRefused` for a 2007 `C3`) if `frame` is an abnormal reply."""
    if frame.is_reply and frame.abnormal:
        v = Version(version) if version else (version_of(frame) or Version.V2007)
        if v == Version.V2007 and frame.function == Fn2007.SECURITY:
            raise SecurityRefused(frame.address, frame.function, int.from_bytes(frame.data[:2], "little"))
        raise MeterRefused(frame.address, frame.function, frame.data[0] if frame.data else 0, version=v)
    return frame


def _expect(frame: Frame, functions: tuple[int, ...], what: str) -> None:
    if not frame.is_reply or frame.function not in functions:
        raise UnexpectedReply(f"meter {frame.address}: control {frame.control:#04x} is not a {what} reply")


def parse_read_reply(frame: Frame, version: Version | str | None = None, di: int | None = None) -> ReadReply:
    """A normal read / follow-up reply; raises MeterRefused for abnormal ones and DecodeError if the
    DI echoed is not `di`."""
    v = Version(version) if version else (version_of(frame) or Version.V2007)
    check_reply(frame, v)
    _expect(frame, (READ_FUNCTION[v], FOLLOW_FUNCTION[v]), f"{v} read")
    size = DI_SIZE[v]
    if len(frame.data) < size:
        raise DecodeError(
            f"meter {frame.address}: read reply of {len(frame.data)} bytes has no {size}-byte DI"
        )
    got = di_from_wire(frame.data[:size])
    if di is not None and got != di:
        raise DecodeError(
            f"meter {frame.address}: reply carries DI {got:0{2 * size}X}, asked {di:0{2 * size}X}"
        )
    data, seq = frame.data[size:], None
    if v == Version.V2007 and frame.function == Fn2007.READ_FOLLOW:
        if not data:
            raise DecodeError(f"meter {frame.address}: follow-up reply without SEQ")
        data, seq = data[:-1], data[-1]
    return ReadReply(frame.address, v, got, data, frame.follow_up, seq)


def join_read_replies(replies: Sequence[ReadReply]) -> bytes:
    """The value bytes of a read answered in several frames (first reply, then follow-ups in order)."""
    for prev, nxt in itertools.pairwise(replies):
        if nxt.di != prev.di:
            raise DecodeError(f"meter {nxt.address}: follow-up for DI {nxt.di:X}, expected {prev.di:X}")
    return b"".join(r.data for r in replies)


def parse_address_reply(frame: Frame) -> str:
    check_reply(frame, Version.V2007)
    _expect(frame, (Fn2007.READ_ADDRESS,), "read-address")
    if len(frame.data) != 6:
        raise DecodeError(f"meter {frame.address}: read-address reply of {len(frame.data)} bytes, expected 6")
    return address_from_wire(frame.data)


def parse_change_baud_reply(frame: Frame) -> int:
    """The baud rate a `97` reply confirms; MeterRefused for `D7`."""
    check_reply(frame, Version.V2007)
    _expect(frame, (Fn2007.CHANGE_BAUD,), "change baud")
    by_code = {code: baud for baud, code in BAUD_CODES.items()}
    if len(frame.data) != 1 or frame.data[0] not in by_code:
        raise DecodeError(
            f"meter {frame.address}: change-baud reply {frame.data.hex(' ')} names no baud rate"
        )
    return by_code[frame.data[0]]


def parse_ack_reply(frame: Frame, function: int) -> None:
    """The empty normal reply to control (`9C`), write (`94`) and the like; raises MeterRefused."""
    check_reply(frame)
    _expect(frame, (function,), function_name(function))


# ---------------------------------------------------------------------------------------------------
# the other direction: request parsers and reply builders (simulator, describe)


@dataclass(frozen=True, slots=True)
class ReadRequest:
    di: int
    version: Version
    extra: bytes = b""  # 2007 load-record reads: N [+ time]
    seq: int | None = None  # set on 2007 follow-up requests
    follow: bool = False


@dataclass(frozen=True, slots=True)
class ReadAddressRequest:
    pass


@dataclass(frozen=True, slots=True)
class TimeSyncRequest:
    when: dt.datetime | None


@dataclass(frozen=True, slots=True)
class ControlRequest:
    credentials: Credentials
    command: int | None  # None for ciphertext
    valid_until: dt.datetime | None
    ciphertext: bytes = b""


@dataclass(frozen=True, slots=True)
class WriteRequest:
    di: int
    version: Version
    credentials: Credentials
    data: bytes


@dataclass(frozen=True, slots=True)
class OtherRequest:
    function: int
    data: bytes


Request: TypeAlias = (
    ReadRequest | ReadAddressRequest | TimeSyncRequest | ControlRequest | WriteRequest | OtherRequest
)


def parse_request(frame: Frame) -> Request:
    """What a master asks. The version follows from the function code (`08` is shared)."""
    where, fn, data = f"meter {frame.address}", frame.function, frame.data
    if frame.is_reply:
        raise UnexpectedReply(f"{where}: control {frame.control:#04x} is a reply, not a request")
    v = version_of(frame) or Version.V2007
    if fn in (READ_FUNCTION[v], FOLLOW_FUNCTION[v]):
        size = DI_SIZE[v]
        if len(data) < size:
            raise DecodeError(f"{where}: read request of {len(data)} bytes has no {size}-byte DI")
        follow = fn == FOLLOW_FUNCTION[v]
        rest = data[size:]
        if follow and v == Version.V2007 and len(rest) == 1:
            return ReadRequest(di_from_wire(data[:size]), v, seq=rest[0], follow=True)
        return ReadRequest(di_from_wire(data[:size]), v, rest, follow=follow)
    if fn == Fn2007.READ_ADDRESS:
        return ReadAddressRequest()
    if fn == Fn2007.TIME_SYNC:
        value = decode(_STAMP6, data, f"{where}: time sync") if len(data) == 6 else None
        return TimeSyncRequest(value if isinstance(value, dt.datetime) else None)
    if fn == Fn2007.CONTROL:
        return _parse_control(where, data)
    if fn in (Fn2007.WRITE, Fn1997.WRITE):
        size, cred = DI_SIZE[v], 8 if v == Version.V2007 else 4
        if len(data) < size + cred:
            raise DecodeError(f"{where}: write request of {len(data)} bytes is too short")
        return WriteRequest(
            di_from_wire(data[:size]), v, Credentials.decode(data[size : size + cred]), data[size + cred :]
        )
    return OtherRequest(fn, data)


def _parse_control(where: str, data: bytes) -> ControlRequest:
    if len(data) < 9:
        raise DecodeError(f"{where}: control request of {len(data)} bytes is too short")
    credentials = Credentials.decode(data[:8])
    if data[0] in ESAM_LEVELS:
        return ControlRequest(credentials, None, None, data[8:])
    if len(data) != 16:
        raise DecodeError(f"{where}: plaintext control request of {len(data)} bytes, expected 16")
    until = decode(_STAMP6, data[10:16], f"{where}: control valid-until")
    return ControlRequest(credentials, data[8], until if isinstance(until, dt.datetime) else None)


def read_reply(
    address: str,
    di: int,
    data: bytes,
    version: Version | str = Version.V2007,
    *,
    more: bool = False,
    seq: int | None = None,
) -> Frame:
    """A normal read reply; `seq` makes it a 2007 follow-up reply (`92`/`B2`, SEQ echoed last)."""
    v = Version(version)
    fn = FOLLOW_FUNCTION[v] if seq is not None else READ_FUNCTION[v]
    tail = bytes((seq,)) if seq is not None and v == Version.V2007 else b""
    return Frame(address, control_byte(fn, reply=True, follow_up=more), di_to_wire(di, v) + data + tail)


def abnormal_reply(address: str, function: int, code: int) -> Frame:
    """`C | 0xC0` + ERR; a 2007 security (`03`) reply carries the 2-byte SERR."""
    width = 2 if function == Fn2007.SECURITY else 1
    return Frame(address, control_byte(function, reply=True, abnormal=True), code.to_bytes(width, "little"))


def address_reply(address: str) -> Frame:
    return Frame(address, control_byte(Fn2007.READ_ADDRESS, reply=True), address_to_wire(address))


def ack_reply(address: str, function: int) -> Frame:
    return Frame(address, control_byte(function, reply=True))
