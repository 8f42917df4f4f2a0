"""Canonical value names and units: the one vocabulary every driver maps onto.

Layer: pure data (protocols). Dashboards, alert rules and the InfluxDB schema use only these names;
DL/T 645 identifiers, Modbus registers and future device kinds are mapped onto them by drivers.
Must not: import anything outside the standard library.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final


class ValueType(enum.Enum):
    FLOAT = "float"
    INT = "int"
    BOOL = "bool"
    RELAY = "relay"  # "closed" | "open"


@dataclass(frozen=True, slots=True)
class Canonical:
    name: str
    unit: str
    type: ValueType
    description: str


def _c(name: str, unit: str, description: str, type_: ValueType = ValueType.FLOAT) -> Canonical:
    return Canonical(name, unit, type_, description)


_PHASES: Final = ("a", "b", "c")

_ENTRIES: Final[tuple[Canonical, ...]] = (
    _c("energy_import_kwh", "kWh", "forward (import) active energy, total"),
    _c("energy_export_kwh", "kWh", "reverse (export) active energy, total"),
    _c("energy_combined_kwh", "kWh", "combined active energy, total (DL/T 645 00000000)"),
    *(_c(f"energy_import_t{t}_kwh", "kWh", f"forward active energy, tariff {t}") for t in range(1, 5)),
    *(_c(f"energy_export_t{t}_kwh", "kWh", f"reverse active energy, tariff {t}") for t in range(1, 5)),
    _c("energy_reactive_import_kvarh", "kvarh", "forward (import) reactive energy, total"),
    _c("energy_reactive_export_kvarh", "kvarh", "reverse (export) reactive energy, total"),
    *(_c(f"voltage_{p}_v", "V", f"phase {p.upper()} voltage") for p in _PHASES),
    *(_c(f"current_{p}_a", "A", f"phase {p.upper()} current") for p in _PHASES),
    _c("current_n_a", "A", "neutral current"),
    _c("power_active_kw", "kW", "total active power"),
    *(_c(f"power_active_{p}_kw", "kW", f"phase {p.upper()} active power") for p in _PHASES),
    _c("power_reactive_kvar", "kvar", "total reactive power"),
    *(_c(f"power_reactive_{p}_kvar", "kvar", f"phase {p.upper()} reactive power") for p in _PHASES),
    _c("power_apparent_kva", "kVA", "total apparent power"),
    *(_c(f"power_apparent_{p}_kva", "kVA", f"phase {p.upper()} apparent power") for p in _PHASES),
    _c("power_factor", "", "total power factor"),
    *(_c(f"power_factor_{p}", "", f"phase {p.upper()} power factor") for p in _PHASES),
    _c("demand_import_kw", "kW", "forward active maximum demand"),
    _c("frequency_hz", "Hz", "grid frequency"),
    _c("temperature_c", "°C", "meter internal temperature"),
    _c("price_cny_per_kwh", "CNY/kWh", "current electricity price held by the meter"),
    _c("balance_cny", "CNY", "remaining amount (prepaid wallet)"),
    _c("overdraft_cny", "CNY", "overdraft amount used"),
    _c("balance_kwh", "kWh", "remaining energy (kWh-type prepaid meters)"),
    _c("overdraft_kwh", "kWh", "overdraft energy used (kWh-type prepaid meters)"),
    _c("alarm1_cny", "CNY", "alarm amount 1 threshold"),
    _c("alarm2_cny", "CNY", "alarm amount 2 threshold"),
    _c("overdraft_limit_cny", "CNY", "overdraft (credit) limit"),
    _c("hoarding_limit_cny", "CNY", "hoarding (maximum balance) limit"),
    _c("purchase_count", "", "total purchase count", ValueType.INT),
    _c("purchase_last_cny", "CNY", "amount of the last purchase"),
    _c("purchase_total_cny", "CNY", "cumulative purchased amount"),
    _c("relay", "", "relay actual state: closed (power on) / open (power off)", ValueType.RELAY),
    _c("relay_commanded", "", "relay command state: closed / open (trip commanded)", ValueType.RELAY),
    _c("pre_trip_alarm", "", "pre-trip (low balance) alarm active", ValueType.BOOL),
    _c("keep_power", "", "keep-power (保电) on", ValueType.BOOL),
    _c("power_down_count", "", "total power-down count", ValueType.INT),
    _c("meter_clock_skew_s", "s", "meter clock minus gateway clock"),
    _c("meter_time_s", "s", "meter clock as UNIX seconds (local wall time read from the meter)"),
    *(
        _c(f"status_word_{n}", "", f"DL/T 645 running status word {n} (raw)", ValueType.INT)
        for n in range(1, 8)
    ),
    _c("queue_waiting", "", "tickets waiting in the hall queue", ValueType.INT),
)

VOCABULARY: Final[dict[str, Canonical]] = {c.name: c for c in _ENTRIES}
CANONICAL_NAMES: Final[frozenset[str]] = frozenset(VOCABULARY)

RELAY_STATES: Final = ("closed", "open")


def canonical(name: str) -> Canonical:
    """Look a name up; raise KeyError naming the unknown value when it is outside the vocabulary."""
    try:
        return VOCABULARY[name]
    except KeyError:
        raise KeyError(f"unknown canonical value name {name!r}") from None
