"""Simulated Modbus prepaid meters: `gridedge sim modbus --port pty|tcp://HOST:PORT --unit N ...`.

Layer: simulator device model. `ModbusPrepaidMeter` is pure logic given `now`: an RTU request burst
in, an RTU reply out (firmware_sim.line does pacing, echo and generic faults), or a bare PDU in and
out for Modbus TCP (firmware_sim/devices/modbus_tcp.py). Must not: do I/O, sleep or read the clock.

It serves any register map (default `gridedge-prepaid`) from the canonical values of
`modbus_meter.PrepaidMeterPhysics`, with the Modbus server rules of the MODBUS Application Protocol
v1.1b3, section 6: unsupported function -> 01, quantity out of range or bad coil value -> 03,
address not mapped -> 02 (a read may only touch registers of points, or gaps between points that
the map's own plan reads through; a write must cover whole writable points), refused by the meter
-> 03/04. Broadcast (unit 0) writes are applied silently;
broadcast reads are ignored. Device-specific faults: `busy` (exception 06 SERVER_DEVICE_BUSY) and
`failure` (exception 04), each for N requests or until cleared.
"""

from __future__ import annotations

import argparse
import random
from typing import Final

from protocols.errors import ConfigError, DecodeError, FrameError, ProtocolError
from protocols.modbus import (
    BitsReply,
    ExceptionCode,
    ExceptionReply,
    Point,
    ReadRequest,
    RegisterMap,
    RegistersReply,
    Reply,
    Table,
    Value,
    WriteCoil,
    WriteCoils,
    WriteRegister,
    WriteRegisters,
    WriteReply,
    build_adu,
    build_reply,
    builtin_maps,
    decode_point,
    encode_point,
    find_request_frame,
    load_map,
    parse_request,
    plan_map,
)
from protocols.modbus.rtu import BROADCAST, KNOWN_FUNCTIONS

from ...device import SimReply
from ...faults import take_fault
from ...prepaid import CostControl, PrepaidMeterPhysics, Refused

DEFAULT_MAP: Final = "gridedge-prepaid"
DEVICE_FAULTS: Final = {
    "busy": ExceptionCode.SERVER_DEVICE_BUSY,
    "failure": ExceptionCode.SERVER_DEVICE_FAILURE,
}
TURNAROUND_S: Final = (0.005, 0.020)
_TABLE_OF_READ: Final = {t.read_function: t for t in Table}


class ModbusPrepaidMeter:
    protocol = "modbus"

    def __init__(
        self,
        unit: int,
        *,
        regmap: RegisterMap | None = None,
        seed: int = 0,
        start_time: float = 0.0,
        cost_control: CostControl = "local",
    ) -> None:
        if not 1 <= unit <= 247:
            raise ConfigError([f"modbus unit id {unit} outside 1..247"])
        self.unit = unit
        self.name = f"unit-{unit}"
        self.map = regmap or load_map(DEFAULT_MAP)
        self.physics = PrepaidMeterPhysics(seed * 1000 + unit, start_time, cost_control)
        self.faults: dict[str, int | None] = {}  # fault -> remaining requests (None: until cleared)
        self._rng = random.Random(f"turnaround:{seed}:{unit}")
        self._writable = {(p.table, p.address): p for p in self.map.points if p.writable}
        # A register between two points that the map's own planner reads through is one the real
        # meter documents but the map leaves out (e.g. SDM630 phase angles): readable, served as 0.
        self._readable = {t: set[int]() for t in Table}
        for block in plan_map(self.map):
            self._readable[block.table].update(range(block.address, block.end))

    # ---- SimDevice -----------------------------------------------------------------------------

    def tick(self, now: float) -> None:
        self.physics.advance(now)

    def respond(self, request: bytes, now: float) -> SimReply | None:
        found = find_request_frame(request)
        if found is None:
            return None
        _, frame = found
        if frame[0] not in (self.unit, BROADCAST):
            return None
        pdu = self.handle_pdu(frame[0], frame[1:-2], now)
        if pdu is None:
            return None
        return SimReply(build_adu(self.unit, pdu), self._rng.uniform(*TURNAROUND_S))

    # ---- faults and inspection -----------------------------------------------------------------

    def inject(self, fault: str, count: int | None = None) -> None:
        """Answer the next `count` requests (all, if None) with this fault's exception."""
        if fault not in DEVICE_FAULTS:
            raise KeyError(f"unknown modbus device fault {fault!r} (known: {', '.join(DEVICE_FAULTS)})")
        self.faults[fault] = count

    def clear(self, fault: str | None = None) -> None:
        if fault is None:
            self.faults.clear()
        else:
            self.faults.pop(fault, None)

    def values(self, now: float) -> dict[str, Value]:
        """What the meter reports for each point of its map (as a master decoding it would see it)."""
        self.tick(now)
        raw = self.physics.values(now)
        out: dict[str, Value] = {}
        for p in self.map.points:
            words = encode_point(p, raw.get(p.name, _default(p)))
            out[p.name] = decode_point(p, [bool(w) for w in words] if p.table.is_bits else list(words))
        return out

    # ---- PDU level (shared by RTU and Modbus TCP) ----------------------------------------------

    def handle_pdu(self, unit: int, pdu: bytes, now: float) -> bytes | None:
        """The reply PDU to one request PDU, or None when no reply is due (broadcast)."""
        if not pdu:
            return None
        reply = self._reply(unit == BROADCAST, pdu, now)
        return None if unit == BROADCAST or reply is None else build_reply(reply)

    def _reply(self, broadcast: bool, pdu: bytes, now: float) -> Reply | None:
        function = pdu[0] & 0x7F
        fault = self._active_fault()
        if fault is not None:
            return ExceptionReply(function, fault)
        if function not in KNOWN_FUNCTIONS:
            return ExceptionReply(function, ExceptionCode.ILLEGAL_FUNCTION)
        try:
            req = parse_request(pdu)
        except (FrameError, DecodeError):
            return ExceptionReply(function, ExceptionCode.ILLEGAL_DATA_VALUE)
        if isinstance(req, ReadRequest):
            return None if broadcast else self._read(req, now)
        try:
            return self._write(req, now)
        except Refused as exc:
            return ExceptionReply(function, exc.code)

    def _active_fault(self) -> ExceptionCode | None:
        fault = take_fault(self.faults)
        return None if fault is None else DEVICE_FAULTS[fault]

    def _read(self, req: ReadRequest, now: float) -> Reply:
        table = _TABLE_OF_READ[req.function]
        try:
            image = self._image(table, now)
        except ProtocolError:  # a value the map's type cannot hold: the meter's own fault
            return ExceptionReply(req.function, ExceptionCode.SERVER_DEVICE_FAILURE)
        addresses = range(req.address, req.address + req.count)
        if any(a not in self._readable[table] for a in addresses):
            return ExceptionReply(req.function, ExceptionCode.ILLEGAL_DATA_ADDRESS)
        if table.is_bits:
            return BitsReply(req.function, tuple(bool(image.get(a, 0)) for a in addresses))
        return RegistersReply(req.function, tuple(image.get(a, 0) for a in addresses))

    def _image(self, table: Table, now: float) -> dict[int, int]:
        raw = self.physics.values(now)
        image: dict[int, int] = {}
        for p in self.map.points:
            if p.table is table:
                for offset, word in enumerate(encode_point(p, raw.get(p.name, _default(p)))):
                    image[p.address + offset] = word
        return image

    def _write(self, req: WriteCoil | WriteCoils | WriteRegister | WriteRegisters, now: float) -> Reply:
        if isinstance(req, WriteCoil | WriteCoils):
            table = Table.COIL
            words = [int(v) for v in ((req.value,) if isinstance(req, WriteCoil) else req.values)]
        else:
            table = Table.HOLDING
            words = [req.value] if isinstance(req, WriteRegister) else list(req.values)
        updates = self._covering_points(table, req.address, words)
        if updates is None:
            return ExceptionReply(req.function, ExceptionCode.ILLEGAL_DATA_ADDRESS)
        try:
            decoded = [
                (p, decode_point(p, [bool(w) for w in ws] if table.is_bits else ws)) for p, ws in updates
            ]
        except ProtocolError:
            return ExceptionReply(req.function, ExceptionCode.ILLEGAL_DATA_VALUE)
        for point, value in decoded:
            self.physics.write(point.name, value, now)
        if isinstance(req, WriteCoil):
            return WriteReply(req.function, req.address, 0xFF00 if req.value else 0)
        if isinstance(req, WriteRegister):
            return WriteReply(req.function, req.address, req.value)
        return WriteReply(req.function, req.address, len(words))

    def _covering_points(
        self, table: Table, address: int, words: list[int]
    ) -> list[tuple[Point, list[int]]] | None:
        """Split a write into whole writable points, or None if it touches anything else."""
        out = []
        pos, end = address, address + len(words)
        while pos < end:
            point = self._writable.get((table, pos))
            if point is None or point.end > end:
                return None
            out.append((point, words[pos - address : point.end - address]))
            pos = point.end
        return out


def _default(point: Point) -> Value:
    """Value of a point the physics does not model (other maps): zero, closed, off."""
    labels = [label for label, _ in point.values]
    if "closed" in labels:
        return "closed"
    return False if point.table.is_bits or labels else 0


# ---- CLI helpers (the lead's `gridedge sim modbus` adds --port/--baud and runs the line) ----------


def _unit_id(text: str) -> int:
    unit = int(text, 0)
    if not 1 <= unit <= 247:
        raise argparse.ArgumentTypeError(f"unit id {unit} outside 1..247")
    return unit


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--unit", type=_unit_id, action="append", required=True, help="unit id 1..247 (repeatable)"
    )
    parser.add_argument(
        "--map", default=DEFAULT_MAP, help=f"register map served: {', '.join(builtin_maps())} or a YAML file"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the load profiles and initial balances")
    parser.add_argument(
        "--cost-control",
        choices=("local", "remote"),
        default="local",
        help="local: the meter debits its wallet and trips itself; remote: the master station does",
    )


def build(args: argparse.Namespace, start_time: float) -> list[ModbusPrepaidMeter]:
    units: list[int] = args.unit
    if len(set(units)) != len(units):
        raise ConfigError([f"modbus: duplicate unit ids in {units}"])
    regmap = load_map(args.map)
    cost_control: CostControl = getattr(args, "cost_control", "local")
    return [
        ModbusPrepaidMeter(u, regmap=regmap, seed=args.seed, start_time=start_time, cost_control=cost_control)
        for u in units
    ]
