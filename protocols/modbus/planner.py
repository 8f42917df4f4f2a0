"""Request planning: which block reads fetch a set of points, and decoding those blocks.

Layer: pure (protocols). Must not: do I/O or know about transports and timing.

Adjacent points of one table are coalesced into one read within the protocol limits (125 registers,
2000 bits; a map may lower them) and gaps of up to `max_gap` unused registers are read through when
that is cheaper than a second request (see `regmap.DEFAULT_MAX_GAP`). `per_point=True` gives one
request per point, for devices that reject reads spanning several values.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ..errors import ConfigError, DecodeError, ProtocolError
from .pdu import MAX_READ_BITS, MAX_READ_REGISTERS, ReadRequest
from .points import Point, Table, Value, decode_point
from .regmap import DEFAULT_MAX_GAP, RegisterMap

BITS_PER_REGISTER_GAP = 16  # a bit gap is priced like a register gap: 16 bits = 2 reply bytes


@dataclass(frozen=True, slots=True)
class ReadBlock:
    table: Table
    address: int
    count: int  # registers, or bits for coil/discrete tables
    points: tuple[Point, ...]

    @property
    def function(self) -> int:
        return self.table.read_function

    @property
    def end(self) -> int:
        return self.address + self.count

    def request(self) -> ReadRequest:
        return ReadRequest(self.function, self.address, self.count)


def plan(
    points: Iterable[Point],
    *,
    max_gap: int = DEFAULT_MAX_GAP,
    per_point: bool = False,
    max_registers: int = MAX_READ_REGISTERS,
    max_bits: int = MAX_READ_BITS,
) -> list[ReadBlock]:
    """Blocks ordered by table (holding, input, coil, discrete) then address; each point in one block."""
    _check_limits(max_gap, max_registers, max_bits)
    unique = {(p.table, p.address, p.name): p for p in points}
    blocks: list[ReadBlock] = []
    for table in Table:
        ordered = sorted((p for p in unique.values() if p.table is table), key=lambda p: (p.address, p.size))
        limit = max_bits if table.is_bits else max_registers
        gap = max_gap * BITS_PER_REGISTER_GAP if table.is_bits else max_gap
        if per_point:
            blocks += [ReadBlock(table, p.address, p.size, (p,)) for p in ordered if _fits(p, limit)]
        else:
            blocks += _coalesce(table, ordered, limit, gap)
    return blocks


def plan_map(regmap: RegisterMap, names: Iterable[str] | None = None) -> list[ReadBlock]:
    """Plan the map's points (or the named ones) with the map's own request policy."""
    points = regmap.points if names is None else tuple(regmap.point(n) for n in names)
    policy = regmap.request
    return plan(
        points,
        max_gap=policy.max_gap,
        per_point=policy.per_point,
        max_registers=policy.max_registers,
        max_bits=policy.max_bits,
    )


def _check_limits(max_gap: int, max_registers: int, max_bits: int) -> None:
    problems = []
    if max_gap < 0:
        problems.append(f"max_gap {max_gap} is negative")
    if not 1 <= max_registers <= MAX_READ_REGISTERS:
        problems.append(f"max_registers {max_registers} outside 1..{MAX_READ_REGISTERS}")
    if not 1 <= max_bits <= MAX_READ_BITS:
        problems.append(f"max_bits {max_bits} outside 1..{MAX_READ_BITS}")
    if problems:
        raise ConfigError(problems)


def _coalesce(table: Table, ordered: list[Point], limit: int, max_gap: int) -> list[ReadBlock]:
    """Greedy left-to-right: extend the open block while the gap and the size limit allow. Optimal
    for this cost model (each request has a fixed cost, gaps cost per register) because points are
    sorted and a block never needs to skip a point."""
    blocks: list[ReadBlock] = []
    start = end = 0
    members: list[Point] = []
    for p in ordered:
        _fits(p, limit)
        if members and p.address - end <= max_gap and max(end, p.end) - start <= limit:
            end = max(end, p.end)
            members.append(p)
            continue
        if members:
            blocks.append(ReadBlock(table, start, end - start, tuple(members)))
        start, end, members = p.address, p.end, [p]
    if members:
        blocks.append(ReadBlock(table, start, end - start, tuple(members)))
    return blocks


def _fits(p: Point, limit: int) -> bool:
    if p.size > limit:
        raise ConfigError([f"{p.name}: {p.size} registers exceed the per-request limit {limit}"])
    return True


def decode_block(
    block: ReadBlock,
    data: Sequence[int] | Sequence[bool],
    errors: dict[str, ProtocolError] | None = None,
) -> dict[str, Value]:
    """Values of the block's points from its registers (or bits; replies pad bits to whole bytes).
    With `errors` given, a point that cannot be decoded (NaN, bad BCD, unknown state code) is put
    there and the others are still returned; without it the first such error is raised."""
    if len(data) < block.count or (not block.table.is_bits and len(data) != block.count):
        unit = "bits" if block.table.is_bits else "registers"
        raise DecodeError(f"block {block.table.value} {block.address}+{block.count}: got {len(data)} {unit}")
    out: dict[str, Value] = {}
    for p in block.points:
        lo = p.address - block.address
        try:
            out[p.name] = decode_point(p, data[lo : lo + p.size])
        except ProtocolError as exc:
            if errors is None:
                raise
            errors[p.name] = exc
    return out
