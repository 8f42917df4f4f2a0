"""The hall simulator's demo controls: a rush of customers, a forced rating, a faster hall clock."""

from __future__ import annotations

import datetime as dt

import pytest

from firmware_sim.control import execute
from firmware_sim.devices.hall import build_hall
from firmware_sim.devices.hall.model import HallModel, HallParams
from protocols.hall import Evt

T0 = dt.datetime(2026, 11, 16, 10, 0).timestamp()  # a Monday mid-month, hall open


def _quiet(**kw: object) -> HallParams:
    return HallParams(counters=2, seed=3, arrivals_per_hour=0, pauses_per_hour=0, **kw)  # type: ignore[arg-type]


def _issued(model: HallModel) -> list[int]:
    return [e.fields["ticket"] for e in model.log if e.code is Evt.TICKET_ISSUED]


def test_rush_issues_tickets_at_once_over_the_control_channel() -> None:
    devices = {d.name: d for d in build_hall(_quiet(), T0)}
    model = devices["hall-dispenser"].model
    assert execute(devices, "rush hall-dispenser 12", T0) == "ok rush hall-dispenser 12"
    assert _issued(model) == list(range(1, 13))
    assert model.waiting() == 12


def test_forced_rating_is_the_next_one_given() -> None:
    params = _quiet(rating_weights=(1.0, 0.0, 0.0, 0.0), rating_probability=0.0)
    devices = {d.name: d for d in build_hall(params, T0)}
    model = devices["hall-pad-1"].model
    assert execute(devices, "rate hall-pad-1 4", T0).startswith("ok")
    assert execute(devices, "rate hall-pad-1 9", T0).startswith("error rate hall-pad-1")
    model.rush(1)
    now = T0
    while not any(e.code is Evt.FINISH for e in model.log):
        now += 5
        model.advance(now)
    finish = next(e for e in model.log if e.code is Evt.FINISH)
    counter = finish.address - 1
    model.start_eval(counter, 1)  # nobody would rate (probability 0) but a forced level always does
    model.advance(now + params.rating_timeout_s)
    ratings = [e for e in model.log if e.code is Evt.RATING]
    assert [r.fields["level"] for r in ratings] == [4]


@pytest.mark.parametrize("scale", [1.0, 10.0])
def test_time_scale_runs_the_hall_faster(scale: float) -> None:
    model = HallModel(_quiet(time_scale=scale), T0)
    model.advance(T0 + 60)
    assert model.now == pytest.approx(T0 + 60 * scale, abs=5)


def test_time_scale_must_be_positive() -> None:
    with pytest.raises(Exception, match="time scale"):
        HallModel(_quiet(time_scale=0), T0)


def test_start_hour_opens_the_hall_in_the_morning_whatever_the_time() -> None:
    night = dt.datetime(2026, 11, 16, 23, 30).timestamp()
    model = HallModel(_quiet(start_hour=9.0, time_scale=10.0), night)
    assert dt.datetime.fromtimestamp(model.now).hour == 9
    model.advance(night + 60)  # ten hall minutes later
    assert dt.datetime.fromtimestamp(model.now).strftime("%H:%M") == "09:10"
    model.rush(3)
    assert model.waiting() == 3
