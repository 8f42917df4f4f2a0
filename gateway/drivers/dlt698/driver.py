"""DL/T 698.45 meters on the shared RS-485 bus, as a gateway driver.

Layer: gateway driver. A poll reads the configured objects with GET-Request-NormalList (one request
per `list_max` objects, plaintext, no LINK or CONNECT on a serial line: dlt698.md §7) and maps them
onto the canonical vocabulary with the `protocols.dlt698` catalogue. An object the meter marks with a
DAR marks only its values `error`; a meter that refuses lists (ERROR-Response) is read object by
object from then on; a meter that does not answer at all fails the poll (the scheduler's quarantine).
Every `clock_check_s` the meter clock (40000200) rides along in the list and `meter_clock_skew_s` is
published. After a gap the daily freezes are back-filled (`backfill`).

Commands: plaintext ACTIONs on 8000 / 8001 (trip, close, allow_close, alarm, keep-power) followed by a
read-back of the relay state (a command whose reply was lost is never repeated blindly: it may have
run), SET of the clock (`set_time`) or the broadcast time (`time_sync`), `read` (optionally as
plaintext + RN: the meter's MAC comes back in the command result with `mac_verified: false`, because
this gateway holds no ESAM and never claims to have checked it), and `raw_control` / `raw_apdu`, which
relay the master station's ciphertext + MAC SECURITY-Request unchanged and return the meter's reply
APDU unchanged (hex). Meter clocks run on China Standard Time (UTC+8).

Must not: open the port (the Bus owns it) or know any topic or payload.
"""

from __future__ import annotations

import datetime as dt
import secrets
import time
from collections.abc import Mapping
from typing import Any, ClassVar, Final

from protocols.dlt698 import (
    Address,
    ErrorResponse,
    Frame,
    GetResult,
    MeterRefused,
    Oad,
    RecordResult,
    Rsd,
    SecurityResponse,
    action_request,
    canonical_values,
    clock_skew_s,
    dar_name,
    object_values,
    parse_reply,
    relay_request,
    set_request,
    to_python,
)
from protocols.errors import ProtocolError
from protocols.messages import EventKind, Quality, Scalar

from ...bus import Priority
from ...errors import BusError, DeviceError, GatewayError
from ...line import LineSettings, Timing
from ..base import CommandOutcome, CommandRejected, DeviceEvent, Driver, DriverContext, PollResult, Sample
from . import plan
from .backfill import COLUMNS, DAILY_FREEZE, Backfill, BackfillPolicy
from .config import Dlt698Device, object_oad
from .control import (
    ACTIONS,
    BROADCAST_TIME,
    CLOCK,
    OTHER_ACTIONS,
    RAW_ACTIONS,
    READ_BACK,
    clock_data,
    relayed_apdu,
)
from .session import Session

CST: Final = dt.timezone(dt.timedelta(hours=8), "CST")
RN_BYTES: Final = 16


def meter_now() -> dt.datetime:
    """This gateway's clock as a meter's naive local time (China Standard Time)."""
    return dt.datetime.now(CST).replace(tzinfo=None)


class Dlt698Driver(Driver):
    kind: ClassVar[str] = "dlt698"
    config_model: ClassVar[type[Dlt698Device]] = Dlt698Device
    actions: ClassVar[frozenset[str]] = frozenset(ACTIONS) | OTHER_ACTIONS

    def __init__(self, config: Dlt698Device, bus: Any, ctx: DriverContext) -> None:
        super().__init__(config, bus, ctx)
        self.cfg = config
        self.session = Session(
            bus,
            Address(config.address),
            ca=config.client_address,
            preamble=config.preamble,
            device=self.id,
            timing=self._timing,
        )
        self.oads = plan.resolve(config)
        self.lists = True  # the meter answers GET-Request-NormalList (until it refuses one)
        self._next_clock_check = 0.0
        self.backfill: Backfill | None = None
        if config.backfill:
            policy = BackfillPolicy.for_interval(config.interval_s)
            self.backfill = Backfill(self.id, self.read_records, ctx.state_dir, policy, ctx.log)

    @classmethod
    def poll_airtime_s(cls, config: Any, line: LineSettings) -> float:
        total = 0.0
        digits = len(config.address)
        for chunk in plan.chunks(plan.resolve(config), config.list_max):
            request = plan.frame_size(digits, plan.list_request_apdu(chunk), config.preamble)
            reply = plan.frame_size(digits, plan.list_reply_apdu(chunk), plan.REPLY_PREAMBLE)
            total += line.wire_time(request + reply) + config.turnaround_ms / 1000 + cls.line_gap_s(line)
        for oad in plan.resolve_secured(config):
            request = plan.frame_size(digits, plan.secured_request_apdu(), config.preamble)
            reply = plan.frame_size(digits, plan.secured_reply_apdu(oad), plan.REPLY_PREAMBLE)
            total += line.wire_time(request + reply) + config.turnaround_ms / 1000 + cls.line_gap_s(line)
        return total

    @classmethod
    def line_gap_s(cls, line: LineSettings) -> float:
        # 600888 waits >= 33 bit times after the last byte (dlt698.md §1): 4 characters is that with a
        # margin (44 bits at 8E1). Not DL/T 645's 20 ms floor: at 9600 baud that was 13 % of a read
        # (bench/bus_efficiency.py --kind dlt698). A 645 meter on the same line still gets its 20 ms
        # before its own requests; meters or adapters wanting more get the bus's gap_ms. A line of
        # unknown speed (a serial server over TCP) keeps 20 ms.
        return 4 * line.char_time() if line.baud else 0.02

    # ---- transactions ---------------------------------------------------------------------------

    def _timing(self) -> Timing:
        return self.transaction_timing(self.cfg.reply_timeout_ms, self.cfg.byte_timeout_ms, self.cfg.retries)

    @property
    def address(self) -> Address:
        return self.session.address

    @address.setter
    def address(self, value: Address) -> None:
        # `gridedge read` may aim a driver at a wildcard (AF type 1), which no gateway config may
        self.session.address = value

    async def read_records(self, rsd: Rsd) -> RecordResult:
        """Daily freezes by `rsd` (back-fill reads: lowest priority, commands and polls go first)."""
        return await self.session.records(DAILY_FREEZE, rsd, COLUMNS, Priority.PROBE)

    # ---- polling --------------------------------------------------------------------------------

    async def poll(self) -> PollResult:
        ts_ms = self.ctx.clock_ms()
        oads = list(self.oads)
        clock_due = self._clock_due()
        if clock_due and CLOCK not in oads:
            oads.append(CLOCK)
        results, stopped = await self._read_all(oads) if oads else ([], False)
        events: list[DeviceEvent] = []
        if not stopped:
            stopped = await self._read_secured(ts_ms, results, events)
        values: dict[str, Scalar] = {}
        quality: dict[str, Quality] = {}
        meter_time = None
        for got in results:
            if got.data is None:
                self._mark(quality, got)
                continue
            values.update(canonical_values(got.oad, got.data))
            if got.oad == CLOCK:
                meter_time = object_values(CLOCK, got.data).get("meter_time")
        if all(r.data is None for r in results):
            raise DeviceError(f"{self.id}: the meter refused every object")
        result = PollResult(samples=[Sample(seq=0, ts=ts_ms, values=values, quality=quality)])
        result.events += self.relay_events(ts_ms, values) + events
        if clock_due and isinstance(meter_time, dt.datetime):
            await self._check_clock(ts_ms, meter_time, values, result)
        if not stopped and self.backfill is not None and not self.probing:
            await self.backfill.after_poll(ts_ms, result)
        return result

    async def _read_all(self, oads: list[Oad]) -> tuple[list[GetResult], bool]:
        """Every object's result (a DAR result for one that failed) and whether the meter stopped
        answering mid-poll. A silent meter raises: no airtime is spent on its other objects."""
        results: list[GetResult] = []
        pending = plan.chunks(oads, self.cfg.list_max) if self.lists else [[o] for o in oads]
        while pending:
            chunk = pending.pop(0)
            try:
                results += await self.session.get(chunk)
            except ErrorResponse as exc:
                if len(chunk) == 1:
                    results.append(GetResult(chunk[0], None, 255))
                    self.ctx.log.warning("%s: %s: %s", self.id, chunk[0], exc)
                    continue
                # a meter without NormalList: object by object, now and in later polls
                self.lists = False
                self.ctx.log.info(
                    "%s: no list reads (%s): reading %d objects one by one", self.id, exc, len(chunk)
                )
                pending[:0] = [[o] for o in chunk]
            except ProtocolError as exc:  # a reply that does not decode: these objects failed
                self.ctx.log.warning("%s: %s: %s", self.id, ",".join(map(str, chunk)), exc)
                results += [GetResult(o, None, 255) for o in chunk]
            except BusError as exc:
                if not results:
                    raise
                # it stopped answering mid-poll: the rest would each cost a timeout while others wait
                self.ctx.log.warning("%s: stopped answering mid-poll: %s", self.id, exc)
                results += [GetResult(o, None, 255) for part in [chunk, *pending] for o in part]
                return results, True
        return results, False

    async def _read_secured(self, ts_ms: int, results: list[GetResult], events: list[DeviceEvent]) -> bool:
        """The secured objects as plaintext + RN, one request each: each result joins `results`, each
        MAC a `secured_read` event. True when the meter stopped answering (the rest are marked)."""
        secured = plan.resolve_secured(self.cfg)
        for i, oad in enumerate(secured):
            rn = secrets.token_bytes(RN_BYTES)
            try:
                got, security = await self.session.secured_get(oad, rn)
            except ProtocolError as exc:
                self.ctx.log.warning("%s: %s (plaintext + RN): %s", self.id, oad, exc)
                got, security = GetResult(oad, None, 255), None
            except BusError as exc:
                if not results and i == 0:
                    raise
                self.ctx.log.warning("%s: stopped answering mid-poll: %s", self.id, exc)
                results += [GetResult(o, None, 255) for o in secured[i:]]
                return True
            results.append(got)
            if got.data is not None:
                events.append(DeviceEvent(ts_ms, EventKind.SECURED_READ, mac_fields(oad, rn, security)))
        return False

    def _mark(self, quality: dict[str, Quality], result: GetResult) -> None:
        if result.dar != 255:
            self.ctx.log.warning("%s: %s refused: DAR %d", self.id, result.oad, result.dar)
        for name in plan.names(result.oad):
            quality[name] = "error"

    def _clock_due(self) -> bool:
        now = time.monotonic()
        if not self.cfg.clock_check_s or now < self._next_clock_check:
            return False
        self._next_clock_check = now + self.cfg.clock_check_s
        return True

    async def _check_clock(
        self, ts_ms: int, meter_time: dt.datetime, values: dict[str, Scalar], result: PollResult
    ) -> None:
        """Publish the skew, and correct the clock (SET 40000200) past the threshold, but only from a
        synchronised gateway clock."""
        skew = round(clock_skew_s(meter_time, meter_now()), 1)
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
        outcome = await self.execute("set_time", {})
        if outcome.status == "done":
            result.events.append(DeviceEvent(ts_ms, EventKind.CLOCK_SET, {"skew_s": skew}))
            self._next_clock_check = time.monotonic() + min(self.cfg.clock_check_s, 60)  # verify it soon
        else:
            self.ctx.log.warning(
                "%s: meter clock is %+.0f s off; set-time failed: %s", self.id, skew, outcome.reason
            )

    # ---- commands -------------------------------------------------------------------------------

    def check_command(self, action: str, params: Mapping[str, Any]) -> None:
        super().check_command(action, params)
        controls = action in ACTIONS or action in RAW_ACTIONS
        if controls and not self.cfg.control:
            raise CommandRejected(f"{self.id}: remote control is not enabled for this meter (control: false)")
        try:
            if action == "read":
                key = params.get("oad") or params.get("item")
                if not isinstance(key, str):
                    raise ValueError("read needs params.oad (8 hex digits) or params.item (a value name)")
                object_oad(key)
            elif action in RAW_ACTIONS:
                relayed_apdu(params)
        except ValueError as exc:
            raise CommandRejected(f"{self.id}: {action}: {exc}") from None

    async def execute(self, action: str, params: Mapping[str, Any]) -> CommandOutcome:
        self.check_command(action, params)
        if action == "time_sync" and params.get("broadcast", True):
            # every meter on the line, never answered (4000 m127, AF C0)
            request = action_request(
                Address.broadcast(), BROADCAST_TIME, clock_data(meter_now()), self.session.next_piid()
            )
            await self.bus.send(
                request.encode(self.cfg.preamble), Timing(0, 0, self.line_gap_s(self.bus.line), 0.5)
            )
            return CommandOutcome("done", answer={"time": meter_now().isoformat(timespec="seconds")})
        if action in ("time_sync", "set_time"):
            now = meter_now()
            return await self._confirmed(
                action,
                set_request(
                    self.address, CLOCK, clock_data(now), self.session.next_piid(), ca=self.session.ca
                ),
                {"time": now.isoformat(timespec="seconds")},
                read_back=False,
            )
        if action == "read":
            return await self._read_command(params)
        if action in RAW_ACTIONS:
            return await self._relay(relayed_apdu(params))
        command = ACTIONS[action]
        request = action_request(
            self.address, command.omd, command.data, self.session.next_piid(), ca=self.session.ca
        )
        return await self._confirmed(action, request, {"omd": str(command.omd)}, read_back=True)

    async def _confirmed(
        self, action: str, request: Frame, answer: dict[str, Any], *, read_back: bool
    ) -> CommandOutcome:
        try:
            await self.session.transact(request, Priority.COMMAND, once=True)
        except MeterRefused as exc:
            state = await self._read_back() if read_back else {}
            return CommandOutcome("failed", f"meter refused {action}: {exc}", state=state)
        except (GatewayError, ProtocolError) as exc:
            # not repeated: it may have run; the relay state read back says whether it did
            state = await self._read_back() if read_back else {}
            return CommandOutcome("failed", f"{action} not confirmed: {exc}", state=state)
        return CommandOutcome("done", answer=answer, state=await self._read_back() if read_back else {})

    async def _read_command(self, params: Mapping[str, Any]) -> CommandOutcome:
        oad = object_oad(str(params.get("oad") or params.get("item")))
        rn = secrets.token_bytes(RN_BYTES) if params.get("secured") else b""
        try:
            if rn:
                got, security = await self.session.secured_get(oad, rn, Priority.COMMAND)
            else:
                got, security = (await self.session.get([oad], Priority.COMMAND))[0], None
        except (GatewayError, ProtocolError) as exc:
            return CommandOutcome("failed", f"read of {oad} failed: {exc}")
        if got.data is None:
            return CommandOutcome(
                "failed", f"meter refused the read of {oad}: DAR {got.dar} ({dar_name(got.dar)})"
            )
        answer: dict[str, Any] = {
            "oad": str(oad),
            "values": _plain(object_values(oad, got.data)),
            "data": to_python(got.data),
        }
        if rn:
            answer |= mac_fields(oad, rn, security)
        return CommandOutcome("done", answer=answer)

    async def _relay(self, apdu: bytes) -> CommandOutcome:
        request = relay_request(self.address, apdu, ca=self.session.ca)
        try:
            frame = await self.session.exchange(request, Priority.COMMAND, once=True)
        except GatewayError as exc:
            return CommandOutcome(
                "failed", f"relayed APDU not answered: {exc}", state=await self._read_back()
            )
        answer = {"apdu": frame.data.hex(), "mac_verified": False}
        try:
            reply = parse_reply(frame)
        except ProtocolError as exc:
            return CommandOutcome("failed", f"meter reply does not decode: {exc}", answer=answer)
        security = reply.security
        if security is not None and security.dar is not None:
            reason = f"meter refused the security request: DAR {security.dar} ({dar_name(security.dar)})"
            return CommandOutcome("failed", reason, answer=answer, state=await self._read_back())
        return CommandOutcome("done", answer=answer, state=await self._read_back())

    async def _read_back(self) -> dict[str, Scalar | None]:
        try:
            results = await self.session.get(READ_BACK, Priority.COMMAND)
        except (GatewayError, ProtocolError):
            return {}
        state: dict[str, Scalar | None] = {}
        for result in results:
            if result.data is not None:
                state.update(canonical_values(result.oad, result.data))
        return state


DRIVER = Dlt698Driver


def mac_fields(oad: Oad, rn: bytes, security: SecurityResponse | None) -> dict[str, Any]:
    """What a master station needs to check a plaintext + RN read: the RN sent, the meter's plaintext
    answer byte for byte and its MAC over them. This gateway holds no ESAM: `mac_verified` is false,
    always, and nothing here claims otherwise."""
    plain = security.apdu if security is not None else b""
    mac = security.mac if security is not None and security.mac is not None else b""
    return {"oad": str(oad), "rn": rn.hex(), "apdu": plain.hex(), "mac": mac.hex(), "mac_verified": False}


def _plain(values: Mapping[str, Any]) -> dict[str, Any]:
    """Decoded values as JSON-friendly builtins (times as ISO text)."""
    return {k: v.isoformat() if isinstance(v, dt.datetime) else v for k, v in values.items()}
