"""Staging a remote config without a broker: the canonical hash, RFC 7386 merge patches, and each
refusal (bad params, a wrong hash or base hash, invalid as `gateway check` finds it, another gateway,
moved state, the reserved device id, no command key). A refused config leaves no file behind; an
accepted one is validated as the very file that will replace the config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway import config_doc
from gateway.config_stage import Refused, Running, load_running, recover, stage, swap_in
from gateway.trial import Trial
from tests.conftest import PtyPair

KEY = "stage-command-key-0123456789abcdef"


def running(tmp_path: Path, port: str) -> Running:
    doc = {
        "gateway": {"id": "gw-test", "state_dir": str(tmp_path / "state")},
        "spool": {"path": str(tmp_path / "state" / "spool.sqlite3")},
        "commands": {"key": KEY},
        "buses": [
            {
                "name": "rs485-1",
                "port": port,
                "baud": 9600,
                "parity": "N",
                "devices": [{"kind": "modbus", "id": "mb-1", "unit": 1, "interval_s": 60}],
            }
        ],
    }
    path = tmp_path / "gateway.yaml"
    path.write_text("# a comment the hash ignores\n" + yaml.safe_dump(doc))
    path.chmod(0o600)
    return load_running(path, environ={})


def with_hash(doc: dict[str, Any], **params: Any) -> dict[str, Any]:
    return {"config": doc, "hash": config_doc.config_hash(doc), **params}


def test_hash_is_of_the_document_not_its_yaml() -> None:
    a = config_doc.parse("b: 1\na: [x, 'ü']\n", "a")
    b = config_doc.parse('# comment\na: ["x", ü]\nb: 1\n', "b")
    assert config_doc.config_hash(a) == config_doc.config_hash(b)
    assert config_doc.canonical(a) == '{"a":["x","ü"],"b":1}'.encode()
    assert config_doc.config_hash(a) != config_doc.config_hash({**a, "b": 2})
    with pytest.raises(config_doc.DocumentError, match="not JSON data"):
        config_doc.parse("when: 2026-12-03\n", "dated")


def test_merge_patch_follows_rfc_7386() -> None:
    target = {"a": "b", "c": {"d": "e", "f": "g"}, "l": [1, 2]}
    patch = {"a": "z", "c": {"f": None}, "l": [3], "n": {"m": 1}}
    assert config_doc.merge_patch(target, patch) == {"a": "z", "c": {"d": "e"}, "l": [3], "n": {"m": 1}}
    assert target == {"a": "b", "c": {"d": "e", "f": "g"}, "l": [1, 2]}, "the target is not changed"


def test_a_valid_config_is_staged_and_swapped_in(tmp_path: Path, pty_pair: PtyPair) -> None:
    old = running(tmp_path, pty_pair.path)
    patch = {"buses": [{**old.doc["buses"][0], "baud": 19200}]}
    new_doc = config_doc.merge_patch(old.doc, patch)
    staged = stage(old, {"patch": patch, "base_hash": old.hash, "deadline_s": 30}, {})
    assert staged is not None
    new, deadline = staged
    assert deadline == 30 and new.hash == config_doc.config_hash(new_doc)
    assert new.plan.config.buses[0].baud == 19200
    incoming = tmp_path / "gateway.yaml.incoming"
    assert incoming.stat().st_mode & 0o777 == 0o600
    swap_in(old.path, incoming, Trial("config", "c1", "gateway", 30, 0, {"hash": new.hash}))
    assert config_doc.read(old.path) == new_doc and not incoming.exists()
    assert config_doc.read(tmp_path / "gateway.yaml.previous") == old.doc
    # the gateway dies on trial: the next start restores the previous file
    trial = recover(old.path)
    assert trial is not None and trial.command_id == "c1"
    assert config_doc.read(old.path) == old.doc
    # the same config again: nothing to do
    assert stage(old, with_hash(old.doc), {}) is None


@pytest.mark.parametrize(
    ("change", "code", "words"),
    [
        ({"gateway": {"id": "gw-other"}}, "wrong_gateway", "for gateway 'gw-other'"),
        ({"gateway": {"state_dir": "/tmp/elsewhere"}}, "state_moved", "gateway.state_dir"),
        ({"spool": {"path": "/tmp/other.sqlite3"}}, "state_moved", "spool.path"),
        ({"commands": None}, "locks_out", "no command key"),
        ({"commands": {"key": KEY, "enabled": False}}, "locks_out", "no command key"),
        ({"mqtt": {"port": 0}}, "invalid_config", "mqtt.port"),
        (
            {"buses": [{"name": "x", "port": "/dev/ttyNOPE9", "devices": []}]},
            "invalid_config",
            "does not exist",
        ),
    ],
)
def test_refused_configs_leave_nothing_behind(
    tmp_path: Path, pty_pair: PtyPair, change: dict[str, Any], code: str, words: str
) -> None:
    old = running(tmp_path, pty_pair.path)
    doc = config_doc.merge_patch(old.doc, change)
    with pytest.raises(Refused) as refused:
        stage(old, with_hash(doc), {})
    assert refused.value.code == code and words in refused.value.reason, refused.value
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == ["gateway.yaml"]


def test_a_device_named_gateway_is_refused(tmp_path: Path, pty_pair: PtyPair) -> None:
    old = running(tmp_path, pty_pair.path)
    bus = {
        **old.doc["buses"][0],
        "devices": [{"kind": "modbus", "id": "gateway", "unit": 1, "interval_s": 60}],
    }
    with pytest.raises(Refused, match="reserved_device"):
        stage(old, with_hash({**old.doc, "buses": [bus]}), {})


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({}, "bad_params"),
        ({"config": {}, "patch": {}, "hash": "0" * 64}, "bad_params"),
        ({"config": {"gateway": {"id": "gw-test"}}}, "bad_params"),
        ({"config": {"gateway": {"id": "gw-test"}}, "hash": "0" * 64}, "hash_mismatch"),
        ({"patch": {}, "base_hash": "0" * 64}, "hash_mismatch"),
        ({"patch": {}, "hash": "0" * 64, "base_hash": "0" * 64}, "bad_params"),
        ({"patch": [], "hash": "0" * 64}, "bad_params"),
        ({"patch": {}, "hash": "0" * 64, "deadline_s": 1}, "bad_params"),
        ({"patch": {}, "hash": "0" * 64, "reboot": True}, "bad_params"),
    ],
)
def test_bad_params_are_refused(tmp_path: Path, pty_pair: PtyPair, params: dict[str, Any], code: str) -> None:
    with pytest.raises(Refused) as refused:
        stage(running(tmp_path, pty_pair.path), params, {})
    assert refused.value.code == code, refused.value


def test_gateway_check_prints_the_config_hash(
    tmp_path: Path, pty_pair: PtyPair, capsys: pytest.CaptureFixture[str]
) -> None:
    import argparse

    from gateway.cli import run_check

    old = running(tmp_path, pty_pair.path)
    assert run_check(argparse.Namespace(config=str(old.path))) == 0
    assert f"config hash {old.hash}" in capsys.readouterr().out


def test_a_running_config_without_a_hash_still_runs_and_takes_only_a_whole_config(
    tmp_path: Path, pty_pair: PtyPair
) -> None:
    old = running(tmp_path, pty_pair.path)
    old.path.write_text(old.path.read_text() + "gateway_note: 2026-12-03\n")  # a YAML date: not JSON data
    doc = dict(old.doc)
    undated = Running(old.path, old.plan, {}, "")
    assert load_running(old.path, old.plan) == undated
    with pytest.raises(Refused, match="send a whole config"):
        stage(undated, {"patch": {}, "hash": "0" * 64}, {})
    new = config_doc.merge_patch(doc, {"gateway": {"status_interval_s": 5}})
    staged = stage(undated, with_hash(new), {})
    assert staged is not None and staged[0].hash == config_doc.config_hash(new)
