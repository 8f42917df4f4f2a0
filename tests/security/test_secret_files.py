"""Config files with secrets are refused when every local user can read them: a gateway.yaml or
ingest.yaml holding a password, key or token inline, or a password_file / key_file / token_file they
name, with the world-read bit set. The error names the file and the fix. The examples (no inline
secrets) still load."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from gateway.config import load_config as load_gateway
from ingest.config import load_config as load_ingest
from protocols.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def write(path: Path, doc: dict, mode: int) -> Path:
    path.write_text(yaml.safe_dump(doc))
    path.chmod(mode)
    return path


def secret(path: Path, mode: int, value: str = "s3cret-value") -> Path:
    path.write_text(value + "\n")
    path.chmod(mode)
    return path


def gateway_doc(tmp_path: Path, **sections: dict) -> dict:
    return {
        "gateway": {"id": "gw-sec", "state_dir": str(tmp_path / "state")},
        "buses": [],
        **sections,
    }


def problems(load, path: Path) -> list[str]:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError) as info:
        load(path, environ={})
    return info.value.problems


@pytest.mark.parametrize(
    "section", [{"mqtt": {"password": "inline-pw"}}, {"commands": {"key": "inline-key"}}]
)
def test_gateway_config_with_an_inline_secret_must_not_be_world_readable(
    tmp_path: Path, section: dict
) -> None:
    path = write(tmp_path / "gateway.yaml", gateway_doc(tmp_path, **section), 0o644)
    [problem] = problems(load_gateway, path)
    field = ".".join([*section, *next(iter(section.values()))])
    assert str(path) in problem and field in problem and "mode 0644" in problem
    assert f"chmod 600 {path}" in problem
    assert "inline-" not in problem  # the error never shows the secret
    path.chmod(0o600)
    assert load_gateway(path, environ={}).config.gateway.id == "gw-sec"
    path.chmod(0o640)  # group-readable is the administrator's choice (e.g. group gridedge)
    load_gateway(path, environ={})


@pytest.mark.parametrize("field", ["mqtt.password_file", "commands.key_file", "mqtt.tls.key_file"])
def test_gateway_secret_files_must_not_be_world_readable(tmp_path: Path, field: str) -> None:
    file = secret(tmp_path / "the.secret", 0o644)
    doc = gateway_doc(tmp_path)
    *parents, leaf = field.split(".")
    target = doc
    for part in parents:
        target = target.setdefault(part, {})
    target[leaf] = str(file)
    path = write(tmp_path / "gateway.yaml", doc, 0o644)  # no inline secret: may be world-readable
    [problem] = problems(load_gateway, path)
    assert field in problem and str(file) in problem and f"chmod 600 {file}" in problem
    file.chmod(0o600)
    load_gateway(path, environ={})
    file.unlink()
    [problem] = problems(load_gateway, path)
    assert f"{field}: cannot read {file}" in problem


def test_secret_from_the_environment_does_not_make_the_file_secret(tmp_path: Path) -> None:
    path = write(tmp_path / "gateway.yaml", gateway_doc(tmp_path), 0o644)
    plan = load_gateway(path, environ={"GRIDEDGE_MQTT__PASSWORD": "from-env", "GRIDEDGE_COMMANDS__KEY": "k"})
    assert plan.config.mqtt.secret() == "from-env"
    key_file = secret(tmp_path / "command.key", 0o644)
    assert problems(lambda p, environ: load_gateway(p, {"GRIDEDGE_COMMANDS__KEY_FILE": str(key_file)}), path)


@pytest.mark.parametrize(
    "section",
    [
        {"mqtt": {"password": "inline-pw"}},
        {"influx": {"password": "inline-pw"}},
        {"influx": {"token": "inline-t"}},
    ],
)
def test_ingest_config_with_an_inline_secret_must_not_be_world_readable(
    tmp_path: Path, section: dict
) -> None:
    path = write(tmp_path / "ingest.yaml", section, 0o604)
    [problem] = problems(load_ingest, path)
    assert str(path) in problem and "mode 0604" in problem and f"chmod 600 {path}" in problem
    path.chmod(0o600)
    load_ingest(path, environ={})


@pytest.mark.parametrize("field", ["mqtt.password_file", "influx.password_file", "influx.token_file"])
def test_ingest_secret_files_must_not_be_world_readable(tmp_path: Path, field: str) -> None:
    file = secret(tmp_path / "the.secret", 0o644, "from-the-file")
    section, leaf = field.split(".")
    path = write(tmp_path / "ingest.yaml", {section: {leaf: str(file)}}, 0o644)
    [problem] = problems(load_ingest, path)
    assert field in problem and f"chmod 600 {file}" in problem
    file.chmod(0o600)
    cfg = load_ingest(path, environ={})
    if field == "influx.password_file":
        assert cfg.influx.password == "from-the-file"
    elif field == "influx.token_file":
        assert cfg.influx.token == "from-the-file"
    else:
        assert cfg.mqtt.secret() == "from-the-file"


def test_autocontrol_key_file_is_checked_when_autocontrol_is_on(tmp_path: Path) -> None:
    (tmp_path / "state").mkdir()
    key = secret(tmp_path / "state" / "command.key", 0o644)
    alerts = {
        "state_path": "state/alerts.sqlite",
        "autocontrol": {"enabled": True, "key_file": "command.key"},
    }
    path = write(tmp_path / "ingest.yaml", {"alerts": alerts}, 0o644)
    [problem] = problems(load_ingest, path)
    assert "alerts.autocontrol.key_file" in problem and f"chmod 600 {key}" in problem
    key.chmod(0o600)
    load_ingest(path, environ={})


def test_the_examples_still_load_as_shipped(tmp_path: Path) -> None:
    for name in ("gateway.yaml", "ingest.yaml"):
        example = REPO / "examples" / name
        copy = tmp_path / name
        copy.write_text(example.read_text())
        copy.chmod(0o644)
    assert os.stat(tmp_path / "ingest.yaml").st_mode & 0o004
    load_ingest(tmp_path / "ingest.yaml", environ={})
    # the gateway example names ptys the simulator makes: only the secret check may not complain
    try:
        load_gateway(tmp_path / "gateway.yaml", environ={})
    except ConfigError as exc:
        assert not [p for p in exc.problems if "chmod" in p or "cannot read" in p], exc.problems
    # the demo's way: the command key in a 0600 file named by the environment
    key = secret(tmp_path / "command.key", 0o600)
    try:
        load_gateway(tmp_path / "gateway.yaml", environ={"GRIDEDGE_COMMANDS__KEY_FILE": str(key)})
    except ConfigError as exc:
        assert not [p for p in exc.problems if "chmod" in p or "cannot read" in p], exc.problems
