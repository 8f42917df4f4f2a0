"""The one list of device kinds (`protocols.kinds`): every registered kind has each of its parts, and a
kind registered once appears in every command that takes a kind (decode, read, scan, sniff, sim)."""

from __future__ import annotations

import argparse
import importlib
import importlib.machinery
import inspect
import sys
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.drivers.base import DeviceBase, Driver
from gateway.drivers.registry import config_model, driver_class
from gridedge.cli import build_parser
from protocols import kinds, sniff

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", kinds.names())
def test_every_registered_kind_has_each_part(name: str) -> None:
    codec = importlib.import_module(f"protocols.{name}")
    for attr in ("describe", "find_frames", "summary"):
        assert callable(getattr(codec, attr, None)), f"protocols.{name}.{attr}"
    model = config_model(name)
    assert issubclass(model, DeviceBase)
    assert typing.get_args(model.model_fields["kind"].annotation) == (name,), "kind: Literal[NAME]"
    assert issubclass(driver_class(name), Driver)
    commission = importlib.import_module(f"gateway.drivers.{name}.commission")
    for attr in ("add_read_arguments", "read", "add_scan_arguments", "scan"):
        assert callable(getattr(commission, attr, None)), f"gateway.drivers.{name}.commission.{attr}"
    assert inspect.iscoroutinefunction(commission.read) and inspect.iscoroutinefunction(commission.scan)
    sim = importlib.import_module(f"firmware_sim.devices.{name}")
    assert callable(sim.add_arguments) and callable(sim.build)
    assert (ROOT / "examples" / "devices" / f"{name}.yaml").is_file(), "a commented sample config"
    assert name in (ROOT / "docs" / "field-guide.md").read_text(), "its line settings in the field guide"


def test_a_kind_is_registered_once() -> None:
    with pytest.raises(ValueError, match="twice"):
        kinds.register(kinds.KINDS["dlt645"])
    with pytest.raises(KeyError, match="expected one of dlt645"):
        kinds.get("iec104")


def _module(name: str, **attrs: Any) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__spec__ = importlib.machinery.ModuleSpec(name, None)
    module.__dict__.update(attrs)
    return module


@pytest.fixture
def acme(monkeypatch: pytest.MonkeyPatch) -> Iterator[kinds.DeviceKind]:
    """A dummy kind `acme`: frames are `AC <byte>`; one part per layer, put where the registry looks."""

    def find_frames(data: bytes) -> list[tuple[int, int, dict[str, Any]]]:
        at = data.find(b"\xac")
        return (
            []
            if at < 0 or at + 2 > len(data)
            else [(at, at + 2, {"protocol": "acme", "value": data[at + 1]})]
        )

    def add_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--acme-things", type=int, default=1)

    async def scan(bus: object, args: object, progress: object) -> list[dict[str, Any]]:
        return []

    async def read(bus: object, args: object) -> dict[str, Any]:
        return {}

    parts = {
        "protocols.acme": _module(
            "protocols.acme",
            describe=lambda data: {"protocol": "acme", "value": data[1]},
            find_frames=find_frames,
            summary=lambda frame: f"acme {frame['value']}",
        ),
        "gateway.drivers.acme": _module("gateway.drivers.acme"),
        "gateway.drivers.acme.commission": _module(
            "gateway.drivers.acme.commission",
            add_read_arguments=lambda p: p.add_argument("--acme-point"),
            add_scan_arguments=lambda p: None,
            read=read,
            scan=scan,
        ),
        "firmware_sim.devices.acme": _module(
            "firmware_sim.devices.acme", add_arguments=add_arguments, build=lambda args, start: []
        ),
    }
    for name, module in parts.items():
        monkeypatch.setitem(sys.modules, name, module)
    with kinds.registered(kinds.DeviceKind("acme", "the ACME widget", 4800, "O", sniff_rank=5)) as kind:
        yield kind


def _choices(parser: argparse.ArgumentParser, *path: str) -> list[str]:
    for name in path:
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = sub.choices[name]
    if not path or path[0] == "sim":
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        return list(sub.choices)
    return list(next(a for a in parser._actions if a.dest == "protocol").choices or [])


def test_a_registered_kind_is_in_every_command(acme: kinds.DeviceKind) -> None:
    parser = build_parser()
    for command in ("decode", "read", "scan", "sniff"):
        assert "acme" in _choices(parser, command), command
    assert "acme" in _choices(parser, "sim")
    args = parser.parse_args(["sim", "acme", "--acme-things", "3"])
    assert (args.sim_kind, args.acme_things, args.baud) == ("acme", 3, 4800)  # the kind's own line speed
    args = parser.parse_args(["read", "--protocol", "acme", "--port", "/dev/null", "--acme-point", "x"])
    assert args.acme_point == "x"
    # sniff asks the kinds by rank: acme (5) before the hall (10)
    assert [f["protocol"] for f in sniff.decode_burst(b"\x01\xac\x07")] == ["unknown", "acme"]
    assert sniff.summary(sniff.decode_burst(b"\xac\x07")[0]) == "acme 7"


def test_an_unregistered_kind_is_in_no_command() -> None:
    parser = build_parser()
    for command in ("decode", "read", "scan", "sniff"):
        assert "acme" not in _choices(parser, command)
    assert "acme" not in _choices(parser, "sim")
