"""The field install (issue 24 item 5): `make release`'s artifact for this machine (scripts/build_release.py
--platform native: the gridedge wheel and every runtime dependency's) unpacked and installed by its own
install.sh with every pip setting of this machine removed (no index, no find-links: only the artifact's
wheels), into folders of the test (PREFIX, ETC, STATE, SYSTEMD; NO_SYSTEMD=1: no systemctl here). Run
twice: the second run changes nothing. Needs root (it creates the gridedge user, as on a Pi)."""

from __future__ import annotations

import os
import pwd
import stat
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from protocols.version import VERSION

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


def _owner(path: Path) -> str:
    return pwd.getpwuid(path.lstat().st_uid).pw_name


@pytest.mark.timeout(300)
@pytest.mark.skipif(os.geteuid() != 0, reason="install.sh creates a system user: run as root")
def test_install_sh_installs_offline_from_the_release_artifact(tmp_path: Path) -> None:
    build = [sys.executable, str(ROOT / "scripts" / "build_release.py"), "--platform", "native"]
    out = subprocess.run(
        [*build, "--out", str(tmp_path / "dist")],
        capture_output=True,
        text=True,
        check=True,
    )
    artifact = Path(out.stdout.strip().splitlines()[-1])
    with tarfile.open(artifact) as tar:
        names = tar.getnames()
        tar.extractall(tmp_path / "unpacked", filter="data")
    top = f"gridedge-{VERSION}"
    parts = ("install.sh", "gridedge-gateway.service", "gateway.example.yaml")
    assert {f"{top}/{part}" for part in parts} <= set(names)
    wheels = {Path(n).name.split("-")[0].lower() for n in names if n.endswith(".whl")}
    assert {"gridedge", "cryptography", "pydantic", "pydantic_core", "msgspec", "paho_mqtt"} <= wheels

    dirs = {name: tmp_path / name for name in ("opt", "etc", "state", "systemd", "bin")}
    dirs["systemd"].mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env.update(
        PIP_CONFIG_FILE=os.devnull,  # this machine's index and find-links are not there on a Pi
        PREFIX=str(dirs["opt"]),
        ETC=str(dirs["etc"]),
        STATE=str(dirs["state"]),
        SYSTEMD=str(dirs["systemd"]),
        BIN=str(dirs["bin"]),
        PYTHON=sys._base_executable,
        NO_SYSTEMD="1",
    )
    install = [str(tmp_path / "unpacked" / top / "install.sh")]
    first = subprocess.run(install, env=env, capture_output=True, text=True, check=False)
    assert first.returncode == 0, first.stderr + first.stdout

    current = dirs["opt"] / "current"
    assert current.is_symlink() and current.resolve() == (dirs["opt"] / "releases" / VERSION).resolve()
    gridedge = dirs["bin"] / "gridedge"  # on PATH for commissioning, through current
    assert gridedge.resolve() == (current / "venv" / "bin" / "gridedge").resolve()
    version = subprocess.run([str(gridedge), "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.strip() == f"gridedge {VERSION}"
    imports = "import cryptography, pydantic, msgspec, paho.mqtt, gateway.app; print(gateway.app.__file__)"
    where = subprocess.run(  # from tmp_path: `python -c` puts the working folder first on sys.path
        [str(current / "venv" / "bin" / "python"), "-c", imports],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )
    assert where.stdout.startswith(str(dirs["opt"])), "the release's own copy runs, not the source tree"
    for name, mode in (("opt", 0o755), ("etc", 0o750), ("state", 0o750)):
        assert _owner(dirs[name]) == "gridedge", name
        assert stat.S_IMODE(dirs[name].stat().st_mode) == mode, name
    assert _owner(current) == "gridedge" and _owner(dirs["opt"] / "releases" / VERSION / "venv") == "gridedge"
    unit = (dirs["systemd"] / "gridedge-gateway.service").read_text()
    assert "ExecStart=/opt/gridedge/current/venv/bin/gridedge" in unit and "User=gridedge" in unit

    python = current / "venv" / "bin" / "python"
    before = python.lstat().st_mtime_ns
    again = subprocess.run(install, env=env, capture_output=True, text=True, check=False)
    assert again.returncode == 0, again.stderr
    assert "already installed" in again.stdout
    assert python.lstat().st_mtime_ns == before, "the second run re-installed nothing"
    assert current.resolve() == (dirs["opt"] / "releases" / VERSION).resolve()
