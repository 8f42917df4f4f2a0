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
import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Raspberry Pi OS Bookworm, 64-bit: glibc 2.36, so any manylinux wheel up to 2.36 runs there (pip
# expands manylinux_2_36 to every older manylinux tag)
PI_PLATFORM = "manylinux_2_36_aarch64"
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
    target = [] if platform == "native" else ["--platform", platform, "--python-version", PYTHON_VERSION]
    _pip(
        "download",
        "--only-binary",
        ":all:",
        *target,
        "--dest",
        str(wheels),
        str(gridedge),
    )


def _version(source: Path) -> str:
    text = (source / "protocols" / "version.py").read_text()
    match = re.search(r'^VERSION = "([^"]+)"', text, re.MULTILINE)
    if match is None:
        raise SystemExit(f"{source}/protocols/version.py: no VERSION")
    return match[1]


def _pip(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", *args, "--quiet"], check=True)


if __name__ == "__main__":
    sys.exit(main())
