"""Build a release artifact: a wheelhouse tarball a gateway installs from without internet.

    python scripts/build_release.py --out dist                       # for a Raspberry Pi (aarch64)
    python scripts/build_release.py --out dist --platform native     # for this machine
    python scripts/build_release.py --out dist --no-deps             # the gridedge wheel only (tests)

Writes `dist/gridedge-<version>-<platform>.tar.gz` holding `gridedge-<version>/`: `wheels/` (the gridedge
wheel and, unless --no-deps, a wheel of every runtime dependency for the target: `pip download
--only-binary :all: --platform ... --python-version 3.11`, so nothing is compiled on the Pi),
`install.sh` (scripts/install.sh: user, directories, venv, systemd unit, offline install),
`gridedge-gateway.service` and `gateway.example.yaml`. The same file is what `gridedge release sign`
signs and the gateway's `update` command installs (gateway.release). `make release` runs this.

Build tool, not a service: it may use the network (pip); the artifact it makes must not need it.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Raspberry Pi OS Bookworm, 64-bit: glibc 2.36, so any manylinux wheel up to 2.36 runs there. pip does
# not widen a --platform it is given (manylinux_2_36 alone found no cryptography, whose aarch64 wheel is
# manylinux_2_17): each older tag is passed too (`_platforms`)
PI_PLATFORM = "manylinux_2_36_aarch64"
_MANYLINUX = re.compile(r"^manylinux_2_(\d+)_(\w+)$")
PYTHON_VERSION = "3.11"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "dist")
    parser.add_argument("--source", type=Path, default=ROOT, help="the source tree (default: this one)")
    parser.add_argument(
        "--platform", default=PI_PLATFORM, help=f"a pip platform tag, or 'native' (default {PI_PLATFORM})"
    )
    parser.add_argument("--no-deps", action="store_true", help="only the gridedge wheel")
    args = parser.parse_args()
    path = build(args.source, args.out, args.platform, deps=not args.no_deps)
    print(path)
    return 0


def build(source: Path, out: Path, platform: str, *, deps: bool = True) -> Path:
    version = _version(source)
    tag = sysconfig.get_platform().replace("-", "_").replace(".", "_") if platform == "native" else platform
    with tempfile.TemporaryDirectory(prefix="gridedge-release-") as tmp:
        top = Path(tmp) / f"gridedge-{version}"
        wheels = top / "wheels"
        wheels.mkdir(parents=True)
        _pip("wheel", str(source), "--no-deps", "--wheel-dir", str(wheels))
        if deps:
            _dependencies(wheels, platform)
            _check_offline(wheels, platform, version)
        shutil.copy2(ROOT / "scripts" / "install.sh", top / "install.sh")
        shutil.copy2(ROOT / "deploy" / "gridedge-gateway.service", top / "gridedge-gateway.service")
        shutil.copy2(ROOT / "examples" / "gateway.yaml", top / "gateway.example.yaml")
        out.mkdir(parents=True, exist_ok=True)
        artifact = out / f"gridedge-{version}-{tag}.tar.gz"
        with tarfile.open(artifact, "w:gz") as tar:
            tar.add(top, arcname=top.name)
    return artifact


def _dependencies(wheels: Path, platform: str) -> None:
    """A wheel of every runtime dependency, resolved against the gridedge wheel's own metadata."""
    gridedge = next(wheels.glob("gridedge-*.whl"))
    target = [] if platform == "native" else [*_platforms(platform), "--python-version", PYTHON_VERSION]
    _pip(
        "download",
        "--only-binary",
        ":all:",
        *target,
        "--dest",
        str(wheels),
        str(gridedge),
    )


def _check_offline(wheels: Path, platform: str, version: str) -> None:
    """pip resolves gridedge and every dependency from `wheels` alone, for the target: what install.sh
    does on the Pi (a dry run: a wheel for another machine is resolved, not installed)."""
    target = [] if platform == "native" else [*_platforms(platform), "--python-version", PYTHON_VERSION]
    with tempfile.TemporaryDirectory(prefix="gridedge-check-") as into:
        _pip(
            "install",
            "--dry-run",
            "--ignore-installed",
            "--no-index",
            "--find-links",
            str(wheels),
            "--only-binary",
            ":all:",
            *target,
            "--target",
            into,
            f"gridedge=={version}",
        )


def _platforms(platform: str) -> list[str]:
    """`--platform` options for `platform` and every manylinux tag it runs (2_17, the oldest built
    for aarch64, up to it; manylinux2014 is 2_17's old name)."""
    match = _MANYLINUX.match(platform)
    if match is None:
        return ["--platform", platform]
    glibc, arch = int(match[1]), match[2]
    tags = [f"manylinux_2_{minor}_{arch}" for minor in range(glibc, 16, -1)] + [f"manylinux2014_{arch}"]
    return [option for tag in tags for option in ("--platform", tag)]


def _version(source: Path) -> str:
    text = (source / "protocols" / "version.py").read_text()
    match = re.search(r'^VERSION = "([^"]+)"', text, re.MULTILINE)
    if match is None:
        raise SystemExit(f"{source}/protocols/version.py: no VERSION")
    return match[1]


def _pip(*args: str) -> None:
    # this machine's pip settings (extra indexes, find-links) must not fill gaps in the wheelhouse
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    if args[0] == "install":
        env["PIP_CONFIG_FILE"] = os.devnull
    subprocess.run([sys.executable, "-m", "pip", *args, "--quiet"], check=True, env=env)


if __name__ == "__main__":
    sys.exit(main())
