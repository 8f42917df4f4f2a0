"""Simulated business hall: `gridedge sim hall --port pty|tcp://HOST:PORT --counters N [--seed N]`.

Layer: simulator device model. `HallDevice` is pure logic given `now`: a request burst in (noise,
echoes and frames for other devices included), a reply frame out; firmware_sim.line does pacing, echo
and generic faults. Must not: do I/O, sleep or read the clock. The customers, counters and ratings
live in the shared `hall_model.HallModel`; each device only turns the model's events into poll replies.

One hall on one line, addresses per docs/field-guide.md: the dispenser at 1, the caller keypad of
counter k at 1+k, its rating pad at 32+k (hall-protocol.md itself fixes no addresses). Behaviour per
hall-protocol.md:
- POLL: the oldest unacknowledged event `SEQ EVT payload`, re-sent with the same SEQ until a later POLL
  acknowledges that SEQ (1..255, wrapping, never 0); empty DATA when none is pending. A device holds
  at most `BUFFER` events; beyond that the oldest is dropped (counted in `stats["dropped_overflow"]`).
- IDENTIFY: KIND, FW 1.2, COUNTER (0 for the dispenser).
- DISPLAY and BEEP (keypads), START_EVAL and CANCEL_EVAL (rating pads): empty `FUNC | 80` reply. A
  rating pad rates only after START_EVAL; a START_EVAL naming another counter -> error `02`. DISPLAY
  tells the model which ticket the master assigned to the counter (`HallModel.displayed`).
- CLOCK broadcast: no reply, the device's clock offset is set (`clock_offset_s`).
- A function the spec does not define, or one this kind of device lacks -> error `01`; a wrong DATA
  length -> error `02`. Frames for other addresses and other broadcasts are ignored (counted).
Device faults (`inject` / `clear`): `silent` (no reply), `busy` (error `03`), each for N requests or
until cleared, and `offline` (the device is unplugged: no reply until cleared; its events wait).
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import sys
from collections import Counter, deque
from typing import Final

from protocols.errors import DecodeError, ProtocolError
from protocols.hall import (
    BROADCAST,
    Beep,
    CancelEval,
    Clock,
    DeviceKind,
    Display,
    ErrorCode,
    Event,
    Fn,
    Frame,
    Identify,
    Identity,
    Level,
    Poll,
    StartEval,
    ack_reply,
    error_reply,
    identify_reply,
    next_seq,
    parse_request,
    poll_reply,
    split_frames,
)

from ...device import SimReply
from ...faults import take_fault
from .model import (
    DEFAULT_RATING_WEIGHTS,
    DISPENSER_ADDRESS,
    MAX_COUNTERS,
    MAX_RECALLS,
    HallModel,
    HallParams,
    Raised,
    keypad_address,
    pad_address,
)

TURNAROUND_S: Final = (0.005, 0.030)  # hall-protocol.md: a device starts its reply within 50 ms
FIRMWARE: Final = "1.2"
BUFFER: Final = 200  # events a device keeps (below 255, so a SEQ is never in the buffer twice)
DEVICE_FAULTS: Final = ("silent", "busy", "offline")
_FUNCTIONS: Final = {
    DeviceKind.DISPENSER: frozenset({Fn.POLL, Fn.IDENTIFY}),
    DeviceKind.KEYPAD: frozenset({Fn.POLL, Fn.IDENTIFY, Fn.DISPLAY, Fn.BEEP}),
    DeviceKind.RATING_PAD: frozenset({Fn.POLL, Fn.IDENTIFY, Fn.START_EVAL, Fn.CANCEL_EVAL}),
}
_NAMES: Final = {DeviceKind.DISPENSER: "dispenser", DeviceKind.KEYPAD: "keypad", DeviceKind.RATING_PAD: "pad"}


class HallDevice:
    """The dispenser (counter 0), a counter's caller keypad, or its rating pad."""

    protocol = "hall"

    def __init__(self, model: HallModel, kind: DeviceKind, counter: int = 0, *, seed: int = 0) -> None:
        self.model = model
        self.kind = kind
        self.counter = counter
        self.address = {
            DeviceKind.DISPENSER: DISPENSER_ADDRESS,
            DeviceKind.KEYPAD: keypad_address(counter),
            DeviceKind.RATING_PAD: pad_address(counter),
        }[kind]
        self.name = "hall-dispenser" if kind == DeviceKind.DISPENSER else f"hall-{_NAMES[kind]}-{counter}"
        self.pending: deque[Event] = deque()
        self.seq = 0  # SEQ of the last event queued
        self.display: tuple[int, int] | None = None  # (waiting, ticket) last shown on a keypad
        self.beeps = 0
        self.clock_offset_s = 0.0
        self.offline = False
        self.faults: dict[str, int | None] = {}
        self.stats: Counter[str] = Counter()
        self._rng = random.Random(f"turnaround:{seed}:{self.address}")

    # ---- SimDevice -----------------------------------------------------------------------------

    def tick(self, now: float) -> None:
        self.model.advance(now)
        self._collect()

    def respond(self, request: bytes, now: float) -> SimReply | None:
        self.tick(now)
        reply: Frame | None = None
        for frame in split_frames(request):
            if frame.is_reply:
                continue  # another device's reply, or an echo of one
            reply = self.handle_frame(frame, now) or reply
        if reply is None:
            return None
        return SimReply(reply.encode(), self._rng.uniform(*TURNAROUND_S))

    # ---- faults ---------------------------------------------------------------------------------

    def inject(self, fault: str, count: int | None = None) -> None:
        """Apply this fault to the next `count` requests addressed to the device (all, if None);
        `offline` lasts until cleared."""
        if fault not in DEVICE_FAULTS:
            raise KeyError(f"unknown hall device fault {fault!r} (known: {', '.join(DEVICE_FAULTS)})")
        if fault == "offline":
            self.offline = True
            return
        self.faults[fault] = count

    def rush(self, customers: int) -> None:
        """Control channel: `customers` walk into the hall now (shared model: any hall device)."""
        self.model.rush(customers)

    def rate(self, level: int) -> None:
        """Control channel: the next customer who rates gives `level` (4: dissatisfied)."""
        self.model.force_rating(level)

    def clear(self, fault: str | None = None) -> None:
        if fault in (None, "offline"):
            self.offline = False
        if fault is None:
            self.faults.clear()
        else:
            self.faults.pop(fault, None)

    # ---- frames ---------------------------------------------------------------------------------

    def handle_frame(self, frame: Frame, now: float) -> Frame | None:
        """The reply to one request frame, or None (not for us, broadcast, silent, offline)."""
        if frame.address == BROADCAST:
            self._broadcast(frame, now)
            return None
        if frame.address != self.address:
            self.stats["ignored_other_address"] += 1
            return None
        if self.offline:
            self.stats["offline"] += 1
            return None
        self.stats["requests"] += 1
        fault = take_fault(self.faults)
        if fault == "silent":
            self.stats["silenced"] += 1
            return None
        if fault == "busy":
            return self._error(frame.function, ErrorCode.DEVICE_BUSY)
        return self._answer(frame)

    def _answer(self, frame: Frame) -> Frame:
        try:
            req = parse_request(frame)
        except DecodeError:
            return self._error(frame.function, ErrorCode.BAD_LENGTH_OR_DATA)
        except ProtocolError:
            return self._error(frame.function, ErrorCode.UNSUPPORTED_FUNCTION)
        if req is None or frame.function not in _FUNCTIONS[self.kind]:
            return self._error(frame.function, ErrorCode.UNSUPPORTED_FUNCTION)
        if isinstance(req, Poll):
            return self._poll(req.ack_seq)
        if isinstance(req, Identify):
            return identify_reply(self.address, Identity(self.kind, FIRMWARE, self.counter))
        if isinstance(req, StartEval):
            if req.counter != self.counter:
                return self._error(frame.function, ErrorCode.BAD_LENGTH_OR_DATA)
            self.model.start_eval(self.counter, req.ticket)
            self.stats["evaluations"] += 1
        elif isinstance(req, CancelEval):
            self.stats["cancelled" if self.model.cancel_eval(self.counter) else "cancel_idle"] += 1
        elif isinstance(req, Display):
            self.display = (req.waiting, req.ticket)
            if self.model.displayed(self.counter, req.ticket):
                self.stats["display_swapped"] += 1
        elif isinstance(req, Beep):
            self.beeps += 1
        return ack_reply(self.address, frame.function)

    def _poll(self, ack_seq: int) -> Frame:
        if ack_seq and self.pending:
            if self.pending[0].seq == ack_seq:
                self.pending.popleft()
                self.stats["acknowledged"] += 1
            else:
                self.stats["stale_ack"] += 1  # the master acknowledged an old SEQ: keep ours
        head = self.pending[0] if self.pending else None
        self.stats["events_sent" if head else "polls_empty"] += 1
        return poll_reply(self.address, head)

    def _error(self, function: int, code: ErrorCode) -> Frame:
        self.stats[f"error_{code.name.lower()}"] += 1
        return error_reply(self.address, function, code)

    def _broadcast(self, frame: Frame, now: float) -> None:
        try:
            req = parse_request(frame)
        except ProtocolError:
            req = None
        if isinstance(req, Clock):
            self.clock_offset_s = req.when.timestamp() - now
            self.stats["clock_syncs"] += 1
        else:
            self.stats["ignored_broadcast"] += 1

    def _collect(self) -> None:
        while (raised := self.model.take(self.address)) is not None:
            self.seq = next_seq(self.seq)
            self.pending.append(_event(self.seq, raised))
            if len(self.pending) > BUFFER:
                self.pending.popleft()
                self.stats["dropped_overflow"] += 1


def _event(seq: int, raised: Raised) -> Event:
    f = raised.fields
    level = Level(f["level"]) if "level" in f else None
    return Event(seq, raised.code, f.get("business"), f.get("ticket"), f.get("staff"), level)


def build_hall(params: HallParams, start_time: float) -> list[HallDevice]:
    """The dispenser, then each counter's keypad and rating pad, all sharing one model."""
    model = HallModel(params, start_time)
    devices = [HallDevice(model, DeviceKind.DISPENSER, seed=params.seed)]
    for k in range(1, params.counters + 1):
        devices.append(HallDevice(model, DeviceKind.KEYPAD, k, seed=params.seed))
        devices.append(HallDevice(model, DeviceKind.RATING_PAD, k, seed=params.seed))
    return devices


# ---- CLI helpers (`gridedge sim hall` adds --port/--baud and runs the line) -----------------------


def _hours(text: str) -> tuple[float, float]:
    try:
        parts = [a.split(":") for a in text.split("-")]
        lo, hi = (int(h) + int(m) / 60 for h, m in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not HH:MM-HH:MM") from None
    return lo, hi


def _clock(text: str) -> float:
    try:
        h, m = (int(x) for x in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not HH:MM") from None
    if not (0 <= h < 24 and 0 <= m < 60):
        raise argparse.ArgumentTypeError(f"{text!r} is not a time of day")
    return h + m / 60


def _weights(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(w) for w in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not 4 comma-separated weights") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--counters", type=int, required=True, help=f"counters 1..{MAX_COUNTERS} (a keypad and a pad each)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of arrivals, service times and ratings")
    parser.add_argument(
        "--speed",
        type=float,
        default=1.0,
        help="simulated seconds per real second (e.g. 60: a day in 24 min)",
    )
    parser.add_argument(
        "--time-scale",
        type=float,
        default=1.0,
        help="hall seconds per line second: the hall alone runs faster (a busy demo hall: 10)",
    )
    parser.add_argument(
        "--start-at",
        type=_clock,
        default=None,
        help="the hall clock starts at this local time today (HH:MM). Default: the local time now; when "
        "the hall is closed now and stdout is not a terminal (CI, a pipe, a service), the opening time, "
        "so a job at night still sees tickets. A closed hall says so on stderr",
    )
    parser.add_argument("--arrivals-per-hour", type=float, default=30.0, help="base rate before peak factors")
    parser.add_argument("--hours", type=_hours, default=(8.5, 17.5), help="opening hours HH:MM-HH:MM (local)")
    parser.add_argument(
        "--patience-min", type=float, default=30.0, help="mean patience of a waiting customer"
    )
    parser.add_argument(
        "--max-recalls", type=int, default=2, help=f"recalls before giving up a no-show (0..{MAX_RECALLS})"
    )
    parser.add_argument(
        "--rating-weights",
        type=_weights,
        default=DEFAULT_RATING_WEIGHTS,
        help="weights of levels 1..4 (very satisfied .. dissatisfied), e.g. 0.6,0.25,0.1,0.05",
    )
    parser.add_argument("--rating-probability", type=float, default=0.85, help="share of customers who rate")
    parser.add_argument("--rating-timeout-s", type=float, default=30.0, help="NO_RATING after this")


def params_from(args: argparse.Namespace) -> HallParams:
    return HallParams(
        counters=args.counters,
        seed=getattr(args, "seed", 0),
        arrivals_per_hour=getattr(args, "arrivals_per_hour", 30.0),
        open_hours=getattr(args, "hours", (8.5, 17.5)),
        patience_mean_s=getattr(args, "patience_min", 30.0) * 60,
        max_recalls=getattr(args, "max_recalls", 2),
        rating_weights=getattr(args, "rating_weights", DEFAULT_RATING_WEIGHTS),
        rating_probability=getattr(args, "rating_probability", 0.85),
        rating_timeout_s=getattr(args, "rating_timeout_s", 30.0),
        time_scale=getattr(args, "time_scale", 1.0),
        start_hour=getattr(args, "start_at", None),
    )


def build(args: argparse.Namespace, start_time: float) -> list[HallDevice]:
    params = params_from(args)
    devices = build_hall(params, start_time)  # HallModel checks: ConfigError names the option
    if params.start_hour is None and not devices[0].model.is_open() and not _interactive():
        # nobody is watching this closed hall (a CI job at night, a user in another time zone): open it
        params = dataclasses.replace(params, start_hour=params.open_hours[0])
        devices = build_hall(params, start_time)
        print(
            f"gridedge sim hall: the hall is closed at this local time and stdout is not a terminal: its "
            f"clock starts at the opening, {params.open_hours[0]:g} h (give --start-at to choose)",
            file=sys.stderr,
            flush=True,
        )
    return devices


def quiet_reasons(devices: list[HallDevice]) -> list[str]:
    """Why this hall is silent now, if it is for a reason of its own (`firmware_sim.runner` prints it)."""
    return devices[0].model.quiet_reasons() if devices else []


def _interactive() -> bool:
    return sys.stdout.isatty()
