"""DL/T 645 meters (2007 and 1997) on the shared RS-485 bus, as a gateway driver.

Layer: gateway driver. A poll reads the configured items one request each (following up the 2007
"more frames" replies), decodes them with the `protocols.dlt645` catalogue and maps them onto the
canonical vocabulary (status word 3 becomes relay / relay_commanded / keep_power / pre_trip_alarm).
An item the meter refuses (abnormal reply: "no requested data") marks only that item `error`; a meter
that does not answer at all fails the poll. Commands: 0x1C remote control (trip, allow close, close,
alarm, keep-power) with the configured password level, and the broadcast time sync 0x08.

Meter clocks run on China Standard Time (UTC+8, no daylight saving), which the time sync and the
command's valid-until time use. After a gap in the live polls, a 2007 meter's daily freezes and
power-down records are back-filled a few reads per poll (`dlt645_backfill`).

Must not: open the port (the Bus owns it) or know any topic or payload.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Mapping
from typing import Any, ClassVar, Final

from protocols.dlt645 import (
    BROADCAST,
    ControlCommand,
    Credentials,
    Item,
    MeterRefused,
    ReadReply,
    ReplyMatcher,
    UnknownItem,
    Value,
    Version,
    canonical_values,
    check_reply,
    control_ciphertext_request,
    control_request,
    decode_values,
    join_read_replies,
    lookup,
    parse_read_reply,
    read_follow_request,
    read_request,
    time_sync_request,
)
from protocols.dlt645 import Frame as DltFrame
from protocols.errors import ConfigError, DecodeError, ProtocolError
from protocols.messages import EventKind, Quality, Scalar
from protocols.vocabulary import CANONICAL_NAMES

from ...bus import Priority
from ...errors import BusError, DeviceError, GatewayError
from ...line import LineSettings, Timing
from ..base import CommandOutcome, CommandRejected, DeviceEvent, Driver, DriverContext, PollResult, Sample
from .backfill import Backfill, BackfillPolicy
from .config import Dlt645Device

CST: Final = dt.timezone(dt.timedelta(hours=8), "CST")
FRAME_OVERHEAD: Final = 12  # 68 A0..A5 68 C L .. CS 16
MIN_FRAME: Final = FRAME_OVERHEAD  # a frame without data
MAX_FOLLOW_UPS: Final = 16
BLOCK_GUESS_BYTES: Final = 20  # a tariff block of total + 4 tariffs
CONTROL_VALID_S: Final = 300
ACTIONS: Final[dict[str, ControlCommand]] = {
    "trip": ControlCommand.TRIP,
    "allow_close": ControlCommand.ALLOW_CLOSE,
    "close": ControlCommand.CLOSE,
    "alarm_on": ControlCommand.ALARM_ON,
    "alarm_off": ControlCommand.ALARM_OFF,
    "keep_power_on": ControlCommand.KEEP_POWER_ON,
    "keep_power_off": ControlCommand.KEEP_POWER_OFF,
}
# actions that are not a 0x1C command byte
OTHER_ACTIONS: Final = frozenset({"time_sync", "set_time", "read", "raw_control"})
READ_BACK: Final = "status_word_3"
ERR_NO_DATA: Final = 0x02  # 2007 abnormal reply: "no requested data"


def block_members(item: Item, version: Version) -> list[Item]:
    """The single items a block stands for (those in the catalogue), in block order."""
    if not item.is_block:
        return []
    names = [name for name, _ in item.parts]
    if item.tariffs is not None:
        names += [item.tariffs.format(n=n) for n in range(1, 5)]
    members = []
    for name in names:
        try:
            member = lookup(name, version)
        except UnknownItem:
            continue
        if not member.is_block:
            members.append(member)
    return members


def resolve_items(config: Dlt645Device) -> list[Item]:
    items, problems = [], []
    for key in config.items:
        try:
            items.append(lookup(key, config.version))
        except UnknownItem as exc:
            problems.append(f"items: {exc}")
    if problems:
        raise ConfigError(problems)
    return items


class Dlt645Driver(Driver):
    kind: ClassVar[str] = "dlt645"
    config_model: ClassVar[type[Dlt645Device]] = Dlt645Device
    actions: ClassVar[frozenset[str]] = frozenset(ACTIONS) | OTHER_ACTIONS

    def __init__(self, config: Dlt645Device, bus: Any, ctx: DriverContext) -> None:
        super().__init__(config, bus, ctx)
        self.cfg = config
        self.version = Version(config.version)
        self.items = resolve_items(config)
        self._unserved_blocks: set[int] = set()
        self._next_clock_check = 0.0
        self.backfill: Backfill | None = None
        # `backfill` (default on) is a device option; 1997 meters keep no freezes we read
        if self.version == Version.V2007 and config.backfill:
            policy = BackfillPolicy.for_interval(config.interval_s)
            self.backfill = Backfill(self.id, self._read_decoded, ctx.state_dir, policy, ctx.log)

    @classmethod
    def poll_airtime_s(cls, config: Any, line: LineSettings) -> float:
        total = 0.0
        di_size = 4 if config.version == "2007" else 2
        for item in resolve_items(config):
            request = config.preamble + FRAME_OVERHEAD + di_size
            reply = 4 + FRAME_OVERHEAD + di_size + (item.size or BLOCK_GUESS_BYTES)
            total += line.wire_time(request + reply) + config.turnaround_ms / 1000 + cls.line_gap_s(line)
        return total

    @classmethod
    def line_gap_s(cls, line: LineSettings) -> float:
        # DL/T 645 has no silence rule; meters want a short pause after the last frame on the line
        return max(4 * line.char_time(), 0.02)

    # ---- transactions ---------------------------------------------------------------------------

    async def transact(
        self, request: DltFrame, priority: Priority = Priority.POLL, *, once: bool = False
    ) -> DltFrame:
        """One request and its reply. `once`: never re-sent when the reply is lost (a control command
        the meter may already have carried out); reads are retried as configured."""
        timing = self.transaction_timing(
            self.cfg.reply_timeout_ms, self.cfg.byte_timeout_ms, 0 if once else self.cfg.retries
        )
        reply: DltFrame = await self.bus.transact(
            request.encode(self.cfg.preamble),
            lambda: ReplyMatcher(request.address, request.function),
            timing,
            priority=priority,
            device=self.id,
        )
        return reply

    async def read_item(self, item: Item, priority: Priority = Priority.POLL) -> ReadReply:
        """One item, following up continuation frames; raises MeterRefused, DecodeError, BusError."""
        address, v = self.cfg.address, self.version
        first = parse_read_reply(await self.transact(read_request(address, item.di, v), priority), v, item.di)
        if not first.follow_up:
            return first
        parts = [first]
        while parts[-1].follow_up and len(parts) <= MAX_FOLLOW_UPS:
            request = read_follow_request(address, item.di, len(parts), v)
            parts.append(parse_read_reply(await self.transact(request, priority), v, item.di))
        return ReadReply(address, v, item.di, join_read_replies(parts), False)

    # ---- polling --------------------------------------------------------------------------------

    async def poll(self) -> PollResult:
        ts_ms = self.ctx.clock_ms()
        values: dict[str, Scalar] = {}
        quality: dict[str, Quality] = {}
        answered = stopped = False
        for i, item in enumerate(self.items):
            try:
                decoded = await self.read_values(item, quality)
            except (MeterRefused, DecodeError, ProtocolError) as exc:
                answered = True
                self._mark(quality, item, exc)
                continue
            except BusError as exc:
                if not answered:
                    raise  # a silent meter: fail fast, do not spend airtime on its other items
                # it stopped answering mid-poll: every further item would cost the bus a timeout and
                # its retries while the other meters wait, so the rest are errors without asking
                self.ctx.log.warning("%s: stopped answering mid-poll: %s", self.id, exc)
                for rest in self.items[i:]:
                    self._mark(quality, rest, None)
                stopped = True
                break
            answered = True
            values.update(canonical_values(decoded))
        if not values and quality:
            raise DeviceError(f"{self.id}: the meter refused every item")
        result = PollResult(samples=[Sample(seq=0, ts=ts_ms, values=values, quality=quality)])
        result.events += self.relay_events(ts_ms, values)
        if not stopped:  # the clock check and the back-fill wait for a poll it answers through
            await self._check_clock(ts_ms, values, result)
            if self.backfill is not None and not self.probing:
                await self.backfill.after_poll(ts_ms, result)
        return result

    async def _read_decoded(self, item: Item) -> Mapping[str, Value]:
        """A back-fill read: lowest priority, so commands and other work queued meanwhile go first."""
        return decode_values(item, (await self.read_item(item, Priority.PROBE)).data)

    async def _check_clock(self, ts_ms: int, values: dict[str, Scalar], result: PollResult) -> None:
        """Every `clock_check_s`: read the meter's clock, publish the skew, and correct it (a set-time
        to this meter's address) past the threshold, but only from a synchronised gateway clock."""
        now = time.monotonic()
        if self.version != Version.V2007 or not self.cfg.clock_check_s or now < self._next_clock_check:
            return
        self._next_clock_check = now + self.cfg.clock_check_s
        item = lookup("meter_datetime", self.version)
        try:
            meter_time = decode_values(item, (await self.read_item(item)).data)["meter_datetime"]
        except (GatewayError, ProtocolError) as exc:
            self.ctx.log.info("%s: clock not read: %s", self.id, exc)
            return
        if not isinstance(meter_time, dt.datetime):
            return
        skew = round((meter_time - dt.datetime.now(CST).replace(tzinfo=None)).total_seconds(), 1)
        values["meter_clock_skew_s"] = skew
        if not self.cfg.time_sync or abs(skew) <= self.cfg.time_sync_threshold_s:
            return
        if not self.ctx.clock_synchronised():
            self.ctx.log.warning(
                "%s: meter clock is %+.0f s off; not corrected: this gateway's clock is not NTP-synchronised",
                self.id,
                skew,
            )
            return
        await self.execute("set_time", {})
        result.events.append(DeviceEvent(ts_ms, EventKind.CLOCK_SET, {"skew_s": skew}))
        self._next_clock_check = now + min(self.cfg.clock_check_s, 60)  # verify the correction soon

    async def read_values(self, item: Item, quality: dict[str, Quality]) -> dict[str, Any]:
        """Decoded values of one item. A block the meter answers with "no requested data" is read
        member by member, now and in later polls (many domestic meters serve no block DIs)."""
        if item.di not in self._unserved_blocks:
            try:
                return dict(decode_values(item, (await self.read_item(item)).data))
            except MeterRefused as exc:
                members = block_members(item, self.version)
                if not members or exc.code != ERR_NO_DATA:
                    raise
                self._unserved_blocks.add(item.di)
                self.ctx.log.info(
                    "%s: no block reads for %s: reading its %d items", self.id, item, len(members)
                )
        values: dict[str, Any] = {}
        for member in block_members(item, self.version):
            try:
                values.update(decode_values(member, (await self.read_item(member)).data))
            except (MeterRefused, DecodeError) as exc:
                self._mark(quality, member, exc)
        return values

    def _mark(self, quality: dict[str, Quality], item: Item, exc: Exception | None) -> None:
        if exc is not None:
            self.ctx.log.warning("%s: %s: %s", self.id, item, exc)
        if item.name in CANONICAL_NAMES:
            quality[item.name] = "error"

    # ---- commands -------------------------------------------------------------------------------

    def check_command(self, action: str, params: Mapping[str, Any]) -> None:
        super().check_command(action, params)
        controls = action in ACTIONS or action == "raw_control"
        if controls and not self.cfg.control:
            raise CommandRejected(f"{self.id}: remote control is not enabled for this meter (control: false)")
        if controls and self.version != Version.V2007:
            raise CommandRejected(f"{self.id}: 0x1C remote control needs a DL/T 645-2007 meter")
        if action == "read":
            key = params.get("item") or params.get("di")
            if not isinstance(key, str):
                raise CommandRejected("read needs params.item (a name) or params.di (hex)")
            try:
                lookup(key, self.version)
            except UnknownItem as exc:
                raise CommandRejected(str(exc)) from None
        if action == "raw_control":
            text = params.get("ciphertext")
            level = params.get("level", 98)
            if not isinstance(text, str) or not isinstance(level, int):
                raise CommandRejected("raw_control needs params.ciphertext (hex) and params.level (96 or 98)")
            try:
                bytes.fromhex(text)
            except ValueError:
                raise CommandRejected("raw_control: params.ciphertext is not hex") from None

    async def execute(self, action: str, params: Mapping[str, Any]) -> CommandOutcome:
        self.check_command(action, params)
        now = dt.datetime.now(CST).replace(tzinfo=None)
        if action in ("time_sync", "set_time"):
            # set_time: this meter only; time_sync: the broadcast (every meter on the line, no reply)
            broadcast = action == "time_sync" and params.get("broadcast", True)
            frame = time_sync_request(now, BROADCAST if broadcast else self.cfg.address)
            await self.bus.send(
                frame.encode(self.cfg.preamble), Timing(0, 0, self.line_gap_s(self.bus.line), 0.5)
            )
            return CommandOutcome("done", answer={"time": now.isoformat(timespec="seconds")})
        if action == "read":
            item = lookup(str(params.get("item") or params.get("di")), self.version)
            try:
                reply = await self.read_item(item, Priority.COMMAND)
                values = decode_values(item, reply.data)
            except MeterRefused as exc:
                return CommandOutcome("failed", f"meter refused the read of {item}: {exc}")
            except (GatewayError, ProtocolError) as exc:
                return CommandOutcome("failed", f"read of {item} failed: {exc}")
            return CommandOutcome("done", answer={"di": item.di_hex, "values": _plain(values)})
        creds = Credentials(self.cfg.password_level, self.cfg.password, self.cfg.operator)
        if action == "raw_control":
            # the utility's master station encrypted it for this meter's ESAM: sent unchanged
            esam = Credentials(int(params.get("level", 98)), self.cfg.password, self.cfg.operator)
            request = control_ciphertext_request(self.cfg.address, bytes.fromhex(params["ciphertext"]), esam)
        else:
            command = ACTIONS[action]
            until = now + dt.timedelta(seconds=CONTROL_VALID_S)
            request = control_request(self.cfg.address, command, until, creds)
        try:
            check_reply(await self.transact(request, Priority.COMMAND, once=True))
        except MeterRefused as exc:
            return CommandOutcome("failed", f"meter refused {action}: {exc}", state=await self._read_back())
        except (GatewayError, ProtocolError) as exc:
            # sent once: the meter may have acted on it; its relay state tells
            return CommandOutcome("failed", f"{action} not confirmed: {exc}", state=await self._read_back())
        return CommandOutcome("done", answer={"function": "0x1c"}, state=await self._read_back())

    async def _read_back(self) -> dict[str, Scalar | None]:
        try:
            item = lookup(READ_BACK, self.version)
            reply = await self.read_item(item, Priority.COMMAND)
            return dict(canonical_values(decode_values(item, reply.data)))
        except (GatewayError, ProtocolError):
            return {}


DRIVER = Dlt645Driver


def _plain(values: Mapping[str, Any]) -> dict[str, Any]:
    """Decoded values as JSON-friendly builtins (dates as ISO text)."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            out[key] = _plain(value)
        elif isinstance(value, dt.datetime | dt.date | dt.time):
            out[key] = value.isoformat()
        else:
            out[key] = value
    return out
