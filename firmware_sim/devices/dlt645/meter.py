"""Simulated DL/T 645 prepaid meters: `gridedge sim dlt645 --port pty|tcp://HOST:PORT --meter ADDR ...`.

Layer: simulator device model. `Dlt645Meter` is pure logic given `now`: a request burst in (noise,
echoes and frames for other meters included), a reply frame out; firmware_sim.line does pacing, echo
and generic faults. Must not: do I/O, sleep or read the clock.

Behaviour per dlt645.md (a plaintext "remote cost control" money meter, §4.1):
- 2007: read data `11` for the catalogue items a prepaid meter has (energy total/tariffs/blocks,
  instantaneous values, clock, status words 1-7, remaining/overdraft money, purchases, power-down
  count and records, settlement days, daily freezes), follow-up `12` for a value longer than the
  meter's frame limit (§2.3), read address `13` (AA wildcard bytes match), control `1C` (password
  level + password checked, valid-until checked against the meter clock, trip refused under
  keep-power), broadcast time sync `08` (no reply; corrections beyond TIME_SYNC_LIMIT_S are ignored).
- 1997 (`--protocol-version 1997`): read `01` / follow-up `02` with 2-byte DIs, time sync `08`.
  Each meter ignores the other version's function codes, like a meter that speaks only one.
- Unknown DI -> abnormal reply ERR `02` (2007 "no requested data", 1997 "wrong DI"); wrong password
  -> `04`; refused for any other reason (keep-power, expired command, arrears) -> `01`.
- Frames for other meters and broadcast reads are ignored (counted in `stats`).
Device faults: `silent` (no reply) and `refuse` (abnormal reply ERR `01`), each for N requests or
until cleared.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import random
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from protocols.dlt645 import (
    BROADCAST,
    CATALOGUE,
    MAX_DATA,
    ControlCommand,
    ControlRequest,
    Credentials,
    EncodeError,
    Fn1997,
    Fn2007,
    Frame,
    Item,
    ReadAddressRequest,
    ReadRequest,
    TimeSyncRequest,
    Value,
    Version,
    WriteRequest,
    abnormal_reply,
    ack_reply,
    address_matches,
    address_reply,
    encode_values,
    normalize_address,
    parse_request,
    read_reply,
    split_frames,
    version_of,
)
from protocols.errors import ConfigError, FrameError, ProtocolError

from ...device import SimReply
from ...faults import take_fault
from ...prepaid import CostControl, PrepaidMeterPhysics, Refused
from .history import MeterHistory, local_timestamp

TURNAROUND_S: Final = (0.020, 0.100)  # §5: Td >= 20 ms; real meters answer well inside 500 ms
TIME_SYNC_LIMIT_S: Final = 600.0  # §4.3: meters accept only small corrections (one manual: +-10 min)
DEFAULT_PASSWORD: Final = "02:123456"  # dlt645.md §2.2 example: level 02, password 123456
ERR_OTHER: Final = 0x01
ERR_NO_DATA: Final = 0x02  # 2007 "no requested data"; 1997 bit 1 "wrong DI"
ERR_UNAUTHORIZED: Final = 0x04  # 2007 "wrong password / not authorised"; 1997 bit 2 "wrong password"
# misoperate: the relay ignores commands; impostor: the reply carries another meter's address (a meter
# programmed with a wrong address, or two meters answering on one address)
DEVICE_FAULTS: Final = ("silent", "refuse", "misoperate", "impostor")
PULSE_CONSTANT: Final = 1200  # imp/kWh
SW3_COMMANDED_OPEN: Final = 1 << 6
SW3_ALARM: Final = 1 << 7
_FOLLOW: Final = {Version.V2007: Fn2007.READ_FOLLOW, Version.V1997: Fn1997.READ_FOLLOW}


@dataclass
class _Pending:
    """The rest of a value sent in follow-up frames."""

    data: bytes
    seq: int = 0


class Dlt645Meter:
    protocol = "dlt645"

    def __init__(
        self,
        address: str,
        *,
        version: Version | str = Version.V2007,
        seed: int = 0,
        start_time: float = 0.0,
        cost_control: CostControl = "local",
        credentials: Credentials | None = None,
        frame_limit: int = MAX_DATA,
        preamble: int = 0,
        turnaround_s: tuple[float, float] = TURNAROUND_S,
        blocks: bool = True,
    ) -> None:
        self.address = _meter_address(address)
        self.blocks = blocks  # False: like many domestic meters, answer "no requested data" to block DIs
        self.turnaround_s = turnaround_s
        self.name = self.address
        self.version = Version(version)
        if not 8 <= frame_limit <= MAX_DATA:
            raise ConfigError(
                [f"dlt645 meter {self.address}: frame limit {frame_limit} outside 8..{MAX_DATA}"]
            )
        self.frame_limit = frame_limit
        self.preamble = preamble
        self.credentials = credentials or parse_password(DEFAULT_PASSWORD)
        self.physics = PrepaidMeterPhysics(seed * 10**12 + int(self.address), start_time, cost_control)
        self.history = MeterHistory(self.physics, seed * 10**12 + int(self.address), start_time)
        self.supply_cut_at: float | None = None  # `cut_supply`: an outage at the meter
        self.close_permitted = False  # `1B` given: the relay closes when the customer presses the button
        self.alarm = False  # `2A` / `2B`
        self.faults: dict[str, int | None] = {}
        self.stats: Counter[str] = Counter()
        self._pending: dict[int, _Pending] = {}
        self._rng = random.Random(f"turnaround:{seed}:{self.address}")

    # ---- SimDevice -----------------------------------------------------------------------------

    def tick(self, now: float) -> None:
        self.physics.advance(now)
        self.history.observe(now)

    def respond(self, request: bytes, now: float) -> SimReply | None:
        reply: Frame | None = None
        for frame in split_frames(request):
            if frame.is_reply:
                continue  # another meter's reply, or an echo of one
            answer = self.handle_frame(frame, now)
            reply = answer or reply
        if reply is None:
            return None
        if self.supply_cut_at is not None:  # no mains, no RS-485 transceiver: silence
            self.stats["no_supply"] += 1
            return None
        return SimReply(reply.encode(self.preamble), self._rng.uniform(*self.turnaround_s))

    # ---- faults, the button and inspection -------------------------------------------------------

    def inject(self, fault: str, count: int | None = None) -> None:
        """Apply this fault to the next `count` requests addressed to the meter (all, if None)."""
        if fault not in DEVICE_FAULTS:
            raise KeyError(f"unknown dlt645 device fault {fault!r} (known: {', '.join(DEVICE_FAULTS)})")
        if fault == "misoperate":
            self.physics.relay_stuck = True  # until cleared: a stuck contact is not per request
            return
        self.faults[fault] = count

    def clear(self, fault: str | None = None) -> None:
        if fault in (None, "misoperate"):
            self.physics.relay_stuck = False
        if fault is None:
            self.faults.clear()
        else:
            self.faults.pop(fault, None)

    def cut_supply(self, now: float) -> None:
        """Mains off at the meter (an outage): it stops answering until `restore_supply`."""
        if self.supply_cut_at is None:
            self.tick(now)
            self.supply_cut_at = now

    def restore_supply(self, now: float) -> None:
        """Mains back: the meter answers again and keeps a power-down record (start, end)."""
        if self.supply_cut_at is None:
            return
        start, self.supply_cut_at = self.supply_cut_at, None
        self.history.record_outage(start, now)
        self.physics.power_down_count += 1

    def press_button(self, now: float) -> bool:
        """The customer presses the close button: closes the relay if `1B` permitted it."""
        if not self.close_permitted:
            return False
        self.close_permitted = False
        self.physics.write("relay_commanded", "closed", now)
        self.history.relay_event(now)
        return True

    def values(self, now: float) -> dict[str, Value]:
        """What the meter reports, by catalogue item name (as a master decoding its replies sees it)."""
        self.tick(now)
        physics = self.physics.values(now)
        out: dict[str, Value] = {k: v for k, v in physics.items() if not isinstance(v, bool | str)}
        out.update(self._derived(physics))
        out.update(self._identity())
        out.update(self.history.values(now))
        out.update(self._demand(now))
        return out

    # ---- frames ---------------------------------------------------------------------------------

    def handle_frame(self, frame: Frame, now: float) -> Frame | None:
        """The reply to one request frame, or None (not for us, broadcast, time sync, silent)."""
        if frame.address == BROADCAST:
            if frame.function == Fn2007.TIME_SYNC:
                self._time_sync(frame, now)
            else:
                self.stats["ignored_broadcast"] += 1
            return None
        if not address_matches(frame.address, self.address):
            self.stats["ignored_other_address"] += 1
            return None
        if version_of(frame) not in (None, self.version):
            self.stats["ignored_other_version"] += 1
            return None
        if frame.function == Fn2007.TIME_SYNC:
            self._time_sync(frame, now)
            return None
        fault = self._active_fault()
        self.stats["requests"] += 1
        if fault == "silent":
            self.stats["silenced"] += 1
            return None
        if fault == "refuse":
            return self._refuse(frame.function, ERR_OTHER)
        answer = self._answer(frame, now)
        if fault == "impostor":
            self.stats["impostor"] += 1
            other = f"{(int(self.address) + 1) % 10**12:012d}"
            return dataclasses.replace(answer, address=other)
        return answer

    def _answer(self, frame: Frame, now: float) -> Frame:
        try:
            req = parse_request(frame)
        except ProtocolError:
            return self._refuse(frame.function, ERR_OTHER)
        if isinstance(req, ReadRequest):
            return self._read_follow(req, now) if req.follow else self._read(req, now)
        if isinstance(req, ReadAddressRequest):
            return address_reply(self.address)
        if isinstance(req, ControlRequest) and self.version == Version.V2007:
            return self._control(req, now)
        if isinstance(req, WriteRequest):
            return self._refuse(frame.function, ERR_UNAUTHORIZED)  # parameters are not programmable here
        return self._refuse(frame.function, ERR_OTHER)

    def _refuse(self, function: int, code: int) -> Frame:
        self.stats["refused"] += 1
        return abnormal_reply(self.address, function, code)

    def _active_fault(self) -> str | None:
        return take_fault(self.faults)

    # ---- read data ------------------------------------------------------------------------------

    def _read(self, req: ReadRequest, now: float) -> Frame:
        fn = Fn2007.READ if self.version == Version.V2007 else Fn1997.READ
        item = CATALOGUE[self.version].get(req.di)
        values = self.values(now)
        if item is None or (item.is_block and not self.blocks) or not _supported(item, values):
            self.stats["unknown_di"] += 1
            return self._refuse(fn, ERR_NO_DATA)
        try:
            data = encode_values(item, values)
        except EncodeError:  # a value the format cannot hold: the meter's own fault
            return self._refuse(fn, ERR_OTHER)
        room = self.frame_limit - len(item.di_wire)
        self._pending.pop(req.di, None)
        if len(data) <= room:
            return read_reply(self.address, req.di, data, self.version)
        self._pending[req.di] = _Pending(data[room:])
        return read_reply(self.address, req.di, data[:room], self.version, more=True)

    def _read_follow(self, req: ReadRequest, now: float) -> Frame:
        pending = self._pending.get(req.di)
        if pending is None:
            return self._refuse(_FOLLOW[self.version], ERR_NO_DATA)
        room = self.frame_limit - len(CATALOGUE[self.version][req.di].di_wire)
        if self.version == Version.V2007:
            room -= 1  # the SEQ byte echoed last
        chunk, pending.data = pending.data[:room], pending.data[room:]
        pending.seq += 1
        if not pending.data:
            del self._pending[req.di]
        # read_reply makes a follow-up reply whenever seq is given; 1997 has no SEQ byte on the wire
        seq = req.seq if req.seq is not None else pending.seq
        return read_reply(self.address, req.di, chunk, self.version, more=bool(pending.data), seq=seq)

    def _derived(self, physics: Mapping[str, float | int | bool | str]) -> dict[str, Value]:
        """Per-phase reactive/apparent power and power factor from the physics' phase active powers,
        the combined energy (= import: this meter never exports) and the status words."""
        pf = self.physics.pf
        out: dict[str, Value] = {}
        for p in "abc":
            kw = float(physics[f"power_active_{p}_kw"])
            out[f"power_reactive_{p}_kvar"] = round(kw * math.tan(math.acos(pf)), 4)
            out[f"power_apparent_{p}_kva"] = round(kw / pf, 4)
            out[f"power_factor_{p}"] = physics["power_factor"]
        for t in ("", "_t1", "_t2", "_t3", "_t4"):
            out[f"energy_combined{t}_kwh"] = physics[f"energy_import{t}_kwh"]
            out[f"energy_export{t}_kwh"] = 0.0
        word = int(physics["status_word_3"])
        if self.close_permitted:
            word &= ~SW3_COMMANDED_OPEN
        if self.alarm:
            word |= SW3_ALARM
        out.update({f"status_word_{n}": 0 for n in range(1, 8)})
        out["status_word_3"] = word
        return out

    def _identity(self) -> dict[str, Value]:
        return {
            "comm_address": self.address,
            "meter_number": self.address,
            "ct_ratio": 1,
            "pt_ratio": 1,
            "pulse_constant": PULSE_CONSTANT,
            "reactive_pulse_constant": PULSE_CONSTANT,
            "settlement_day_1": "0100",
            "cover_open_count": 0,
            "programming_count": 0,
            "demand_clear_count": 0,
        }

    def _demand(self, now: float) -> dict[str, Value]:
        kw, when = self.history.max_demand
        if self.version == Version.V1997:  # A010 value and B010 MMDDhhmm are separate items
            return {"demand_import_kw": round(kw, 4), "demand_import_time": when.strftime("%m%d%H%M")}
        return {"demand_import_kw": {"value": round(kw, 4), "time": when}}

    # ---- control and time sync ------------------------------------------------------------------

    def _control(self, req: ControlRequest, now: float) -> Frame:
        if req.command is None or not self._password_ok(req.credentials):
            self.stats["wrong_password"] += 1
            return self._refuse(Fn2007.CONTROL, ERR_UNAUTHORIZED)  # ciphertext: this meter is plaintext
        if req.valid_until is None or req.valid_until < self.history.meter_now(now):
            return self._refuse(Fn2007.CONTROL, ERR_OTHER)
        try:
            self._command(req.command, now)
        except (Refused, ValueError):
            return self._refuse(Fn2007.CONTROL, ERR_OTHER)
        self.history.relay_event(now)
        return ack_reply(self.address, Fn2007.CONTROL)

    def _password_ok(self, given: Credentials) -> bool:
        return (given.level, given.password) == (self.credentials.level, self.credentials.password)

    def _command(self, command: int, now: float) -> None:
        cmd = ControlCommand(command)  # ValueError for an unknown N1
        if cmd in (ControlCommand.TRIP, ControlCommand.CLOSE):
            self.physics.write("relay_commanded", "open" if cmd == ControlCommand.TRIP else "closed", now)
            self.close_permitted = False
        elif cmd == ControlCommand.ALLOW_CLOSE:
            self._allow_close(now)
        elif cmd in (ControlCommand.KEEP_POWER_ON, ControlCommand.KEEP_POWER_OFF):
            self.physics.write("keep_power", cmd == ControlCommand.KEEP_POWER_ON, now)
        else:
            self.alarm = cmd == ControlCommand.ALARM_ON

    def _allow_close(self, now: float) -> None:
        self.physics.advance(now)
        if self.physics.commanded_closed:
            return
        w = self.physics.wallet
        in_arrears = w.amount <= -w.overdraft_limit
        if self.physics.cost_control == "local" and in_arrears and not self.physics.keep_power:
            raise ValueError("in arrears: close refused until paid")  # as PrepaidMeterPhysics does
        self.close_permitted = True

    def _time_sync(self, frame: Frame, now: float) -> None:
        try:
            req = parse_request(frame)
        except ProtocolError:
            req = TimeSyncRequest(None)
        if not isinstance(req, TimeSyncRequest) or req.when is None:
            self.stats["time_sync_rejected"] += 1
            return
        target = local_timestamp(req.when)
        if abs(target - (now + self.physics.clock_skew_s)) > TIME_SYNC_LIMIT_S:
            self.stats["time_sync_rejected"] += 1
            return
        self.physics.clock_skew_s = target - now
        self.history.clock_sets += 1
        self.stats["time_syncs"] += 1


def _supported(item: Item, values: dict[str, Value]) -> bool:
    if item.tariffs is not None:
        return item.parts[0][0] in values
    if item.parts:
        return all(name in values for name, _ in item.parts)
    return item.name in values


def _meter_address(text: str) -> str:
    try:
        address = normalize_address(text)
    except FrameError as exc:
        raise ConfigError([str(exc)]) from None
    if not address.isdigit() or address == BROADCAST:
        raise ConfigError([f"dlt645 meter address {text!r}: must be 12 digits, not a wildcard or broadcast"])
    return address


def parse_password(text: str) -> Credentials:
    """`LL:NNNNNN` (level and password) or a bare 6-digit password at level 02."""
    level, _, password = text.rpartition(":")
    if not (level or "02").isdigit() or len(password) != 6 or not password.isdigit():
        raise ConfigError([f"dlt645 password {text!r}: expected LEVEL:NNNNNN, e.g. {DEFAULT_PASSWORD}"])
    return Credentials(int(level or "02"), password)


# ---- CLI helpers (`gridedge sim dlt645` adds --port/--baud and runs the line) ---------------------


def _address_arg(text: str) -> str:
    try:
        return _meter_address(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _password_arg(text: str) -> Credentials:
    try:
        return parse_password(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--meter", type=_address_arg, action="append", required=True, help="12-digit address (repeatable)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the load profiles and initial balances")
    parser.add_argument("--protocol-version", choices=("2007", "1997"), default="2007")
    parser.add_argument(
        "--cost-control",
        choices=("local", "remote"),
        default="local",
        help="local: the meter debits its wallet and trips itself; remote: the master station does",
    )
    parser.add_argument(
        "--password",
        type=_password_arg,
        default=parse_password(DEFAULT_PASSWORD),
        help=f"control password LEVEL:NNNNNN (default {DEFAULT_PASSWORD})",
    )
    parser.add_argument(
        "--frame-limit", type=int, default=MAX_DATA, help="longest DATA field; longer values use follow-ups"
    )
    parser.add_argument("--preamble", type=int, default=0, help="FE bytes before each reply (0..4)")
    parser.add_argument(
        "--no-blocks", action="store_true", help="refuse block DIs (xxxxFFxx) like meters without block reads"
    )
    parser.add_argument(
        "--turnaround-ms",
        type=_turnaround,
        default=TURNAROUND_S,
        help="reply delay MIN[-MAX] in ms, uniform (default 20-100; the standard allows 20-500)",
    )


def _turnaround(text: str) -> tuple[float, float]:
    low, _, high = text.partition("-")
    try:
        lo, hi = float(low) / 1000, float(high or low) / 1000
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not MIN[-MAX] milliseconds") from None
    if not 0.0 <= lo <= hi <= 5.0:
        raise argparse.ArgumentTypeError(f"turnaround {text} ms must be 0 <= MIN <= MAX <= 5000")
    return lo, hi


def build(args: argparse.Namespace, start_time: float) -> list[Dlt645Meter]:
    meters: list[str] = args.meter
    if len(set(meters)) != len(meters):
        raise ConfigError([f"dlt645: duplicate meter addresses in {meters}"])
    return [
        Dlt645Meter(
            m,
            version=getattr(args, "protocol_version", "2007"),
            seed=getattr(args, "seed", 0),
            start_time=start_time,
            cost_control=getattr(args, "cost_control", "local"),
            credentials=getattr(args, "password", None),
            frame_limit=getattr(args, "frame_limit", MAX_DATA),
            preamble=getattr(args, "preamble", 0),
            turnaround_s=getattr(args, "turnaround_ms", TURNAROUND_S),
            blocks=not getattr(args, "no_blocks", False),
        )
        for m in meters
    ]
