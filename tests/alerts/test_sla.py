"""Repair-promise presets and the SLA clock (figures from docs/domain.md)."""

from __future__ import annotations

import pytest

from ingest.alerts import sla

H, MIN = 3600.0, 60.0


@pytest.mark.parametrize(
    ("preset", "region", "arrival", "restore"),
    [
        ("seed", "urban", 30 * MIN, 4 * H),
        ("seed", "rural", 60 * MIN, 6 * H),
        ("seed", "remote", 90 * MIN, 6 * H),
        ("sgcc-2023", "urban", 45 * MIN, 45 * MIN + 3 * H),
        ("sgcc-2023", "rural", 90 * MIN, 90 * MIN + 4 * H),
        ("sgcc-2023", "remote", 120 * MIN, 120 * MIN + 4 * H),
        ("csg", "urban", 45 * MIN, 4 * H),
        ("csg", "rural", 90 * MIN, 5 * H),
        ("csg", "remote", 120 * MIN, 5 * H),
    ],
)
def test_preset_figures(preset: str, region: str, arrival: float, restore: float) -> None:
    assert sla.promise(preset, region) == sla.Promise(arrival, restore)


def test_unknown_region_gets_the_strictest_urban_promise() -> None:
    assert sla.promise("csg", "island") == sla.promise("csg", "urban")


def test_sla_state_escalates_before_the_promise() -> None:
    assert sla.sla_state(0.79 * 4 * H, 4 * H, 0.8) == "ok"
    assert sla.sla_state(0.8 * 4 * H, 4 * H, 0.8) == "at_risk"
    assert sla.sla_state(4 * H, 4 * H, 0.8) == "broken"
