"""What the simulated DL/T 698.45 meter does with SET and ACTION: the clock (4000), remote control
(8000), keep-power (8001), the arrears alarm (8002), each answered with its DAR.

Layer: simulator device model. Pure logic on the meter's state given `now`. Must not: do I/O, read
the clock, or know frames.

dlt698.md §4 and E4: 8000 m127/m128 alarm on/off (NULL); m129 trip with `array{structure{relay OAD,
alarm delay unsigned (min), outage long-unsigned (min, 0 = until closed), auto-close bool}}`; m130 close
with `array{structure{relay OAD, enum 0 allow close / 1 close now}}`; 8001 m127/m128 keep-power on/off,
m129 cancel automatic keep-power (this meter never keeps power on its own: nothing to cancel); 8002
m127 arrears alarm on {periods octet-string(3), text visible-string}, m128 off; 4000 m127 broadcast
time and SET 40000200 (date_time_s). The DARs: 3 denied (a trip under keep-power, a close in arrears,
a read-only attribute), 4 undefined (a method or attribute this meter does not have), 6 absent (a relay
other than relay 1), 7 type mismatch, 8 out of range (an impossible date, a broadcast time too far off).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from protocols.dlt698 import Data, DataType, DateTimeS, Oad, Omd

from ...meter_history import local_timestamp
from ...prepaid import Refused
from .objects import BUILDERS, DAR_ABSENT, DAR_DENIED, DAR_UNDEFINED, RELAY_1, MeterView

T = DataType
OK: Final = 0
DAR_TYPE_MISMATCH: Final = 7
DAR_OUT_OF_RANGE: Final = 8
TIME_SYNC_LIMIT_S: Final = 600.0  # a broadcast time corrects at most 10 min (as the 645 meter)


@dataclass
class PendingTrip:
    """A trip with an alarm delay, and what happens after its outage duration."""

    at: float  # when the relay opens
    outage_s: float  # 0: until a close command
    auto_close: bool


class CommandError(Exception):
    """A command the meter refuses: `dar` is its answer."""

    def __init__(self, dar: int, reason: str) -> None:
        super().__init__(reason)
        self.dar = dar


class Commands:
    """SET and ACTION on one meter. `meter` is the meter (MeterView plus the fields set here)."""

    def __init__(self, meter: MeterView) -> None:
        self.meter = meter
        self.pending_trip: PendingTrip | None = None
        self.close_at: tuple[float, bool] | None = None  # end of an outage: (when, close by itself)
        self.arrears_text = ""
        self.refused = 0  # timed trips and closes the meter refused when they fell due

    # ---- time ------------------------------------------------------------------------------------

    def tick(self, now: float) -> None:
        """Carry out a delayed trip, and the end of a timed outage, at the moment each was due (call
        before the physics advance to `now`, so the relay moves at that moment, not at the next poll)."""
        trip = self.pending_trip
        if trip is not None and now >= trip.at:
            self.pending_trip = None
            try:
                self._trip(trip.at)
            except CommandError:  # keep-power switched on during the alarm delay
                self.refused += 1
            else:
                if trip.outage_s:
                    self.close_at = (trip.at + trip.outage_s, trip.auto_close)
        if self.close_at is not None and now >= self.close_at[0]:
            (when, auto), self.close_at = self.close_at, None
            try:
                self._close(when, allow_only=not auto)
            except CommandError:  # in arrears by the end of the outage: it stays open
                self.refused += 1

    # ---- SET -------------------------------------------------------------------------------------

    def set(self, oad: Oad, data: Data, now: float) -> int:
        if (oad.oi, oad.number) == (0x4000, 2) and oad.index == 0:
            return self._guard(lambda: self._set_clock(data, now, limit=None))
        if (oad.oi, oad.number) in BUILDERS:
            return DAR_DENIED  # readable, not writable on this meter
        return DAR_UNDEFINED

    def _set_clock(self, data: Data, now: float, limit: float | None) -> None:
        if data.type != T.DATE_TIME_S:
            raise CommandError(DAR_TYPE_MISMATCH, f"clock: {data.type.name} is not date_time_s")
        when = data.value.to_datetime() if isinstance(data.value, DateTimeS) else None
        if when is None:
            raise CommandError(DAR_OUT_OF_RANGE, f"clock: {data.value} is not a date")
        target = local_timestamp(when)
        physics = self.meter.physics
        if limit is not None and abs(target - (now + physics.clock_skew_s)) > limit:
            raise CommandError(DAR_OUT_OF_RANGE, f"broadcast time {when} more than {limit:.0f} s off")
        physics.advance(now)
        physics.clock_skew_s = target - now
        self.meter.history.clock_sets += 1

    # ---- ACTION ----------------------------------------------------------------------------------

    def action(self, omd: Omd, data: Data, now: float) -> int:
        handlers: dict[tuple[int, int], Callable[[], None]] = {
            (0x8000, 127): lambda: self._alarm(data, True),
            (0x8000, 128): lambda: self._alarm(data, False),
            (0x8000, 129): lambda: self._trip_command(data, now),
            (0x8000, 130): lambda: self._close_command(data, now),
            (0x8001, 127): lambda: self._keep_power(data, True, now),
            (0x8001, 128): lambda: self._keep_power(data, False, now),
            (0x8001, 129): lambda: _null(data),
            (0x8002, 127): lambda: self._arrears_alarm(data),
            (0x8002, 128): lambda: self._arrears_off(data),
            (0x4000, 127): lambda: self._set_clock(data, now, TIME_SYNC_LIMIT_S),
        }
        handler = handlers.get((omd.oi, omd.method))
        return DAR_UNDEFINED if handler is None else self._guard(handler)

    @staticmethod
    def _guard(run: Callable[[], None]) -> int:
        try:
            run()
        except CommandError as exc:
            return exc.dar
        return OK

    def _alarm(self, data: Data, on: bool) -> None:
        _null(data)
        self.meter.alarm = on

    def _arrears_alarm(self, data: Data) -> None:
        items = _structure(data, (T.OCTET_STRING, T.VISIBLE_STRING), "arrears alarm")
        self.arrears_text = str(items[1].value)
        self.meter.alarm = True

    def _arrears_off(self, data: Data) -> None:
        _null(data)
        self.arrears_text = ""
        self.meter.alarm = False

    def _keep_power(self, data: Data, on: bool, now: float) -> None:
        _null(data)
        self.meter.physics.write("keep_power", on, now)

    def _trip_command(self, data: Data, now: float) -> None:
        kinds = (T.OAD, T.UNSIGNED, T.LONG_UNSIGNED, T.BOOL)
        for item in _array(data, "trip"):
            relay, delay, outage, auto = (f.value for f in _structure(item, kinds, "trip"))
            _relay_1(relay)
            if self.meter.physics.keep_power:
                raise CommandError(DAR_DENIED, "keep-power is on: trip refused")
            trip = PendingTrip(now + 60.0 * delay, 60.0 * outage, bool(auto))
            self.pending_trip, self.close_at = trip, None
            self.meter.close_permitted = False
            if not delay:
                self.pending_trip = None
                self._trip(now)
                if outage:
                    self.close_at = (now + trip.outage_s, trip.auto_close)

    def _close_command(self, data: Data, now: float) -> None:
        for item in _array(data, "close"):
            relay, how = (f.value for f in _structure(item, (T.OAD, T.ENUM), "close"))
            _relay_1(relay)
            if how not in (0, 1):
                raise CommandError(DAR_OUT_OF_RANGE, f"close: mode {how} (0 allow, 1 close now)")
            self.pending_trip = self.close_at = None
            self._close(now, allow_only=how == 0)

    def _trip(self, now: float) -> None:
        try:
            self.meter.physics.write("relay_commanded", "open", now)
        except Refused as exc:  # keep-power switched on during the alarm delay
            raise CommandError(DAR_DENIED, str(exc)) from None
        finally:
            self.meter.history.relay_event(now)

    def _close(self, now: float, *, allow_only: bool) -> None:
        physics = self.meter.physics
        physics.advance(now)
        wallet = physics.wallet
        in_arrears = wallet.amount <= -wallet.overdraft_limit and physics.cost_control == "local"
        if in_arrears and not physics.keep_power:
            raise CommandError(DAR_DENIED, "in arrears: close refused until paid")
        if allow_only:
            self.meter.close_permitted = not physics.commanded_closed  # the customer's button closes
            return
        physics.write("relay_commanded", "closed", now)
        self.meter.close_permitted = False
        self.meter.history.relay_event(now)

    def press_button(self, now: float) -> bool:
        if not self.meter.close_permitted:
            return False
        self._close(now, allow_only=False)
        return True


def _null(data: Data) -> None:
    if data.type != T.NULL:
        raise CommandError(DAR_TYPE_MISMATCH, f"parameter {data.type.name}, expected NULL")


def _array(data: Data, what: str) -> tuple[Data, ...]:
    if data.type != T.ARRAY or not data.value:
        raise CommandError(DAR_TYPE_MISMATCH, f"{what}: parameter is not a non-empty array")
    items: tuple[Data, ...] = data.value
    return items


def _structure(data: Data, kinds: tuple[DataType, ...], what: str) -> tuple[Data, ...]:
    fields = data.items() if data.type == T.STRUCTURE else ()
    if tuple(f.type for f in fields) != kinds:
        raise CommandError(DAR_TYPE_MISMATCH, f"{what}: parameter is not structure{{{kinds}}}")
    return fields


def _relay_1(oad: object) -> None:
    if not isinstance(oad, Oad) or (oad.oi, oad.attribute) != (RELAY_1.oi, RELAY_1.attribute):
        raise CommandError(DAR_ABSENT, f"relay {oad}: this meter has relay 1 (F2050201) only")
    if oad.index not in (0, 1):
        raise CommandError(DAR_ABSENT, f"relay {oad}: this meter has relay 1 (F2050201) only")
