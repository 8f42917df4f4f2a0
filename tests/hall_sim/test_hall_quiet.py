"""A simulator that says why it is quiet (issue 20 item 2): a hall outside its opening hours prints its
clock and its next opening on stderr; unattended (stdout not a terminal) and with no --start-at, it
starts at the opening instead of waiting for it."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time

import pytest

from firmware_sim.devices.hall.model import HallModel, HallParams

START = dt.datetime(2026, 12, 3, 22, 15).timestamp()  # local time, like the hall clock


def test_a_closed_hall_names_its_clock_and_next_opening() -> None:
    model = HallModel(HallParams(counters=1, start_hour=22.25), START)
    (reason,) = model.quiet_reasons()
    assert "hall closed: its clock reads 2026-12-03 22:15" in reason
    assert "opening hours 08:30-17:30" in reason and "opens 2026-12-04 08:30" in reason
    assert "--start-at" in reason
    assert HallModel(HallParams(counters=1, start_hour=9.0), START).quiet_reasons() == []


def test_every_option_that_silences_the_hall_is_named() -> None:
    params = HallParams(counters=1, start_hour=9.0, arrivals_per_hour=0, rating_probability=0)
    reasons = HallModel(params, START).quiet_reasons()
    assert [r.split(" (")[0] for r in reasons] == ["no customer arrives", "nobody rates"]


def _closed_hours_now() -> str:
    hour = dt.datetime.now().hour
    return "13:00-14:00" if hour < 12 or hour >= 15 else "01:00-02:00"


def _stderr_of_sim(*argv: str, stdout: int | None = None) -> str:
    proc = subprocess.Popen(
        [sys.executable, "-m", "gridedge", "sim", "hall", "--port", "pty", "--counters", "1", *argv],
        stdout=subprocess.PIPE if stdout is None else stdout,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        deadline = time.monotonic() + 20
        lines = []
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            lines.append(line)
            if "hall closed" in line or "opening" in line or not line:
                break
        return "".join(lines)
    finally:
        proc.terminate()  # what this test checks is said by then; a slow exit under load is not its concern
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@pytest.mark.integration
def test_an_unattended_closed_hall_starts_at_its_opening() -> None:
    text = _stderr_of_sim("--hours", _closed_hours_now())
    assert "stdout is not a terminal: its clock starts at the opening" in text, text


@pytest.mark.integration
def test_a_closed_hall_says_so_on_stderr() -> None:
    hours = _closed_hours_now()
    closed_at = "03:00" if hours.startswith("13") else "15:00"
    text = _stderr_of_sim("--hours", hours, "--start-at", closed_at)  # asked for: no auto-opening
    assert "gridedge sim hall: hall closed: its clock reads" in text, text
    master, slave = os.openpty()  # a person at a terminal: told, and the clock left as it is
    try:
        text = _stderr_of_sim("--hours", hours, stdout=slave)
    finally:
        os.close(master)
        os.close(slave)
    assert "hall closed" in text and "starts at the opening" not in text, text
