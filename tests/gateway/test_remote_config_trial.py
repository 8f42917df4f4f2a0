"""gateway.trial's marker: what is on trial survives a restart, an unreadable marker still means an
unconfirmed change, and ending the trial removes it (confirm() runs end to end in test_remote_config)."""

from __future__ import annotations

from pathlib import Path

from gateway.trial import Trial, TrialMarker


def test_marker_round_trip_and_end(tmp_path: Path) -> None:
    marker = TrialMarker(tmp_path / "gateway.yaml.trial")
    assert marker.pending() is None
    trial = Trial("config", "c0ffee", "gateway", 30.0, 1_700_000_000_000, {"hash": "ab" * 32})
    marker.begin(trial)
    assert TrialMarker(marker.path).pending() == trial, "a new process reads the same trial back"
    marker.end()
    assert marker.pending() is None and not marker.path.exists()
    marker.end()  # ending twice (a crash between rollback and end) is harmless


def test_unreadable_marker_is_an_unconfirmed_change(tmp_path: Path) -> None:
    marker = TrialMarker(tmp_path / "gateway.yaml.trial")
    marker.path.write_text('{"kind": "config"')  # cut short
    trial = marker.pending()
    assert trial is not None and trial.kind == "unreadable" and trial.detail["error"]
