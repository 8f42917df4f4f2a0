"""A business hall (dispenser, counters' caller keypads and rating pads on one RS-485 line) as a driver.

Layer: gateway driver. One poll visits every device of the hall on its Bus (hall-protocol.md): first
what the device must be told (a keypad's display, a pad's start/cancel evaluation), then POLLs that
acknowledge the previous event's SEQ, up to `MAX_EVENTS_PER_VISIT` events per device and visit. A SEQ
already taken (the device re-sends it because our acknowledgement was lost) is acknowledged again and
dropped, never applied twice. Key presses drive `hall_queue.HallQueue`, whose events become the
hall's MQTT events and whose state — with each device's last SEQ — is written to
`state_dir/hall-<id>.json` (atomically, before the events leave the driver), so a restart neither
loses nor duplicates the queue.

Each device has its own health (the pure `gateway.health` state machine, published as
`<id>-dispenser`, `<id>-keypad-<k>`, `<id>-pad-<k>`): a keypad that stops answering is quarantined
(probed with back-off, so it does not slow the others) and its counter reported offline; the poll
fails only when no device of the hall answers.

Must not: open the port (the Bus owns it) or know any topic or payload.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Final

from protocols.errors import DecodeError, ProtocolError
from protocols.hall import (
    BadEvent,
    DeviceRefused,
    Event,
    Evt,
    Frame,
    ReplyMatcher,
    cancel_eval_request,
    clock_broadcast,
    display_request,
    parse_ack_reply,
    parse_poll_reply,
    poll_request,
    start_eval_request,
)

from ...bus import Bus, Priority
from ...errors import BusError, DeviceError, GatewayError
from ...health import DeviceHealth, HealthPolicy
from ...line import LineSettings, Timing
from ...statefile import write_atomically
from ..base import CommandOutcome, CommandRejected, DeviceEvent, Driver, DriverContext, PollResult
from .config import HallDevice
from .queue import HallQueue, Out, Push

MAX_EVENTS_PER_VISIT: Final = 4  # a device with a backlog is drained a few events per visit
POLL_BYTES: Final = 10  # FF 68 L L 68 ADDR FUNC ACK CS 16
REPLY_BYTES: Final = 11  # an empty reply is 9 bytes, one with an event 11-14
CLOCK_SYNC_S: Final = 3600.0
PUSH_ATTEMPTS: Final = 3
SUB_POLICY: Final = HealthPolicy(degrade_after=1, quarantine_after=3, backoff_min_s=5.0, backoff_max_s=120.0)


@dataclass
class Station:
    """One device of the hall on the wire."""

    address: int
    role: str  # dispenser | keypad | pad
    counter: int  # 0 for the dispenser
    dev: str  # the id its health is published under
    health: DeviceHealth = field(default_factory=lambda: DeviceHealth(SUB_POLICY))
    last_seq: int = 0  # SEQ of the last event applied
    ack: int = 0  # SEQ to acknowledge in the next POLL
    shown: tuple[int, int] | None = None  # (waiting, ticket) the keypad acknowledged last
    pushes: list[tuple[Push, int]] = field(default_factory=list)  # (push, attempts left)


class HallDriver(Driver):
    kind: ClassVar[str] = "hall"
    config_model: ClassVar[type[HallDevice]] = HallDevice
    actions: ClassVar[frozenset[str]] = frozenset({"call_next", "display", "pause", "resume", "cancel_eval"})

    def __init__(self, config: HallDevice, bus: Bus, ctx: DriverContext) -> None:
        super().__init__(config, bus, ctx)
        self.cfg = config
        hall = config.hall or config.id
        self.queue = HallQueue(
            hall,
            {c.counter: (c.staff, tuple(c.businesses)) for c in config.counters},
            businesses=config.businesses,
            max_recall=config.max_recall,
            day_end=config.day_end,
        )
        self.stations: list[Station] = [Station(config.dispenser, "dispenser", 0, f"{config.id}-dispenser")]
        for c in config.counters:
            self.stations.append(
                Station(c.keypad_address(), "keypad", c.counter, f"{config.id}-keypad-{c.counter}")
            )
            self.stations.append(Station(c.pad_address(), "pad", c.counter, f"{config.id}-pad-{c.counter}"))
        self.by_counter = {(s.role, s.counter): s for s in self.stations}
        self.state_path = Path(ctx.state_dir) / f"hall-{config.id}.json"
        self.stats: dict[str, int] = {
            "events": 0,
            "duplicates": 0,
            "bad_events": 0,
            "pushes_failed": 0,
            "busy": 0,
        }
        self._outbox: list[Out] = []  # events from commands, published with the next poll
        self._last_clock = 0.0
        self._saved: str | None = None  # the state text last written
        self._restore()

    # ---- airtime --------------------------------------------------------------------------------

    @classmethod
    def poll_airtime_s(cls, config: Any, line: LineSettings) -> float:
        visits = len(config.addresses())
        per_visit = (
            line.wire_time(POLL_BYTES + REPLY_BYTES) + config.turnaround_ms / 1000 + cls.line_gap_s(line)
        )
        return float(visits * per_visit)

    def health_devices(self) -> list[str]:
        return [self.id, *(s.dev for s in self.stations)]

    # ---- polling --------------------------------------------------------------------------------

    async def poll(self) -> PollResult:
        outs = self._outbox
        self._outbox = []
        outs += self.queue.tick(self.ctx.clock_ms())
        await self._clock_sync()
        answered = attempted = 0
        for st in self.stations:
            if not st.health.may_poll(time.monotonic()):
                continue
            attempted += 1
            self.probing = st.health.state == "probing"
            started = time.monotonic()
            try:
                outs += await self._visit(st)
            except (BusError, DeviceError) as exc:
                outs += self._station_failed(st, exc)
                continue
            finally:
                self.probing = False
            answered += 1
            was = st.health.state
            st.health.success(self.ctx.clock_ms(), (time.monotonic() - started) * 1000)
            if was != "online" and st.role == "keypad":
                outs += self.queue.keypad_online(st.counter, True, self.ctx.clock_ms())
        self._plan_displays()
        for push in self.queue.take_pushes():
            self._queue_push(push)
        await self._save()
        if answered == 0 and attempted:
            self._outbox = outs  # day-end abandonments, command events: published with the next poll
            raise GatewayError(f"{self.id}: no device of the hall answered")
        result = PollResult(events=[DeviceEvent(o.ts_ms, o.kind, o.data) for o in outs])
        result.health = {s.dev: s.health for s in self.stations if s.health.changed}
        return result

    async def _visit(self, st: Station) -> list[Out]:
        outs: list[Out] = []
        await self._send_pushes(st)
        for _ in range(MAX_EVENTS_PER_VISIT):
            request = poll_request(st.address, st.ack)
            reply = await self._transact(request)
            try:
                event = parse_poll_reply(reply)
            except BadEvent as exc:
                self.stats["bad_events"] += 1
                self.ctx.log.warning("%s: %s", st.dev, exc)
                st.ack = exc.seq
                continue
            except DeviceRefused as exc:
                raise DeviceError(f"{st.dev}: {exc}") from exc
            except DecodeError as exc:
                raise DeviceError(f"{st.dev}: {exc}") from exc
            st.ack = 0
            if event is None:
                break
            st.ack = event.seq
            if event.seq == st.last_seq:
                self.stats["duplicates"] += 1  # our acknowledgement was lost: already applied
                continue
            st.last_seq = event.seq
            self.stats["events"] += 1
            outs += self._apply(st, event, self.ctx.clock_ms())
        return outs

    def _apply(self, st: Station, event: Event, ts_ms: int) -> list[Out]:
        if st.role == "dispenser":
            return self.queue.dispenser(event, ts_ms)
        if st.role == "keypad":
            return self.queue.keypad(st.counter, event, ts_ms)
        return self.queue.pad(st.counter, event, ts_ms)

    def _station_failed(self, st: Station, exc: GatewayError) -> list[Out]:
        first = st.health.consecutive_failures == 0
        st.health.failure(time.monotonic(), type(exc).__name__)
        (self.ctx.log.warning if first else self.ctx.log.debug)("%s: %s", st.dev, exc)
        if st.role == "keypad" and st.health.state == "quarantined":
            st.shown = None  # show it everything again once it is back
            return self.queue.keypad_online(st.counter, False, self.ctx.clock_ms())
        return []

    async def _transact(self, request: Frame, priority: Priority = Priority.POLL) -> Frame:
        timing = self.transaction_timing(
            self.cfg.reply_timeout_ms, self.cfg.byte_timeout_ms, self.cfg.retries
        )
        return await self.bus.transact(
            request.encode(),
            lambda: ReplyMatcher.for_request(request),
            timing,
            priority=priority,
            device=self.id,
        )

    # ---- pushes to devices ----------------------------------------------------------------------

    def _plan_displays(self) -> None:
        for c in self.cfg.counters:
            st = self.by_counter[("keypad", c.counter)]
            want = self.queue.display(c.counter)
            if st.shown != (want.waiting, want.ticket) and not any(p.what == "display" for p, _ in st.pushes):
                st.pushes.append((want, PUSH_ATTEMPTS))

    def _queue_push(self, push: Push) -> None:
        role = "keypad" if push.what == "display" else "pad"
        st = self.by_counter.get((role, push.counter))
        if st is not None:
            if push.what == "start_eval":  # a newer evaluation replaces one not yet sent
                st.pushes = [(p, n) for p, n in st.pushes if p.what != "start_eval"]
            st.pushes.append((push, PUSH_ATTEMPTS))

    async def _send_pushes(self, st: Station) -> None:
        while st.pushes:
            push, attempts = st.pushes[0]
            if push.what == "display":  # always the latest figures, not those when it was queued
                push = self.queue.display(push.counter)
            try:
                await self._push(st, push)
            except DeviceError as exc:
                st.pushes.pop(0)
                self.stats["pushes_failed"] += 1
                self.ctx.log.warning("%s: %s refused: %s", st.dev, push.what, exc)
                continue
            except BusError:
                st.pushes[0] = (push, attempts - 1)
                if attempts <= 1:
                    st.pushes.pop(0)
                    self.stats["pushes_failed"] += 1
                raise
            st.pushes.pop(0)
            if push.what == "display":
                st.shown = (push.waiting, push.ticket)

    async def _push(self, st: Station, push: Push, priority: Priority = Priority.EVENT) -> None:
        if push.what == "display":
            request = display_request(st.address, push.waiting, push.ticket)
        elif push.what == "start_eval":
            request = start_eval_request(st.address, push.ticket, push.counter, push.staff)
        else:
            request = cancel_eval_request(st.address)
        reply = await self._transact(request, priority)
        try:
            parse_ack_reply(reply, request.function)
        except DeviceRefused as exc:
            self.stats["busy"] += exc.code == 3
            raise DeviceError(f"{st.dev}: {exc}") from exc
        except ProtocolError as exc:
            raise DeviceError(f"{st.dev}: {exc}") from exc

    async def _clock_sync(self) -> None:
        now = time.monotonic()
        if now - self._last_clock < CLOCK_SYNC_S or not self.ctx.clock_synchronised():
            return
        self._last_clock = now
        local = dt.datetime.fromtimestamp(self.ctx.clock_ms() / 1000)
        frame = clock_broadcast(local).encode()
        try:
            await self.bus.send(frame, Timing(0, 0, self.line_gap_s(self.bus.line), 0.05))
        except BusError as exc:  # the polls that follow report the line; the broadcast waits an hour
            self.ctx.log.warning("%s: clock broadcast not sent: %s", self.id, exc)

    # ---- commands -------------------------------------------------------------------------------

    def check_command(self, action: str, params: Mapping[str, Any]) -> None:
        super().check_command(action, params)
        self._counter_param(params)
        if action == "display":
            for key in ("waiting", "ticket"):
                value = params.get(key)
                if value is not None and not (isinstance(value, int) and 0 <= value <= 0xFFFF):
                    raise CommandRejected(f"display: params.{key} must be an integer 0..65535")

    def _counter_param(self, params: Mapping[str, Any]) -> int:
        counter = params.get("counter")
        known = sorted(c.counter for c in self.cfg.counters)
        if not isinstance(counter, int) or counter not in known:
            raise CommandRejected(f"params.counter must be one of this hall's counters {known}")
        return counter

    async def execute(self, action: str, params: Mapping[str, Any]) -> CommandOutcome:
        self.check_command(action, params)
        counter = self._counter_param(params)
        now = self.ctx.clock_ms()
        if action in ("call_next", "pause", "resume"):
            code = {"call_next": Evt.CALL_NEXT, "pause": Evt.PAUSE, "resume": Evt.RESUME}[action]
            outs = self.queue.keypad(counter, Event(0, code), now)
            self._outbox += outs
            for push in self.queue.take_pushes():
                self._queue_push(push)
            c = self.queue.counters[counter]
            await self._save()
            return CommandOutcome(
                "done",
                answer={"events": [o.kind.value for o in outs]},
                state={"state": c.state, "ticket": c.ticket},
            )
        if action == "display":
            st = self.by_counter[("keypad", counter)]
            want = self.queue.display(counter)
            push = Push(
                "display",
                counter,
                ticket=params.get("ticket", want.ticket),
                waiting=params.get("waiting", want.waiting),
            )
        else:
            st = self.by_counter[("pad", counter)]
            push = Push("cancel_eval", counter)
        try:
            await self._push(st, push, Priority.COMMAND)
        except GatewayError as exc:
            return CommandOutcome("failed", f"{action} at counter {counter}: {exc}")
        if action == "display":
            st.shown = (push.waiting, push.ticket)
        return CommandOutcome(
            "done", answer={"counter": counter, "ticket": push.ticket, "waiting": push.waiting}
        )

    # ---- events and persistence -----------------------------------------------------------------

    def _state(self) -> dict[str, Any]:
        return {
            "queue": self.queue.snapshot(),
            "stations": {str(s.address): {"last_seq": s.last_seq, "ack": s.ack} for s in self.stations},
        }

    def _restore(self) -> None:
        try:
            state = json.loads(self.state_path.read_text())
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            self.ctx.log.error(
                "%s: state %s unreadable, starting with an empty queue: %s", self.id, self.state_path, exc
            )
            return
        try:
            self.queue.restore(state["queue"])
        except (KeyError, TypeError, ValueError) as exc:
            self.ctx.log.error(
                "%s: state %s does not fit, starting with an empty queue: %s", self.id, self.state_path, exc
            )
            return
        for st in self.stations:
            saved = state.get("stations", {}).get(str(st.address))
            if saved:
                st.last_seq, st.ack = int(saved["last_seq"]), int(saved["ack"])
        self.ctx.log.info(
            "%s: queue restored: %d waiting, %d ticket(s) today",
            self.id,
            len(self.queue.order),
            len(self.queue.tickets),
        )

    async def _save(self) -> None:
        text = json.dumps(self._state(), separators=(",", ":"))
        if text == self._saved:
            return
        await asyncio.to_thread(write_atomically, self.state_path, text)
        self._saved = text

    async def aclose(self) -> None:
        await self._save()


DRIVER = HallDriver
