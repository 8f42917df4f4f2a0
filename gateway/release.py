"""Release artifacts on a gateway: the detached signature, fetching and checking, the install layout.

Layer: gateway core (blocking I/O: callers run these in a thread). An artifact is a wheelhouse tarball
built by `make release` (`gridedge-<version>-<platform>.tar.gz`: `gridedge-<version>/wheels/*.whl`,
`install.sh`, the systemd unit) or a bare gridedge wheel. Its signature, `ARTIFACT.sig`, is a JSON
document naming the artifact, its version, size and SHA-256, signed by an operator's Ed25519 key
(protocols.signing: `alg`, `kid`, `sig` over every other field). Layout under `update.root`:

    releases/<version>/venv      one virtualenv per release, installed offline from its wheelhouse
    current -> releases/<v>      what systemd starts (deploy/gridedge-gateway.service)
    previous -> releases/<v>     the release `current` pointed to before the last switch

Must not: unpack, install or run anything before `check_signature` and the SHA-256 of the bytes on
disk agree; accept an HMAC signature for code (a gateway holds its HMAC secret, so it could sign its
own updates: only public keys, which sign nothing, verify code).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from protocols.signing import ED25519, Keyring, PublicKey, SignatureRefused, Signer

from .errors import GatewayError

SIG_SCHEMA: Final = 1
_NAME_RE: Final = re.compile(r"^gridedge-(?P<version>[0-9][0-9A-Za-z.+!]*)-[A-Za-z0-9_.+-]+\.(whl|tar\.gz)$")
_VERSION_RE: Final = re.compile(r"^[0-9][0-9A-Za-z.+!]{0,40}$")
_CHUNK: Final = 1 << 16


class UpdateError(GatewayError):
    """An update that cannot go ahead; `code` is the short reason in the command result."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason


@dataclass(frozen=True)
class Signed:
    """What a verified signature vouches for."""

    artifact: str
    version: str
    sha256: str
    size: int
    key: str  # the signing key's name, for the audit log


def version_of(artifact_name: str) -> str:
    """`gridedge-0.1.1-py3-none-any.whl` / `gridedge-0.1.1-linux_aarch64.tar.gz` -> `0.1.1`."""
    match = _NAME_RE.match(artifact_name)
    if match is None:
        raise UpdateError("malformed", f"{artifact_name!r} is not a gridedge release artifact name")
    return match["version"]


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def sign_artifact(path: Path, signer: Signer) -> dict[str, Any]:
    """The signature document of the artifact at `path` (what `gridedge release sign` writes)."""
    fields = {
        "schema": SIG_SCHEMA,
        "artifact": path.name,
        "version": version_of(path.name),
        "size": path.stat().st_size,
        "sha256": sha256_file(path),
    }
    return signer.signed(fields)


def check_signature(doc: Mapping[str, Any], public_keys: tuple[PublicKey, ...]) -> Signed:
    """The fields `doc` vouches for, once one of `public_keys` verified it; UpdateError otherwise."""
    if doc.get("alg") != ED25519:
        raise UpdateError(
            "alg_not_accepted",
            f"code must be signed with ed25519, not {str(doc.get('alg', 'hmac-sha256'))[:32]}: an HMAC "
            "secret is held by the gateways, so one of them could sign its own updates",
        )
    if not public_keys:
        raise UpdateError("no_key", "this gateway has no Ed25519 public key (commands.public_keys)")
    try:
        key = Keyring(public_keys=public_keys).verify(doc)
    except SignatureRefused as exc:
        raise UpdateError(exc.code, f"artifact signature: {exc.reason}") from None
    try:
        signed = Signed(
            str(doc["artifact"]), str(doc["version"]), str(doc["sha256"]).lower(), int(doc["size"]), key
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise UpdateError("malformed", f"signature document lacks a valid {exc}") from None
    if version_of(signed.artifact) != signed.version or not _VERSION_RE.match(signed.version):
        raise UpdateError("malformed", f"version {signed.version!r} does not match {signed.artifact!r}")
    return signed


def fetch(url: str, signed: Signed, into: Path, *, timeout_s: float = 60.0) -> Path:
    """Download `url` (http, https or file) to `into`/<artifact>, reading at most the signed size, and
    check its SHA-256 against the signed one; the file is removed when it does not match."""
    # here, not at start: with http.client and ssl they cost a gateway memory it needs once a release
    import urllib.parse
    import urllib.request

    scheme = urllib.parse.urlsplit(url).scheme
    if scheme not in ("http", "https", "file"):
        raise UpdateError("malformed", f"url scheme {scheme!r}: use http, https or file")
    into.mkdir(parents=True, exist_ok=True)
    final = into / signed.artifact
    part = final.with_name(final.name + ".part")
    digest = hashlib.sha256()
    size = 0
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response, part.open("wb") as out:
            while chunk := response.read(_CHUNK):
                size += len(chunk)
                if size > signed.size:
                    raise UpdateError("hash_mismatch", f"{url} is larger than the signed {signed.size} bytes")
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != signed.sha256:
            raise UpdateError(
                "hash_mismatch",
                f"{signed.artifact}: SHA-256 {digest.hexdigest()[:16]}... is not the signed "
                f"{signed.sha256[:16]}... (a tampered or wrong file): refused before unpacking",
            )
    except OSError as exc:
        part.unlink(missing_ok=True)
        raise UpdateError("fetch_failed", f"{url}: {exc}") from None
    except UpdateError:
        part.unlink(missing_ok=True)
        raise
    part.replace(final)
    return final


# ---- the install layout -------------------------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    root: Path

    @property
    def current(self) -> Path:
        return self.root / "current"

    @property
    def previous(self) -> Path:
        return self.root / "previous"

    def release(self, version: str) -> Path:
        return self.root / "releases" / version

    def gridedge(self, release: Path) -> Path:
        return release / "venv" / "bin" / "gridedge"

    def switch(self, release: Path) -> None:
        """Point `current` at `release` (atomically: a new link renamed over the old one) and
        `previous` at what `current` was."""
        old = self.current.resolve() if self.current.is_symlink() else None
        if old is not None and old != release.resolve():
            _link(self.previous, old)
        _link(self.current, release)

    def prune(self) -> list[Path]:
        """Remove every release but `current` and `previous` (a release venv is ~60 MB; a Pi's card
        is small); the folders removed."""
        keep = {link.resolve() for link in (self.current, self.previous) if link.is_symlink()}
        gone = [r for r in sorted((self.root / "releases").glob("*")) if r.resolve() not in keep]
        for release in gone:
            shutil.rmtree(release, ignore_errors=True)
        return gone


def _link(link: Path, target: Path) -> None:
    tmp = link.with_name(f".{link.name}.{os.getpid()}")
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(target)
    tmp.replace(link)


def install(artifact: Path, layout: Layout, version: str, *, share_site_packages: bool = False) -> Path:
    """Unpack a verified artifact and install it into `releases/<version>/venv` offline; the release
    folder. With `share_site_packages` (development and tests only) the new venv sees the running
    interpreter's packages and only the gridedge wheel is installed (--no-deps)."""
    release = layout.release(version)
    if release.exists():
        shutil.rmtree(release)  # a half-installed earlier attempt: never `current` (see Layout.switch)
    wheels = release / "wheelhouse"
    wheels.mkdir(parents=True)
    try:
        _unpack(artifact, wheels)
        venv = release / "venv"
        _run([sys.executable, "-m", "venv", str(venv)], "create the virtualenv")
        python = str(venv / "bin" / "python")
        pip = [python, "-m", "pip", "install", "--no-index", "--no-cache-dir", "--find-links", str(wheels)]
        if share_site_packages:
            _share_site_packages(venv)
            pip.append("--no-deps")
        _run([*pip, "--quiet", f"gridedge=={version}"], "install the wheelhouse offline")
    except BaseException:
        shutil.rmtree(release, ignore_errors=True)
        raise
    return release


def _unpack(artifact: Path, wheels: Path) -> None:
    import tarfile  # with its compression modules: loaded for an update only

    if artifact.name.endswith(".whl"):
        shutil.copy2(artifact, wheels / artifact.name)
        return
    try:
        with tarfile.open(artifact, "r:gz") as tar:
            members = [m for m in tar.getmembers() if m.isfile() and m.name.endswith(".whl")]
            if not members:
                raise UpdateError("malformed", f"{artifact.name} holds no wheel")
            for member in members:
                member.name = Path(member.name).name  # flat: the wheels only
                tar.extract(member, wheels, filter="data")
    except (tarfile.TarError, OSError) as exc:
        raise UpdateError("install_failed", f"{artifact.name}: cannot unpack: {exc}") from None


def _share_site_packages(venv: Path) -> None:
    # every site-packages folder this interpreter sees (its own, and those a shared earlier release
    # listed): a path in a .pth file is added to sys.path, but .pth files inside it are not read
    own = sysconfig.get_paths()["purelib"]
    paths = [own, *(p for p in sys.path if p.endswith("site-packages") and p != own)]
    target = next((venv / "lib").glob("python*/site-packages"))
    (target / "_gridedge_shared.pth").write_text("".join(f"{p}\n" for p in dict.fromkeys(paths)))


def _run(argv: list[str], what: str) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise UpdateError("install_failed", f"could not {what}: {' | '.join(tail)}")


def read_signature(text: str) -> dict[str, Any]:
    try:
        doc = json.loads(text)
    except ValueError:
        raise UpdateError("malformed", "the signature is not JSON") from None
    if not isinstance(doc, dict):
        raise UpdateError("malformed", "the signature is a JSON object")
    return doc
