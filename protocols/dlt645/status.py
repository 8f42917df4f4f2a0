"""DL/T 645-2007 running status words 1-7 (`04000501`..`04000507`, 2 bytes, low byte first) and the
mapping of decoded item values onto the canonical vocabulary.

Layer: pure (protocols). Must not: decide alerts (the gateway does); this only names bits.

Bits per dlt645.md §3.3. Status word 3 is what a prepaid gateway watches: bit 4 the relay's actual
state, bit 6 the commanded state, bit 7 the pre-trip alarm, bit 12 keep-power (2013 revision; original
2007 meters leave bits 12-15 reserved, §9.4). SW1 bit 0 is reserved in one source and "external switch
mode" in another, so it is reported as `bit0`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from ..vocabulary import CANONICAL_NAMES
from .formats import Value

_PHASE_BITS: Final = (
    "loss_of_voltage",
    "undervoltage",
    "overvoltage",
    "loss_of_current",
    "overcurrent",
    "overload",
    "reverse_power",
    "phase_break",
    "current_break",
)

STATUS_BITS: Final[Mapping[int, tuple[str | None, ...]]] = {
    1: (
        None,
        "demand_block_method",
        "clock_battery_low",
        "reading_battery_low",
        "active_power_reversed",
        "reactive_power_reversed",
    ),
    2: (
        "active_power_reversed_a",
        "active_power_reversed_b",
        "active_power_reversed_c",
        None,
        "reactive_power_reversed_a",
        "reactive_power_reversed_b",
        "reactive_power_reversed_c",
    ),
    3: (
        "daily_period_table_2",
        None,  # bits 1-2: power supply, see status_word_3
        None,
        "programming_allowed",
        "relay_open",
        "time_zone_table_2",
        "relay_trip_commanded",
        "pre_trip_alarm",
        None,  # bits 8-9: meter type
        None,
        "tou_price_set_2",
        "tier_price_set_2",
        "keep_power",
        "authenticated",
        "local_account_open",
        "remote_account_open",
    ),
    4: _PHASE_BITS,
    5: _PHASE_BITS,
    6: _PHASE_BITS,
    7: (
        "voltage_reverse_sequence",
        "current_reverse_sequence",
        "voltage_unbalance",
        "current_unbalance",
        "auxiliary_supply_lost",
        "power_down",
        "demand_over_limit",
        "power_factor_below_limit",
        "severe_current_unbalance",
        "meter_cover_opened",
        "terminal_cover_opened",
    ),
}

POWER_SUPPLY: Final = ("main", "auxiliary", "battery", "reserved")
METER_TYPE: Final = ("not_prepaid", "kwh_prepaid", "money_prepaid", "reserved")


def status_bits(word_number: int, word: int) -> tuple[str, ...]:
    """Names of the set bits of status word `word_number` (1..7); unnamed bits come out as `bit<n>`.
    For word 3 the multi-bit fields are left out: see `status_word_3`."""
    names = STATUS_BITS.get(word_number, ())
    multi = {1, 2, 8, 9} if word_number == 3 else set()
    return tuple(_bit_name(names, bit) for bit in range(16) if word >> bit & 1 and bit not in multi)


def _bit_name(names: tuple[str | None, ...], bit: int) -> str:
    name = names[bit] if bit < len(names) else None
    return name or f"bit{bit}"


def status_word_3(word: int) -> dict[str, str | bool]:
    """Status word 3 as named fields; `relay` / `relay_commanded` use the vocabulary's closed/open."""
    return {
        "relay": "open" if word & 1 << 4 else "closed",
        "relay_commanded": "open" if word & 1 << 6 else "closed",
        "pre_trip_alarm": bool(word & 1 << 7),
        "keep_power": bool(word & 1 << 12),
        "power_supply": POWER_SUPPLY[word >> 1 & 3],
        "meter_type": METER_TYPE[word >> 8 & 3],
        "programming_allowed": bool(word & 1 << 3),
        "authenticated": bool(word & 1 << 13),
        "local_account_open": bool(word & 1 << 14),
        "remote_account_open": bool(word & 1 << 15),
    }


def canonical_values(values: Mapping[str, Value]) -> dict[str, float | int | str | bool]:
    """The subset of decoded item values (name -> value, as `items.decode_values` returns) that maps
    onto the canonical vocabulary: numbers under canonical names, the maximum demand's value, and status
    word 3 split into relay / relay_commanded / pre_trip_alarm / keep_power. Fill values (None) are left
    out: they are missing, not zero."""
    out: dict[str, float | int | str | bool] = {}
    for name, raw in values.items():
        value = raw.get("value") if isinstance(raw, dict) else raw
        if name not in CANONICAL_NAMES or isinstance(value, bool) or not isinstance(value, int | float):
            continue
        out[name] = value
        if name == "status_word_3":
            fields = status_word_3(int(value))
            out.update({k: fields[k] for k in ("relay", "relay_commanded", "pre_trip_alarm", "keep_power")})
    return out
