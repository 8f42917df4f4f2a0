"""The trial of a new release (gateway.update_trial) and the artifact checks (gateway.release), with
real processes, pipes, files and Ed25519 keys; the candidate "releases" are small scripts that do
what a release on trial can do: report healthy, report why not, hang, or exit."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from gateway.release import Layout, Signed, UpdateError, check_signature, fetch, sign_artifact
from gateway.update import Candidate
from gateway.update_trial import trial
from protocols import signing


def _release(layout: Layout, version: str, script: str) -> Path:
    """A release whose `gridedge` runs `script` (Python) with `report(dict)` writing to the trial pipe."""
    release = layout.release(version)
    exe = layout.gridedge(release)
    exe.parent.mkdir(parents=True)
    prelude = (
        "import json, os, sys, time\n"
        "def report(fact):\n"
        "    os.write(int(os.environ['GRIDEDGE_TRIAL_FD']), json.dumps(fact).encode() + b'\\n')\n"
    )
    exe.write_text(f"#!{sys.executable}\n{prelude}{script}")
    exe.chmod(0o755)
    return release


def _candidate(release: Path) -> Candidate:
    signed = Signed(f"gridedge-{release.name}-py3-none-any.whl", release.name, "0" * 64, 1, "test")
    return Candidate("cmd-1", "gw-test", signed, release)


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    layout = Layout(tmp_path / "opt")
    old = _release(layout, "1.0.0", SLEEP)
    layout.switch(old)
    return layout


SLEEP = "time.sleep(60)\n"
HEALTHY = "report({'healthy': True})\n" + SLEEP


def test_a_healthy_release_becomes_current_and_its_process_is_stopped(layout: Layout) -> None:
    new = _release(layout, "1.0.1", HEALTHY)
    started = time.monotonic()
    verdict = trial(_candidate(new), layout, [], 10)
    assert verdict.healthy, verdict
    assert time.monotonic() - started < 5, "judged on the report, not at the deadline"
    assert layout.current.resolve() == new.resolve()
    assert layout.previous.resolve() == layout.release("1.0.0").resolve()


def test_a_release_that_never_reports_is_rolled_back_at_the_deadline(layout: Layout) -> None:
    new = _release(layout, "1.0.1", SLEEP)  # runs, but never proves itself
    started = time.monotonic()
    verdict = trial(_candidate(new), layout, [], 1.5)
    assert not verdict.healthy
    assert "no health report" in verdict.reason
    assert 1.4 < time.monotonic() - started < 10, "stopped at the deadline (SIGTERM, not 30 s)"
    assert layout.current.resolve() == layout.release("1.0.0").resolve()
    assert not new.exists(), "the failed release is removed"


def test_the_reason_a_release_gives_is_the_verdicts(layout: Layout) -> None:
    reason = "within 20 s: bus rs485-1 on /dev/ttyUSB0: no device answered a poll"
    new = _release(layout, "1.0.1", f"report({{'healthy': False, 'reason': {reason!r}}})\n" + SLEEP)
    verdict = trial(_candidate(new), layout, [], 10)
    assert not verdict.healthy and reason in verdict.reason
    assert layout.current.resolve() == layout.release("1.0.0").resolve()


def test_a_release_that_exits_at_start_is_rolled_back_at_once(layout: Layout) -> None:
    new = _release(layout, "1.0.1", "sys.exit(3)\n")
    verdict = trial(_candidate(new), layout, [], 30)
    assert not verdict.healthy and "exited with 3" in verdict.reason
    assert verdict.seconds < 5
    assert layout.current.resolve() == layout.release("1.0.0").resolve()


def test_a_stop_during_the_trial_ends_it_without_switching(layout: Layout) -> None:
    new = _release(layout, "1.0.1", SLEEP)
    stop_at = time.monotonic() + 0.5
    verdict = trial(_candidate(new), layout, [], 30, stopping=lambda: time.monotonic() > stop_at)
    assert not verdict.healthy and "stopped" in verdict.reason
    assert verdict.seconds < 5
    assert layout.current.resolve() == layout.release("1.0.0").resolve()


def test_only_current_and_previous_are_kept(layout: Layout) -> None:
    for version in ("1.0.1", "1.0.2"):
        release = _release(layout, version, HEALTHY)
        assert trial(_candidate(release), layout, [], 10).healthy
    assert sorted(p.name for p in (layout.root / "releases").iterdir()) == ["1.0.1", "1.0.2"]


# ---- the artifact's signature and bytes -----------------------------------------------------------


@pytest.fixture
def artifact(tmp_path: Path) -> Path:
    path = tmp_path / "gridedge-1.0.1-py3-none-any.whl"
    path.write_bytes(bytes(range(256)) * 64)
    return path


def test_a_signature_vouches_for_every_field(artifact: Path) -> None:
    ops = signing.Signer.generate("ops")
    doc = sign_artifact(artifact, ops)
    signed = check_signature(doc, (ops.public,))
    assert (signed.version, signed.size) == ("1.0.1", artifact.stat().st_size)
    for field, value in (("sha256", "0" * 64), ("version", "1.0.2"), ("size", 1), ("artifact", "x.whl")):
        with pytest.raises(UpdateError) as refused:
            check_signature({**doc, field: value}, (ops.public,))
        assert refused.value.code == "bad_signature", field
    with pytest.raises(UpdateError) as refused:
        check_signature(doc, (signing.Signer.generate().public,))
    assert refused.value.code == "unknown_key"
    hmac_doc = signing.signed({k: v for k, v in doc.items() if k not in ("alg", "kid", "sig")}, b"k" * 32)
    with pytest.raises(UpdateError) as refused:
        check_signature(hmac_doc, (ops.public,))
    assert refused.value.code == "alg_not_accepted" and "HMAC" in refused.value.reason


def test_fetch_refuses_bytes_the_signature_does_not_cover(artifact: Path, tmp_path: Path) -> None:
    ops = signing.Signer.generate("ops")
    signed = check_signature(sign_artifact(artifact, ops), (ops.public,))
    assert fetch(artifact.as_uri(), signed, tmp_path / "in").read_bytes() == artifact.read_bytes()
    longer = tmp_path / "longer.whl"
    longer.write_bytes(artifact.read_bytes() + b"x")
    changed = tmp_path / "changed.whl"
    changed.write_bytes(b"y" + artifact.read_bytes()[1:])
    for path in (longer, changed):
        with pytest.raises(UpdateError) as refused:
            fetch(path.as_uri(), signed, tmp_path / "in2")
        assert refused.value.code == "hash_mismatch"
        assert not list((tmp_path / "in2").iterdir()), "nothing left on disk"
    with pytest.raises(UpdateError) as refused:
        fetch("ftp://example.org/x.whl", signed, tmp_path / "in3")
    assert refused.value.code == "malformed"
