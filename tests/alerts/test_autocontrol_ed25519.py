"""Auto-control signs with an operator's Ed25519 key when configured (`private_key_file`), so gateways
that accept Ed25519 only (no HMAC secret on the box) take its trips and reconnections (issue 24 item 4)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.alerts.autocontrol import load_key
from ingest.alerts.config import AutoControlSection
from protocols.signing import Keyring, SignatureRefused, Signer, new_command


def _key_file(tmp_path: Path, signer: Signer, mode: int = 0o600) -> Path:
    path = tmp_path / "operator.pem"
    path.write_bytes(signer.pem())
    path.chmod(mode)
    return path


def test_commands_are_signed_with_the_ed25519_key(tmp_path: Path) -> None:
    signer = Signer.generate("autocontrol")
    cfg = AutoControlSection(enabled=True, private_key_file=_key_file(tmp_path, signer).name)
    key = load_key(cfg, tmp_path, environ={})  # relative: the state folder
    assert isinstance(key, Signer) and key.kid == signer.kid
    command = new_command("gw-1", "m1", "trip", {}, key=key, now_ms=1_800_000_000_000, ttl_ms=300_000)
    assert command["alg"] == "ed25519" and command["kid"] == signer.kid
    Keyring(public_keys=(signer.public,)).verify(command)  # an Ed25519-only gateway accepts it
    with pytest.raises(SignatureRefused):
        Keyring(hmac_keys=(b"k" * 32,)).verify(command)  # an HMAC-only gateway does not


def test_a_private_key_others_can_read_is_refused(tmp_path: Path) -> None:
    cfg = AutoControlSection(enabled=True, private_key_file=_key_file(tmp_path, Signer.generate(), 0o644))
    with pytest.raises(ValueError, match="readable by others: chmod 600"):
        load_key(cfg, tmp_path, environ={})


def test_without_it_the_hmac_key_is_used_as_before(tmp_path: Path) -> None:
    key = load_key(AutoControlSection(enabled=True), tmp_path, environ={"GRIDEDGE_COMMAND_KEY": "s3cret"})
    assert key == b"s3cret"
