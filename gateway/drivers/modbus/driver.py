"""Modbus meters (RTU on the shared RS-485 bus or RTU-over-TCP, and Modbus TCP) as a gateway driver.

Layer: gateway driver. A poll runs the planned block reads (`protocols.modbus.plan_map`) on the
device's Bus and decodes them into canonical values. A block the device refuses (exception reply)
marks only its points `error`; a device that does not answer at all fails the poll. A busy device
(exception 05/06) is retried with back-off. Commands write the map's writable points (relay command,
keep-power) and read the states back.

Must not: open the port (the Bus owns it) or know any topic or payload.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Mapping
from typing import Any, ClassVar, Final

from protocols.errors import DecodeError, ProtocolError
from protocols.messages import Quality, Scalar
from protocols.modbus import (
    BitsReply,
    ExceptionReply,
    MbapReplyMatcher,
    ModbusException,
    ReadBlock,
    RegisterMap,
    RegistersReply,
    Reply,
    Request,
    build_mbap,
    build_request,
    build_rtu_request,
    check_reply,
    decode_block,
    load_map,
    plan,
    write_request,
)
from protocols.modbus.pdu import expected_reply_pdu_length
from protocols.modbus.rtu import RtuReplyMatcher

from ...bus import Bus, Priority, ReplyMatcher
from ...errors import BusError, DeviceBusy, DeviceError, GatewayError
from ...line import LineSettings, Timing
from ..base import CommandOutcome, CommandRejected, Driver, DriverContext, PollResult, Sample
from .config import ModbusDevice

BUSY_BACKOFF_S: Final = (0.1, 0.3, 0.9)
# action -> (point, value written)
ACTIONS: Final[dict[str, tuple[str, Scalar]]] = {
    "trip": ("relay_commanded", "open"),
    "close": ("relay_commanded", "closed"),
    "allow_close": ("relay_commanded", "closed"),  # Modbus meters have no separate "allow" state
    "keep_power_on": ("keep_power", True),
    "keep_power_off": ("keep_power", False),
}
READ_BACK: Final = ("relay_commanded", "relay", "keep_power", "status_word_3")
RTU_OVERHEAD: Final = 4  # unit id + CRC + function
MBAP_OVERHEAD: Final = 8  # MBAP header + function


def _rtu_matcher(unit: int, req: Request) -> ReplyMatcher[Reply]:
    class _Unwrap:
        def __init__(self) -> None:
            self.inner = RtuReplyMatcher.for_request(unit, req)

        def feed(self, data: bytes) -> Reply | None:
            got = self.inner.feed(data)
            return None if got is None else got.reply

        def finish(self) -> None:
            self.inner.finish()

    return _Unwrap()


class ModbusDriver(Driver):
    kind: ClassVar[str] = "modbus"
    config_model: ClassVar[type[ModbusDevice]] = ModbusDevice
    actions: ClassVar[frozenset[str]] = frozenset(ACTIONS) | {"write"}  # write: any writable point

    def __init__(self, config: ModbusDevice, bus: Bus, ctx: DriverContext) -> None:
        super().__init__(config, bus, ctx)
        self.cfg = config
        self.regmap: RegisterMap = load_map(config.map)
        self.blocks: list[ReadBlock] = self.plan_for(config, self.regmap)
        self._tids = itertools.count(1)
        self.busy_retries = 0

    # ---- planning / airtime ---------------------------------------------------------------------

    @staticmethod
    def plan_for(config: ModbusDevice, regmap: RegisterMap) -> list[ReadBlock]:
        points = regmap.points if config.points is None else tuple(regmap.point(n) for n in config.points)
        policy = regmap.request
        return plan(
            points,
            max_gap=min(config.max_gap, policy.max_gap),
            per_point=config.per_point or policy.per_point,
            max_registers=policy.max_registers,
            max_bits=policy.max_bits,
        )

    @classmethod
    def poll_airtime_s(cls, config: Any, line: LineSettings) -> float:
        blocks = cls.plan_for(config, load_map(config.map))
        overhead = MBAP_OVERHEAD if config.framing == "tcp" else RTU_OVERHEAD
        total = 0.0
        for block in blocks:
            req = block.request()
            nbytes = overhead + len(build_request(req)) - 1 + overhead + expected_reply_pdu_length(req) - 1
            total += line.wire_time(nbytes) + config.turnaround_ms / 1000 + cls.line_gap_s(line)
        return total

    # ---- transactions ---------------------------------------------------------------------------

    async def transact(self, req: Request, priority: Priority = Priority.POLL) -> Reply:
        """One request with busy back-off; raises BusError, DeviceError (exception reply)."""
        timing = self.transaction_timing(
            self.cfg.reply_timeout_ms, self.cfg.byte_timeout_ms, self.cfg.retries
        )
        for attempt in range(len(BUSY_BACKOFF_S) + 1):
            reply = await self._exchange(req, timing, priority)
            try:
                return check_reply(req, reply)
            except ModbusException as exc:
                if exc.retryable and attempt < len(BUSY_BACKOFF_S) and not self.probing:
                    self.busy_retries += 1
                    await asyncio.sleep(BUSY_BACKOFF_S[attempt])
                    continue
                error = DeviceBusy if exc.retryable else DeviceError
                raise error(f"{self.id}: {exc}") from exc
            except DecodeError as exc:
                raise DeviceError(f"{self.id}: {exc}") from exc
        raise AssertionError("unreachable")

    async def _exchange(self, req: Request, timing: Timing, priority: Priority) -> Reply:
        unit = self.cfg.unit
        if self.cfg.framing == "tcp":
            tid = next(self._tids) & 0xFFFF
            frame = build_mbap(tid, unit, build_request(req))
            return await self.bus.transact(
                frame,
                lambda: MbapReplyMatcher(tid, unit, req.function),
                timing,
                priority=priority,
                device=self.id,
            )
        return await self.bus.transact(
            build_rtu_request(unit, req),
            lambda: _rtu_matcher(unit, req),
            timing,
            priority=priority,
            device=self.id,
        )

    # ---- polling --------------------------------------------------------------------------------

    async def poll(self) -> PollResult:
        ts_ms = self.ctx.clock_ms()
        values: dict[str, Scalar] = {}
        quality: dict[str, Quality] = {}
        answered = False
        for i, block in enumerate(self.blocks):
            try:
                reply = await self.transact(block.request())
            except DeviceError as exc:
                answered = True
                self.ctx.log.warning(
                    "%s: %s %s+%d refused: %s", self.id, block.table.value, block.address, block.count, exc
                )
                quality.update(dict.fromkeys((p.name for p in block.points), "error"))
                continue
            except BusError as exc:
                if not answered:
                    raise  # the device is silent: fail fast, do not spend airtime on the other blocks
                # it stopped answering mid-poll: the other blocks are errors without asking (each would
                # cost the bus a timeout and its retries while the other devices wait)
                self.ctx.log.warning("%s: stopped answering mid-poll: %s", self.id, exc)
                for rest in self.blocks[i:]:
                    quality.update(dict.fromkeys((p.name for p in rest.points), "error"))
                break
            answered = True
            data = reply.registers if isinstance(reply, RegistersReply) else _bits(reply)
            errors: dict[str, ProtocolError] = {}
            values.update(decode_block(block, data, errors))
            for name, err in errors.items():
                self.ctx.log.warning("%s: %s: %s", self.id, name, err)
                quality[name] = "error"
        if not values and quality:
            raise DeviceError(f"{self.id}: every read was refused")
        result = PollResult(samples=[Sample(seq=0, ts=ts_ms, values=values, quality=quality)])
        result.events += self.relay_events(ts_ms, values)
        return result

    # ---- commands -------------------------------------------------------------------------------

    def check_command(self, action: str, params: Mapping[str, Any]) -> None:
        super().check_command(action, params)
        name, value = self._target(action, params)
        if name not in self.regmap.names():
            raise CommandRejected(f"map {self.regmap.model} has no point {name!r} for {action}")
        point = self.regmap.point(name)
        try:
            write_request(point, value, multiple=self.regmap.request.write_multiple)
        except ProtocolError as exc:  # not writable, or a value the point cannot hold
            raise CommandRejected(f"{action} {name}={value!r}: {exc}") from None

    @staticmethod
    def _target(action: str, params: Mapping[str, Any]) -> tuple[str, Scalar]:
        if action != "write":
            return ACTIONS[action]
        name, value = params.get("point"), params.get("value")
        if not isinstance(name, str) or not isinstance(value, bool | int | float | str):
            raise CommandRejected("write needs params.point (a writable point of the map) and params.value")
        return name, value

    async def execute(self, action: str, params: Mapping[str, Any]) -> CommandOutcome:
        self.check_command(action, params)
        name, value = self._target(action, params)
        try:
            req = write_request(self.regmap.point(name), value, multiple=self.regmap.request.write_multiple)
            await self.transact(req, Priority.COMMAND)
        except DeviceError as exc:
            return CommandOutcome("failed", f"meter refused {action}: {exc}", state=await self._read_back())
        except GatewayError as exc:
            return CommandOutcome("failed", f"{action} not confirmed: {exc}")
        return CommandOutcome("done", answer={name: value}, state=await self._read_back())

    async def _read_back(self) -> dict[str, Scalar | None]:
        names = [n for n in READ_BACK if n in self.regmap.names()]
        state: dict[str, Scalar | None] = dict.fromkeys(names)
        for block in plan([self.regmap.point(n) for n in names]):
            try:
                reply = await self.transact(block.request(), Priority.COMMAND)
            except GatewayError:
                continue
            data = reply.registers if isinstance(reply, RegistersReply) else _bits(reply)
            state.update(decode_block(block, data, {}))
        return state


def _bits(reply: Reply) -> tuple[bool, ...]:
    if isinstance(reply, BitsReply):
        return reply.bits
    if isinstance(reply, ExceptionReply):  # check_reply raised already; keeps the type checker honest
        raise reply.error()
    raise DeviceError(f"unexpected reply {type(reply).__name__}")


DRIVER = ModbusDriver
