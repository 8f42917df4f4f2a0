"""Topology: which site a gateway serves and where each device sits (transformer area, hall, counter,
account, phase). The writer turns it into tags; the alert engine groups devices by area.

Layer: ingest configuration (reads one YAML file, validated once). Must not: do network I/O or watch
the file itself — the service reloads it on SIGHUP by calling `Topology.load` again and swapping the
immutable result in, so readers never see a half-updated topology.

    gateways: {gw-demo-01: {site: demo-site}}
    areas: {area-a01: {region: urban, transformer: T-A01}}
    devices:
      gw-demo-01/000000000001: {area: area-a01, phase: A, account: "A-0001", customer_class: residential}
      gw-demo-01/hall-1: {hall: hall-main}
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Literal

from pydantic import field_validator

from protocols.config import Frozen, Locator, load
from protocols.errors import ConfigError, ContractError
from protocols.messages import check_id

__all__ = ["AreaInfo", "DeviceInfo", "Topology"]

Region = Literal["urban", "rural", "remote"]
_TAG_NAMES = ("site", "area", "hall", "counter", "account", "phase")
_versions = itertools.count(1)


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    area: str = ""
    phase: str = ""
    hall: str = ""
    counter: str = ""
    account: str = ""
    customer_class: str = "residential"
    nominal_v: float = 220.0


@dataclass(frozen=True, slots=True)
class AreaInfo:
    name: str
    region: Region = "urban"
    transformer: str = ""


class _Gateway(Frozen):
    site: str = ""


class _Area(Frozen):
    region: Region = "urban"
    transformer: str = ""


class _Device(Frozen):
    area: str = ""
    phase: Literal["", "A", "B", "C", "ABC"] = ""
    hall: str = ""
    counter: str = ""
    account: str = ""
    customer_class: str = "residential"
    nominal_v: float = 220.0


class _File(Frozen):
    gateways: dict[str, _Gateway] = {}
    areas: dict[str, _Area] = {}
    devices: dict[str, _Device] = {}

    @field_validator("devices")
    @classmethod
    def _keys_are_gw_slash_dev(cls, value: dict[str, _Device]) -> dict[str, _Device]:
        for key in value:
            gw, sep, dev = key.partition("/")
            if not sep:
                raise ValueError(f"device key {key!r} must be GATEWAY/DEVICE")
            try:
                check_id("gw", gw)
                check_id("dev", dev)
            except ContractError as exc:
                raise ValueError(f"device key {key!r}: {exc}") from None
        return value


@dataclass(frozen=True)
class Topology:
    """Immutable lookup tables; build with `load` or `empty`."""

    sites: Mapping[str, str] = field(default_factory=dict)
    areas: Mapping[str, AreaInfo] = field(default_factory=dict)
    devices: Mapping[tuple[str, str], DeviceInfo] = field(default_factory=dict)
    source: str = ""
    _tags: Mapping[tuple[str, str], Mapping[str, str]] = field(default_factory=dict, repr=False)
    _members: Mapping[str, tuple[tuple[str, str], ...]] = field(default_factory=dict, repr=False)
    # a new number per topology built (each load, each SIGHUP): what caches key on. Never id(), which
    # a topology freed by the last reload hands on to the next one (with its stale tags)
    version: int = field(default_factory=lambda: next(_versions), init=False, compare=False)

    @classmethod
    def empty(cls) -> Topology:
        return cls()

    @classmethod
    def load(cls, path: str | Path) -> Topology:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError([f"{path}: cannot read the topology file: {exc.strerror}"]) from None
        parsed = load(_File, text, source=str(path), environ={})
        return cls.from_model(parsed, Locator(text, str(path)))

    @classmethod
    def from_model(cls, parsed: _File, where: Locator | None = None) -> Topology:
        unknown = [
            (key, dev.area)
            for key, dev in parsed.devices.items()
            if dev.area and dev.area not in parsed.areas
        ]
        if unknown and parsed.areas:
            locate = where or (lambda loc: ".".join(map(str, loc)))
            raise ConfigError(
                [f"{locate(('devices', key, 'area'))}: unknown area {area!r}" for key, area in unknown]
            )
        sites = {gw: g.site for gw, g in parsed.gateways.items()}
        areas = {name: AreaInfo(name, a.region, a.transformer) for name, a in parsed.areas.items()}
        devices: dict[tuple[str, str], DeviceInfo] = {}
        for key, d in parsed.devices.items():
            gw, _, dev = key.partition("/")
            devices[(gw, dev)] = DeviceInfo(**d.model_dump())
        return cls._build(sites, areas, devices, where.source if where else "")

    @classmethod
    def _build(
        cls,
        sites: dict[str, str],
        areas: dict[str, AreaInfo],
        devices: dict[tuple[str, str], DeviceInfo],
        source: str,
    ) -> Topology:
        tags: dict[tuple[str, str], Mapping[str, str]] = {}
        members: dict[str, list[tuple[str, str]]] = {}
        for (gw, dev), info in devices.items():
            values = {"site": sites.get(gw, ""), **{n: getattr(info, n) for n in _TAG_NAMES[1:]}}
            tags[(gw, dev)] = MappingProxyType({k: v for k, v in values.items() if v})
            if info.area:
                members.setdefault(info.area, []).append((gw, dev))
        return cls(
            sites=MappingProxyType(sites),
            areas=MappingProxyType(areas),
            devices=MappingProxyType(devices),
            source=source,
            _tags=MappingProxyType(tags),
            _members=MappingProxyType({a: tuple(sorted(m)) for a, m in members.items()}),
        )

    def site(self, gw: str) -> str:
        return self.sites.get(gw, "")

    def device(self, gw: str, dev: str) -> DeviceInfo | None:
        return self.devices.get((gw, dev))

    def area(self, name: str) -> AreaInfo:
        return self.areas.get(name) or AreaInfo(name)

    def area_members(self, area: str) -> list[tuple[str, str]]:
        return list(self._members.get(area, ()))

    def gateway_areas(self, gw: str) -> list[str]:
        return sorted({info.area for (g, _), info in self.devices.items() if g == gw and info.area})

    def tags(self, gw: str, dev: str) -> dict[str, str]:
        """site, area, hall, counter, account, phase — only those that are set."""
        known = self._tags.get((gw, dev))
        if known is not None:
            return dict(known)
        site = self.sites.get(gw, "")
        return {"site": site} if site else {}
