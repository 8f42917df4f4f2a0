"""The text of a gateway config written or extended by `gridedge commission`.

Layer: gateway commissioning. Pure text in, text out; must not read or write files or know any
kind's fields. PyYAML (the only YAML library we depend on) drops comments when it writes a document, so
an existing config is never re-dumped: the new device entries are inserted as text after the last line
of the bus's `devices` list (or a new bus after the last bus), located with `yaml.compose`'s marks.
The result is parsed again and must equal the old document plus exactly the new entries, otherwise
nothing is written (`AppendError`): every other byte of the file, comments included, stays as it was.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from protocols.errors import ConfigError


class AppendError(ConfigError):
    """The config cannot be extended as text (a layout we do not edit, or a result that differs)."""


@dataclass(frozen=True)
class Entry:
    """A device entry to write, with the comment line that says where it came from."""

    data: dict[str, Any]
    comment: str


class _Dumper(yaml.SafeDumper):
    """Block mappings, one-line lists of scalars, and digit strings quoted ("000000000001"): an
    unquoted address would be a number to a YAML 1.2 reader and to whoever edits the file next."""

    def represent_mapping(self, tag: str, mapping: Any, flow_style: bool | None = None) -> yaml.MappingNode:
        return super().represent_mapping(tag, mapping, flow_style=False)

    def represent_sequence(
        self, tag: str, sequence: Any, flow_style: bool | None = None
    ) -> yaml.SequenceNode:
        flat = all(not isinstance(item, dict | list) for item in sequence)
        return super().represent_sequence(tag, sequence, flow_style=flat and bool(sequence))


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = '"' if value.isdigit() else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def dump(node: Any, indent: int) -> list[str]:
    """`node` as block YAML, indented by `indent` columns."""
    width = max(100 - indent, 40)  # lines of about 100 characters, as the samples have
    text = yaml.dump(node, Dumper=_Dumper, sort_keys=False, width=width, allow_unicode=True)
    return [" " * indent + line if line else line for line in text.splitlines()]


def device_lines(entries: Sequence[Entry], indent: int) -> list[str]:
    lines = []
    for entry in entries:
        lines.append(" " * indent + f"# {entry.comment}")
        lines += dump([entry.data], indent)
    return lines


def bus_lines(bus: Mapping[str, Any], entries: Sequence[Entry], indent: int, comment: str) -> list[str]:
    """A bus item (`- name: ...`) at `indent` with its devices."""
    head = dump([{k: v for k, v in bus.items() if k != "devices"}], indent)
    return [
        " " * indent + f"# {comment}",
        *head,
        " " * (indent + 2) + "devices:",
        *device_lines(entries, indent + 4),
    ]


def new_config(
    sections: Mapping[str, Any],
    bus: Mapping[str, Any],
    entries: Sequence[Entry],
    header: Sequence[str],
    bus_comment: str,
) -> str:
    """A whole config: `header` comment lines, the `sections` (gateway, mqtt, spool), one bus."""
    lines = [f"# {line}".rstrip() for line in header]
    for name, body in sections.items():
        lines += ["", *dump({name: body}, 0)]
    lines += ["", "buses:", *bus_lines(bus, entries, 2, bus_comment)]
    return "\n".join(lines) + "\n"


def append(
    text: str, bus_index: int | None, bus: Mapping[str, Any], entries: Sequence[Entry], bus_comment: str
) -> str:
    """`text` with `entries` added to the bus at `bus_index` of `buses`, or, if None, as a new bus
    `bus` after the last one. Raises AppendError rather than write anything else than that."""
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    key, buses = _entry(root, "buses")
    if not isinstance(buses, yaml.SequenceNode):
        raise AppendError(["the config has no `buses:` list to add to"])
    lines = text.splitlines()
    if bus_index is None:
        new = bus_lines(bus, entries, _dash_column(buses, key), bus_comment)
        out = _insert(text, lines, buses, new)
    else:
        key, devices = _entry(buses.value[bus_index], "devices")
        if not isinstance(devices, yaml.SequenceNode):
            raise AppendError([f"buses[{bus_index}] has no `devices:` list to add to"])
        out = _insert(text, lines, devices, device_lines(entries, _dash_column(devices, key)))
    _verify(text, out, bus_index, bus, entries)
    return out


def _entry(node: yaml.Node | None, key: str) -> tuple[yaml.Node | None, yaml.Node | None]:
    """The key and value nodes of `key` in a mapping node."""
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if k.value == key:
                return k, v
    return None, None


def _dash_column(seq: yaml.SequenceNode, key: yaml.Node | None) -> int:
    """The column of the list's dashes: as its items have them, or 2 right of its key when empty."""
    if seq.value and not seq.flow_style:
        return max(int(seq.value[0].start_mark.column) - 2, 0)
    column: int = key.start_mark.column if key is not None else 0
    return column + 2


def _insert(text: str, lines: list[str], seq: yaml.SequenceNode, new: list[str]) -> str:
    if seq.flow_style:
        if seq.value:
            raise AppendError(
                [
                    f"line {seq.start_mark.line + 1}: a list in [brackets] is not extended by commission: "
                    "write it as a block list (one `- ` item per entry) first"
                ]
            )
        # `devices: []` (a skeleton's empty list): the brackets become the block list
        start, end = seq.start_mark.index, seq.end_mark.index
        tail = text[end:]
        return (
            text[:start].rstrip(" ") + "\n" + "\n".join(new) + ("" if tail.startswith("\n") else "\n") + tail
        )
    after = _last_line(seq) + 1
    out = lines[:after] + new + lines[after:]
    return "\n".join(out) + "\n"


def _last_line(node: yaml.Node) -> int:
    """The 0-based index of the last line holding part of `node` (block collections end at the next
    token, possibly lines later, so the last scalar or flow collection inside is what counts)."""
    if isinstance(node, yaml.MappingNode) and node.value and not node.flow_style:
        return _last_line(node.value[-1][1])
    if isinstance(node, yaml.SequenceNode) and node.value and not node.flow_style:
        return _last_line(node.value[-1])
    end = node.end_mark
    return end.line - 1 if end.column == 0 and end.line > node.start_mark.line else end.line


def _verify(
    old_text: str, new_text: str, bus_index: int | None, bus: Mapping[str, Any], entries: Sequence[Entry]
) -> None:
    expected = copy.deepcopy(yaml.safe_load(old_text))
    added = [copy.deepcopy(e.data) for e in entries]
    if bus_index is None:
        expected["buses"].append({**bus, "devices": added})
    else:
        expected["buses"][bus_index]["devices"] = (expected["buses"][bus_index]["devices"] or []) + added
    try:
        got = yaml.safe_load(new_text)
    except yaml.YAMLError as exc:
        raise AppendError([f"the appended text would not parse ({exc}); nothing written"]) from None
    if got != expected:
        raise AppendError(["the appended text would change more than the new devices; nothing written"])
