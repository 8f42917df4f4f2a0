"""Register maps as data: one YAML file per meter model, validated once when loaded.

Layer: pure (protocols). `parse_map(text, source)` is pure; `load_map(name_or_path)` reads a shipped
map (package data in `protocols/modbus/maps/`) or a user's file and parses it. Must not: do any
other I/O.

Every problem found is reported at once as a `ModbusMapError`, each line naming the file, the line,
the point and the field, e.g. ``sdm630.yaml:31: points[4] (current_b_a): type: unknown type 'f23'``.
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Final

import yaml

from ..vocabulary import VOCABULARY, ValueType
from .errors import EncodeError, ModbusMapError
from .pdu import MAX_READ_BITS, MAX_READ_REGISTERS
from .points import DATA_TYPES, ORDERS, Label, Point, Table, words_from_raw

DEFAULT_MAX_GAP: Final = 8
"""Registers of gap worth reading to save a request. A second transaction costs at least an 8-byte
request, a 5-byte reply overhead, two 3.5-character silences and the device's turnaround (5-50 ms,
i.e. 5-50 character times at 9600 baud): about 20+ character times. A gap of g registers costs 2g
characters, so the break-even is ~10; 8 leaves margin. Maps of meters that answer ILLEGAL_DATA_ADDRESS
for reserved registers inside a block set `request: {max_gap: 0}`."""

_TOP_KEYS: Final = frozenset({"model", "vendor", "description", "source", "defaults", "request", "points"})
_DEFAULT_KEYS: Final = frozenset({"table", "type", "word_order", "byte_order", "writable"})
_POINT_KEYS: Final = frozenset(
    {"name", "table", "address", "type", "word_order", "byte_order", "scale", "offset", "unit", "writable"}
    | {"values", "doc"}
)
_REQUIRED: Final = ("name", "table", "address", "type", "unit")


@dataclass(frozen=True, slots=True)
class RequestPolicy:
    max_gap: int = DEFAULT_MAX_GAP
    per_point: bool = False  # devices that answer only one point per request
    max_registers: int = MAX_READ_REGISTERS  # some meters allow fewer than the protocol's 125
    max_bits: int = MAX_READ_BITS
    write_multiple: bool = False  # devices that accept only function 15/16 for writes


@dataclass(frozen=True, slots=True)
class RegisterMap:
    model: str
    points: tuple[Point, ...]
    vendor: str = ""
    description: str = ""
    source: str = ""  # the public document the addresses come from
    request: RequestPolicy = field(default_factory=RequestPolicy)
    origin: str = ""  # file the map was loaded from

    def point(self, name: str) -> Point:
        for p in self.points:
            if p.name == name:
                return p
        known = ", ".join(p.name for p in self.points)
        raise ModbusMapError([f"{self.origin or self.model}: no point named {name!r} (points: {known})"])

    def names(self) -> list[str]:
        return [p.name for p in self.points]


# ---- loading ---------------------------------------------------------------------------------


def builtin_maps() -> list[str]:
    """Names of the maps shipped in protocols/modbus/maps/ (file name without .yaml)."""
    folder = resources.files(f"{__package__}.maps")
    return sorted(e.name.removesuffix(".yaml") for e in folder.iterdir() if e.name.endswith(".yaml"))


def load_map(name_or_path: str | Path) -> RegisterMap:
    """A shipped map by name (e.g. "eastron-sdm630") or a YAML file by path."""
    text = str(name_or_path)
    if text in builtin_maps():
        return _load_builtin(text)
    path = Path(name_or_path)
    if not path.is_file():
        raise ModbusMapError(
            [f"{text}: no such map file, and not a shipped map ({', '.join(builtin_maps())})"]
        )
    try:
        content = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ModbusMapError([f"{text}: cannot read: {exc}"]) from None
    return parse_map(content, source=str(path))


@functools.cache
def _load_builtin(name: str) -> RegisterMap:
    text = resources.files(f"{__package__}.maps").joinpath(f"{name}.yaml").read_text(encoding="utf-8")
    return parse_map(text, source=f"{name}.yaml")


def parse_map(text: str, *, source: str) -> RegisterMap:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise ModbusMapError([f"{source}{line}: not valid YAML: {getattr(exc, 'problem', exc)}"]) from None
    checker = _Checker(source, node)
    result = checker.map(data)
    if checker.problems or result is None:
        raise ModbusMapError(checker.problems or [f"{source}: empty map"])
    return result


# ---- validation ------------------------------------------------------------------------------


class _Checker:
    def __init__(self, source: str, node: yaml.Node | None) -> None:
        self.source = source
        self.node = node
        self.problems: list[str] = []

    def fail(self, path: tuple[Any, ...], where: str, message: str) -> None:
        self.problems.append(f"{self.source}:{_line_of(self.node, path)}: {where}: {message}")

    def map(self, data: Any) -> RegisterMap | None:
        if not isinstance(data, dict):
            self.fail((), "(top level)", "a map is a mapping with model, points, ...")
            return None
        for key in sorted(set(map(str, data)) - _TOP_KEYS):
            self.fail((key,), key, f"unknown field (allowed: {', '.join(sorted(_TOP_KEYS))})")
        model = data.get("model")
        if not isinstance(model, str) or not model:
            self.fail(("model",), "model", "missing or not a string")
        defaults = self.defaults(data.get("defaults", {}))
        request = self.request(data.get("request", {}))
        points = self.points(data.get("points"), defaults)
        self.cross_checks(points)
        texts = {k: str(data.get(k, "")) for k in ("vendor", "description", "source")}
        return RegisterMap(str(model), tuple(points), request=request, origin=self.source, **texts)

    def defaults(self, raw: Any) -> dict[str, Any]:
        if not isinstance(raw, dict):
            self.fail(("defaults",), "defaults", "must be a mapping")
            return {}
        for key in sorted(set(map(str, raw)) - _DEFAULT_KEYS):
            self.fail(
                ("defaults", key), f"defaults.{key}", f"not defaultable ({', '.join(sorted(_DEFAULT_KEYS))})"
            )
        return {k: v for k, v in raw.items() if k in _DEFAULT_KEYS}

    def request(self, raw: Any) -> RequestPolicy:
        base = RequestPolicy()
        if not isinstance(raw, dict):
            self.fail(("request",), "request", "must be a mapping")
            return base
        limits = {
            "max_gap": (0, 0xFFFF),
            "max_registers": (1, MAX_READ_REGISTERS),
            "max_bits": (1, MAX_READ_BITS),
        }
        values: dict[str, Any] = {}
        for key, value in raw.items():
            where = f"request.{key}"
            if key in limits:
                lo, hi = limits[key]
                if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
                    self.fail(("request", key), where, f"must be an integer in {lo}..{hi}, got {value!r}")
                    continue
            elif key in ("per_point", "write_multiple"):
                if not isinstance(value, bool):
                    self.fail(("request", key), where, f"must be true or false, got {value!r}")
                    continue
            else:
                self.fail(("request", key), where, "unknown field")
                continue
            values[key] = value
        return RequestPolicy(**{**_asdict(base), **values})

    def points(self, raw: Any, defaults: dict[str, Any]) -> list[Point]:
        if not isinstance(raw, list) or not raw:
            self.fail(("points",), "points", "missing or not a non-empty list")
            return []
        out = []
        for i, item in enumerate(raw):
            if not isinstance(item, dict):
                self.fail(("points", i), f"points[{i}]", "each point is a mapping")
                continue
            point = _PointChecker(self, i, {**defaults, **item}).build()
            if point is not None:
                out.append(point)
        return out

    def cross_checks(self, points: list[Point]) -> None:
        seen: dict[str, int] = {}
        for i, p in enumerate(points):
            if p.name in seen:
                self.fail(
                    ("points", i, "name"),
                    f"points[{i}] ({p.name})",
                    f"name: duplicate of points[{seen[p.name]}]",
                )
            seen.setdefault(p.name, i)
        for table in Table:
            ordered = sorted((p.address, i, p) for i, p in enumerate(points) if p.table is table)
            for (_, _, prev), (_, i, cur) in itertools.pairwise(ordered):
                if cur.address < prev.end:
                    self.fail(
                        ("points", i, "address"),
                        f"points[{i}] ({cur.name})",
                        f"address: {table.value} {cur.address} overlaps {prev.name} "
                        f"({prev.address}..{prev.end - 1})",
                    )


def _asdict(policy: RequestPolicy) -> dict[str, Any]:
    return {f: getattr(policy, f) for f in RequestPolicy.__dataclass_fields__}


class _PointChecker:
    """Validates one point; `build()` returns None when any field is wrong (problems are recorded)."""

    def __init__(self, checker: _Checker, index: int, item: dict[str, Any]) -> None:
        self.c = checker
        self.i = index
        self.item = item
        self.label = f"points[{index}] ({item.get('name', '?')})"
        self.ok = True

    def fail(self, key: str, message: str) -> None:
        self.ok = False
        self.c.fail(("points", self.i, key), self.label, f"{key}: {message}")

    def build(self) -> Point | None:
        for key in sorted(set(map(str, self.item)) - _POINT_KEYS):
            self.fail(key, f"unknown field (allowed: {', '.join(sorted(_POINT_KEYS))})")
        missing = [k for k in _REQUIRED if k not in self.item]
        for key in missing:
            self.fail(key, "missing")
        if missing:
            return None
        fields = self.basic_fields()
        if not self.ok:
            return None
        point = Point(**fields)
        self.semantic_checks(point)
        return point if self.ok else None

    def basic_fields(self) -> dict[str, Any]:
        it = self.item
        name = self.choice("name", sorted(VOCABULARY), "a canonical name from protocols/vocabulary.py")
        table = self.choice("table", [t.value for t in Table])
        type_ = self.choice("type", list(DATA_TYPES))
        address = it["address"]
        if isinstance(address, bool) or not isinstance(address, int) or not 0 <= address <= 0xFFFF:
            self.fail("address", f"must be an integer 0..65535 (0-based PDU address), got {address!r}")
        return {
            "name": name,
            "table": Table(table) if table else Table.HOLDING,
            "address": address,
            "type": type_,
            "unit": self.text("unit"),
            "word_order": self.choice("word_order", ORDERS, default="big"),
            "byte_order": self.choice("byte_order", ORDERS, default="big"),
            "scale": self.number("scale", 1.0),
            "offset": self.number("offset", 0.0),
            "writable": self.flag("writable"),
            "values": self.labels(),
            "doc": self.text("doc"),
        }

    def choice(self, key: str, allowed: Any, hint: str = "", default: str = "") -> str:
        value = self.item.get(key, default)
        if value not in allowed:
            self.fail(key, f"unknown {key} {value!r} ({hint or 'one of ' + ', '.join(allowed)})")
            return ""
        return str(value)

    def text(self, key: str) -> str:
        value = self.item.get(key, "")
        if not isinstance(value, str):
            self.fail(key, f"must be a string, got {value!r}")
            return ""
        return value

    def number(self, key: str, default: float) -> float:
        value = self.item.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or (key == "scale" and value == 0):
            self.fail(key, f"must be a {'non-zero ' if key == 'scale' else ''}number, got {value!r}")
            return default
        return float(value)

    def flag(self, key: str) -> bool:
        value = self.item.get(key, False)
        if not isinstance(value, bool):
            self.fail(key, f"must be true or false, got {value!r}")
            return False
        return value

    def labels(self) -> tuple[tuple[Label, int], ...]:
        raw = self.item.get("values", {})
        if not isinstance(raw, dict) or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in raw.values()
        ):
            self.fail("values", f"must map labels to integer raw values, got {raw!r}")
            return ()
        return tuple((k, v) for k, v in raw.items())

    def semantic_checks(self, p: Point) -> None:
        canonical = VOCABULARY[p.name]
        if p.unit != canonical.unit:
            self.fail("unit", f"{p.unit!r} is not the unit of {p.name} ({canonical.unit!r}); scale to it")
        if (p.type == "bit") != p.table.is_bits:
            self.fail(
                "type", f"{p.type} on a {p.table.value} table (bit tables take 'bit', registers the rest)"
            )
        if p.end > 0x10000:
            self.fail("address", f"{p.address} + {p.size} registers runs past 65535")
        if p.writable and not p.table.writable:
            self.fail("writable", f"{p.table.value} is a read-only table")
        self.check_value_type(p, canonical.type)

    def check_value_type(self, p: Point, vtype: ValueType) -> None:
        kind = p.data_type.kind
        if vtype is ValueType.INT and (kind == "float" or p.scale != 1 or p.offset != 0):
            self.fail("type", f"{p.name} is an integer: use an integer type with scale 1 and offset 0")
        elif vtype in (ValueType.FLOAT, ValueType.INT) and p.values:
            self.fail("values", f"{p.name} is a number; labels are for relay/bool points")
        elif vtype is ValueType.FLOAT and kind == "bit":
            self.fail("type", f"{p.name} is a number and cannot live in a {p.table.value} bit")
        elif vtype is ValueType.RELAY:
            self.check_labels(p, {"closed", "open"}, required=True)
        elif vtype is ValueType.BOOL:
            self.check_labels(p, {True, False}, required=False)
        if vtype in (ValueType.RELAY, ValueType.BOOL) and kind == "float":
            self.fail("type", f"{p.name} is a state; use an integer type or a bit")

    def check_labels(self, p: Point, labels: set[Label], *, required: bool) -> None:
        got = {label for label, _ in p.values}
        if (p.values or required) and got != labels:
            self.fail(
                "values",
                f"{p.name} needs exactly the labels {sorted(map(str, labels))}, got {sorted(map(str, got))}",
            )
            return
        raws = [raw for _, raw in p.values]
        if len(set(raws)) != len(raws):
            self.fail("values", f"two labels share one raw value: {dict(p.values)}")
        for label, raw in p.values:
            try:
                if p.table.is_bits and raw not in (0, 1):
                    raise EncodeError("a bit is 0 or 1")
                if not p.table.is_bits:
                    words_from_raw(p, raw)
            except EncodeError as exc:
                self.fail("values", f"{label}: {raw} does not fit {p.type}: {exc}")


def _line_of(node: yaml.Node | None, path: tuple[Any, ...]) -> int:
    """1-based line of the deepest node along `path` that exists."""
    line = node.start_mark.line + 1 if node is not None else 1
    for part in path:
        child: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                    child, line = value, key.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
            child = node.value[part]
            line = child.start_mark.line + 1
        if child is None:
            break
        node = child
    return line
