"""The gateway warns (does not refuse: CI runs as root) when it runs as uid 0."""

from __future__ import annotations

import logging

import pytest

from gateway import app


@pytest.mark.parametrize(("euid", "warned"), [(0, True), (998, False)])
def test_warns_when_running_as_root(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, euid: int, warned: bool
) -> None:
    monkeypatch.setattr(app.os, "geteuid", lambda: euid)
    with caplog.at_level(logging.WARNING, logger="gateway"):
        app.warn_if_root()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "running as root" in r.message]
    assert bool(warnings) is warned
    if warned:
        assert "User=gridedge" in warnings[0].message and "dialout" in warnings[0].message
