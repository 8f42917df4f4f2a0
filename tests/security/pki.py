"""Test PKI and a locked-down broker: a CA and a server certificate for 127.0.0.1/localhost made with
the `openssl` binary (no Python crypto dependency), a Mosquitto password file made with Debian's
`mosquitto_passwd`, and a Mosquitto with a TLS listener beside its loopback one, anonymous access off
and, optionally, an ACL file."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from gridedge.services import Mosquitto, free_port

REPO = Path(__file__).resolve().parents[2]
ACL = REPO / "deploy" / "compose" / "mosquitto" / "acl"

_SERVER_EXT = """subjectAltName=DNS:localhost,IP:127.0.0.1
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
authorityKeyIdentifier=keyid
subjectKeyIdentifier=hash
"""


@dataclass(frozen=True)
class Pki:
    ca: Path  # the CA the clients trust
    server_cert: Path
    server_key: Path
    rogue_ca: Path  # a CA that did not sign the broker's certificate


def _openssl(*args: str) -> None:
    openssl = shutil.which("openssl")
    assert openssl, "the openssl binary is missing: apt-get install openssl"
    subprocess.run([openssl, *args], check=True, capture_output=True)


def _new_ca(directory: Path, name: str) -> tuple[Path, Path]:
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    _openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", f"/CN=gridedge test {name}",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    )  # fmt: skip
    return cert, key


def make_pki(directory: Path) -> Pki:
    directory.mkdir(parents=True, exist_ok=True)
    ca, ca_key = _new_ca(directory, "ca")
    rogue, _ = _new_ca(directory, "rogue-ca")
    key, csr, cert = directory / "server.key", directory / "server.csr", directory / "server.pem"
    ext = directory / "server.ext"
    ext.write_text(_SERVER_EXT)
    _openssl(
        "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", str(key), "-out", str(csr), "-subj", "/CN=localhost",
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial",
        "-out", str(cert), "-days", "2", "-extfile", str(ext),
    )  # fmt: skip
    key.chmod(0o600)
    return Pki(ca, cert, key, rogue)


def password_file(path: Path, users: dict[str, str]) -> Path:
    path.touch(mode=0o600)
    for user, password in users.items():
        subprocess.run(["mosquitto_passwd", "-b", str(path), user, password], check=True)
    return path


@dataclass
class SecureBroker:
    broker: Mosquitto
    tls_port: int
    ca: Path

    @property
    def port(self) -> int:
        """The plain loopback listener (same password file and ACL)."""
        return self.broker.port

    @property
    def log(self) -> Path:
        return self.broker.workdir / "mosquitto.log"

    def stop(self) -> None:
        self.broker.stop()


def start_secure_broker(
    workdir: Path, pki: Pki, users: dict[str, str], *, acl: Path | None = None
) -> SecureBroker:
    workdir.mkdir(parents=True, exist_ok=True)
    passwd = password_file(workdir / "passwd", users)
    tls_port = free_port()
    lines = [
        # as root, mosquitto drops to its own user, which cannot read pytest's private temporary directory
        "user root" if os.geteuid() == 0 else "",
        f"password_file {passwd}",
        f"acl_file {acl}" if acl is not None else "",
        f"listener {tls_port} 127.0.0.1",
        f"cafile {pki.ca}",
        f"certfile {pki.server_cert}",
        f"keyfile {pki.server_key}",
    ]
    broker = Mosquitto(workdir / "broker", extra_config="\n".join(lines) + "\n")
    broker.start()
    return SecureBroker(broker, tls_port, pki.ca)
