"""`gridedge keys`: Ed25519 command keys for operators.

    gridedge keys generate --out ~/.config/gridedge/ops-alice.key --label ops-alice
    gridedge keys public ~/.config/gridedge/ops-alice.key

`generate` writes the private key (PEM, PKCS#8, mode 0600, never overwritten) and, next to it,
`<file>.pub` holding the public key line, and prints that line: `ed25519 <base64> <label>`. Paste it
into the gateways' `commands.public_keys` (or their `public_keys_file`); the private key stays with the
operator (`gridedge cmd --private-key FILE`). `public` prints the line again from a private key.

`load_signer` is how the operator's tools read a private key: refused when any other user may read it
(as OpenSSH does; a fleet's signing key is worth more than one gateway's password).

Composition root: an operator's tool, not a service. Must not: print or log a private key.
"""

from __future__ import annotations

import argparse
import getpass
import os
import socket
import stat
import sys
from pathlib import Path

from protocols.signing import KeyFormatError, Signer


class KeyFileError(Exception):
    """A private key file that cannot be used (the message names the file and the fix)."""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("keys", help="Ed25519 command keys: generate a key pair, show a public key")
    actions = p.add_subparsers(dest="keys_action", metavar="ACTION", required=True)
    gen = actions.add_parser("generate", help="write a private key (0600) and its public key line")
    gen.add_argument("--out", required=True, type=Path, help="the private key file (must not exist)")
    gen.add_argument("--label", default="", help="who holds the key, for gateway logs (default user@host)")
    gen.set_defaults(handler=run_generate)
    pub = actions.add_parser("public", help="print the public key line of a private key file")
    pub.add_argument("file", type=Path)
    pub.add_argument("--label", default="", help="label to put on the line")
    pub.set_defaults(handler=run_public)


def load_signer(path: Path, label: str = "") -> Signer:
    """The Ed25519 private key in `path` (PEM or raw 32 bytes); KeyFileError if it cannot be read, is
    not an Ed25519 key, or other users may read it."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
        data = path.read_bytes()
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot read the private key: {exc.strerror}") from None
    if mode & 0o077:
        raise KeyFileError(
            f"{path}: the private key is accessible to other users (mode {mode:04o}): run `chmod 600 {path}`"
        )
    try:
        return Signer.from_bytes(data, str(path), label)
    except KeyFormatError as exc:
        raise KeyFileError(str(exc)) from None


def generate(out: Path, label: str) -> Signer:
    """Write a new key pair: `out` (0600, created exclusively) and `out`.pub; return the signer."""
    signer = Signer.generate(label)
    pub = out.with_name(out.name + ".pub")
    for path in (out, pub):
        if path.exists():
            raise KeyFileError(f"{path}: exists: refusing to overwrite a key (move it away first)")
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        # O_EXCL and the mode at creation: the private key is never readable by others, not even briefly
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise KeyFileError(f"{out}: cannot create: {exc.strerror}") from None
    with os.fdopen(fd, "wb") as file:
        file.write(signer.pem())
    pub.write_text(signer.public.line() + "\n")
    return signer


def run_generate(args: argparse.Namespace) -> int:
    label = args.label or f"{getpass.getuser()}@{socket.gethostname()}"
    try:
        signer = generate(args.out, label)
    except KeyFileError as exc:
        print(f"gridedge keys: {exc}", file=sys.stderr)
        return 1
    print(
        f"private key: {args.out} (mode 0600: keep it with the operator, never on a gateway)\n"
        f"key id: {signer.kid}\n"
        f"public key line ({args.out}.pub), for the gateways' commands.public_keys:",
        file=sys.stderr,
    )
    print(signer.public.line())
    return 0


def run_public(args: argparse.Namespace) -> int:
    try:
        signer = load_signer(args.file, args.label)
    except KeyFileError as exc:
        print(f"gridedge keys: {exc}", file=sys.stderr)
        return 1
    print(signer.public.line())
    return 0
