"""Benchmarks clean up after themselves and show their spread (issue 20, item 8).

Each benchmark's broker, influxd data and state live in one temporary directory, removed when the run
ends; a failed run keeps its logs only. The bus benchmark seeds each repeat's simulated meters
differently and prints the spread. The smoke runs set TMPDIR to a directory of the test's own, so
"nothing left behind" is checked there, not in a /tmp other programs share.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bench.workdir import prune_to_logs, run_dir

REPO = Path(__file__).resolve().parents[2]


def _leftovers(tmp: Path) -> list[str]:
    return sorted(str(p.relative_to(tmp)) for p in tmp.rglob("*"))


def _fill(root: Path) -> None:
    (root / "influxd" / "data" / "db").mkdir(parents=True)
    (root / "influxd" / "data" / "db" / "000001.tsm").write_bytes(b"\0" * 4096)
    (root / "influxd" / "influxd.log").write_text("influxd says\n")
    (root / "alerts.sqlite").write_bytes(b"SQLite")
    (root / "ingest-0.log").write_text("the writer says\n")


def test_a_clean_run_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr("tempfile.tempdir", None)  # re-read TMPDIR
    with run_dir("gridedge-x-") as run:
        assert run.path.parent == tmp_path
        _fill(run.path)
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("how", ["raises", "says so"])
def test_a_failed_run_keeps_its_logs_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], how: str
) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr("tempfile.tempdir", None)
    with pytest.raises(RuntimeError) if how == "raises" else _nothing():
        with run_dir("gridedge-x-") as run:
            _fill(run.path)
            if how == "raises":
                raise RuntimeError("stored 99/100")
            run.failed()
    name = run.path.name
    assert _leftovers(tmp_path) == [
        name,
        f"{name}/influxd",
        f"{name}/influxd/influxd.log",
        f"{name}/ingest-0.log",
    ]
    assert f"2 log(s) kept in {run.path}" in capsys.readouterr().err


def test_pruning_a_directory_without_logs_empties_it(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "x.sqlite").write_bytes(b"x")
    assert prune_to_logs(tmp_path) == [] and _leftovers(tmp_path) == []


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


@pytest.mark.integration
def test_the_alert_benchmark_leaves_no_temp_folder(tmp_path: Path) -> None:
    """Its cheap path (400 readings) with a real broker and influxd: used to leave ~1 MB (a full
    `make bench` ~48 MB) in /tmp per run."""
    done = subprocess.run(
        [sys.executable, "bench/alerts_throughput.py", "--readings", "400", "--meters", "20"],
        cwd=REPO,
        env={**os.environ, "TMPDIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "400 readings from 20 meters" in done.stdout
    assert _leftovers(tmp_path) == []


@pytest.mark.integration
def test_the_bus_benchmark_seeds_each_repeat_and_prints_the_spread(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "bench/bus_efficiency.py", "--meters", "2", "--seconds", "1", "--repeats", "2"],
        cwd=REPO,
        env={**os.environ, "TMPDIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    seeds = re.findall(r"^seed (\d+) +achieved +([\d.]+) reads/s", done.stdout, re.M)
    assert [s for s, _ in seeds] == ["1", "2"], done.stdout
    assert re.search(r"median of 2; spread [\d.]+-[\d.]+ = [\d.]+%", done.stdout), done.stdout
    assert _leftovers(tmp_path) == []
