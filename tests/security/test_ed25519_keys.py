"""Ed25519 command keys without a broker: the signature, the keyring's refusals (no algorithm
confusion: an HMAC key never verifies an Ed25519 command, a public key never an HMAC one, not even
used as an HMAC secret), the contract, the gateway config's `commands` section, and
`gridedge keys` / `gridedge cmd --private-key` on key files."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
import yaml

from gateway.config import load_config
from gridedge.cli import main
from gridedge.keys import KeyFileError, generate, load_signer
from protocols import messages, topics
from protocols.errors import ConfigError, ContractError
from protocols.signing import (
    ED25519,
    KeyFormatError,
    Keyring,
    PublicKey,
    SignatureRefused,
    Signer,
    new_command,
    parse_public_key,
    signed,
    verify,
)

NOW = 1_750_000_000_000
HMAC_KEY = b"shared-hmac-key-7d0c2e"


def command(key: bytes | Signer, **over: object) -> dict:
    fields = new_command("gw-a", "000000000001", "trip", {}, key=key, now_ms=NOW, ttl_ms=60_000)
    return {**fields, **over}


def refusal(ring: Keyring, fields: dict) -> str:
    with pytest.raises(SignatureRefused) as info:
        ring.verify(fields)
    return f"{info.value.code}: {info.value.reason}"


def raw_private(signer: Signer) -> bytes:
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(signer.pem(), password=None)
    return key.private_bytes(  # type: ignore[union-attr]
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )


# ---- signatures and the keyring -------------------------------------------------------------------


def test_an_ed25519_command_names_its_algorithm_and_key_and_verifies_with_the_public_key_only() -> None:
    alice = Signer.generate("alice")
    cmd = command(alice)
    assert cmd["alg"] == ED25519 and cmd["kid"] == alice.kid and len(cmd["sig"]) == 128
    ring = Keyring(public_keys=(parse_public_key(alice.public.line(), "test"),))
    assert ring.verify(cmd) == f"ed25519 {alice.kid} (alice)"
    # the kid is derived from the key: a signer and a gateway cannot disagree on it
    assert Signer.from_bytes(alice.pem(), "pem").kid == alice.kid
    assert Signer.from_bytes(raw_private(alice), "raw").kid == alice.kid
    assert HMAC_KEY.decode() not in repr(Keyring(hmac_keys=(HMAC_KEY,)))
    assert "PRIVATE" not in repr(alice) and repr(alice) == f"Signer(kid={alice.kid!r})"


def test_refusals_name_why() -> None:
    alice, bob, carol = Signer.generate("alice"), Signer.generate("bob"), Signer.generate("carol")
    ring = Keyring(public_keys=(alice.public, bob.public))  # two keys: a rotation
    assert ring.verify(command(alice)).startswith("ed25519 " + alice.kid)
    assert ring.verify(command(bob)).startswith("ed25519 " + bob.kid)
    good = command(alice)
    assert refusal(ring, command(carol)).startswith(f"unknown_key: key {carol.kid!r} is not among")
    # carol's signature claiming alice's key id
    forged = carol.signed({k: v for k, v in good.items() if k not in ("alg", "kid")})
    assert (
        refusal(ring, {**forged, "kid": alice.kid})
        == f"bad_signature: bad signature for ed25519 key {alice.kid}"
    )
    for field, value in [
        ("action", "close"),
        ("dev", "000000000002"),
        ("gw", "gw-b"),
        ("nonce", "n"),
        ("expires_at", NOW + 86_400_000),
        ("params", {"x": 1}),
    ]:
        assert refusal(ring, {**good, field: value}).startswith("bad_signature"), field
    assert refusal(ring, {**good, "sig": ""}) == "bad_signature: unsigned"
    assert refusal(ring, {**good, "sig": "zz" * 64}).startswith("bad_signature")
    assert refusal(ring, {**good, "kid": ""}) == "malformed: an ed25519 command names its key id in kid"
    assert refusal(ring, {**good, "alg": "none"}) == "alg_not_accepted: unknown algorithm 'none'"
    hmac_cmd = command(HMAC_KEY)
    assert (
        refusal(ring, hmac_cmd)
        == "alg_not_accepted: signed with hmac-sha256, this gateway accepts only ed25519"
    )


def test_no_algorithm_confusion() -> None:
    alice = Signer.generate("alice")
    public_as_secret = [alice.public.raw, alice.public.line().encode(), base64.b64encode(alice.public.raw)]
    ed_only = Keyring(public_keys=(alice.public,))
    both = Keyring(hmac_keys=(HMAC_KEY,), public_keys=(alice.public,))
    hmac_only = Keyring(hmac_keys=(HMAC_KEY,))
    for secret in public_as_secret:  # the classic attack: the public key used as an HMAC secret
        assert refusal(ed_only, command(secret)).startswith("alg_not_accepted")
        assert refusal(both, command(secret)) == "bad_signature: bad signature"
        assert refusal(both, command(secret, alg="hmac-sha256")).startswith("bad_signature")
        forged = signed({**command(secret), "alg": ED25519, "kid": alice.kid}, secret)
        assert refusal(both, forged).startswith("bad_signature: bad signature for ed25519")
    ed_cmd = command(alice)
    assert (
        refusal(hmac_only, ed_cmd)
        == "alg_not_accepted: signed with ed25519, this gateway accepts only hmac-sha256"
    )
    # an Ed25519 command relabelled HMAC: the HMAC path never looks at Ed25519 keys
    assert refusal(both, {**ed_cmd, "alg": "hmac-sha256"}).startswith("malformed: kid")
    stripped = {k: v for k, v in ed_cmd.items() if k not in ("alg", "kid")}
    assert refusal(both, stripped) == "bad_signature: bad signature"
    assert not verify(ed_cmd, [HMAC_KEY, alice.public.raw])  # the HMAC helper refuses other algorithms
    # HMAC still works where configured, with or without Ed25519 keys beside it
    assert both.verify(command(HMAC_KEY)) == hmac_only.verify(command(HMAC_KEY))


def test_an_empty_keyring_and_bad_key_lines() -> None:
    assert not Keyring() and Keyring().algorithms() == []
    alice = Signer.generate()
    with pytest.raises(KeyFormatError, match="listed twice"):
        Keyring(public_keys=(alice.public, PublicKey(alice.public.raw, "again")))
    with pytest.raises(KeyFormatError, match=r"^here: expected 'ed25519 <base64"):
        parse_public_key("ssh-rsa AAAA", "here")
    with pytest.raises(KeyFormatError, match="not base64"):
        parse_public_key("ed25519 !!!", "here")
    with pytest.raises(KeyFormatError, match="32 bytes, this one is 3"):
        parse_public_key("ed25519 YWJj", "here")
    with pytest.raises(KeyFormatError, match="not an Ed25519 private key"):
        Signer.from_bytes(b"-----BEGIN PRIVATE KEY-----\nxx\n-----END PRIVATE KEY-----\n", "k.pem")


def test_the_contract_carries_alg_and_kid() -> None:
    alice = Signer.generate()
    cmd = command(alice)
    topic = topics.parse_topic(topics.cmd_topic("gw-a", "000000000001"))
    decoded = topics.decode_payload(topic, json.dumps(cmd).encode())
    assert isinstance(decoded, messages.Command)
    assert (decoded.alg, decoded.kid, decoded.sig) == ("ed25519", alice.kid, cmd["sig"])
    old = topics.decode_payload(topic, json.dumps(command(HMAC_KEY)).encode())
    assert isinstance(old, messages.Command) and old.alg == "hmac-sha256" and old.kid == ""
    with pytest.raises(ContractError, match=r"\$\.alg"):
        topics.decode_payload(topic, json.dumps({**cmd, "alg": "none"}).encode())


# ---- the gateway config ---------------------------------------------------------------------------


def gateway_yaml(tmp_path: Path, commands: dict) -> Path:
    doc = {"gateway": {"id": "gw-a", "state_dir": str(tmp_path / "state")}, "buses": [], "commands": commands}
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(doc))
    path.chmod(0o600)
    return path


def config_problems(path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    return "\n".join(info.value.problems)


def test_gateway_config_lists_public_keys(tmp_path: Path) -> None:
    alice, bob = Signer.generate("alice"), Signer.generate("bob")
    keys_file = tmp_path / "command-keys.pub"
    keys_file.write_text(f"# operators\n{bob.public.line()}\n\n")
    path = gateway_yaml(
        tmp_path, {"hmac": False, "public_keys": [alice.public.line()], "public_keys_file": str(keys_file)}
    )
    ring = load_config(path, environ={}).config.commands.keys()
    assert ring.algorithms() == ["ed25519"] and not ring.hmac_keys
    assert [k.kid for k in ring.public_keys] == [alice.kid, bob.kid]
    assert [k.label for k in ring.public_keys] == ["alice", "bob"]
    # an existing HMAC config is unchanged: HMAC only
    key_file = tmp_path / "command.key"
    key_file.write_text("k1\nk2\n")
    key_file.chmod(0o600)
    ring = load_config(gateway_yaml(tmp_path, {"key_file": str(key_file)}), environ={}).config.commands.keys()
    assert ring.algorithms() == ["hmac-sha256"] and ring.hmac_keys == (b"k1", b"k2")


def test_gateway_config_errors_name_the_field(tmp_path: Path) -> None:
    alice = Signer.generate()
    found = config_problems(gateway_yaml(tmp_path, {"public_keys": [alice.public.line(), "ed25519 abc"]}))
    assert "commands.public_keys" in found and "public_keys[1]: the public key is not base64" in found
    # Ed25519 only, yet an HMAC key on the gateway: it could sign, refused
    found = config_problems(gateway_yaml(tmp_path, {"hmac": False, "key": "x" * 20}))
    assert "commands" in found and "hmac is false: remove key / key_file" in found and "x" * 20 not in found
    keys_file = tmp_path / "keys.pub"
    keys_file.write_text(f"{alice.public.line()}\ned25519 not-a-key\n")
    found = config_problems(gateway_yaml(tmp_path, {"public_keys_file": str(keys_file)}))
    assert f"{keys_file}:2: " in found
    keys_file.write_text(f"{alice.public.line()}\n{alice.public.line()}\n")
    assert "listed twice" in config_problems(gateway_yaml(tmp_path, {"public_keys_file": str(keys_file)}))
    found = config_problems(gateway_yaml(tmp_path, {"public_keys_file": str(tmp_path / "missing.pub")}))
    assert "public_keys_file: cannot read" in found


# ---- key files and the operator's tools -----------------------------------------------------------


def test_keys_generate_writes_a_private_key_0600_and_prints_the_public_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "ops" / "alice.key"
    assert main(["keys", "generate", "--out", str(out), "--label", "alice"]) == 0
    printed = capsys.readouterr()
    line = printed.out.strip()
    assert (out.stat().st_mode & 0o777) == 0o600
    assert Path(f"{out}.pub").read_text().strip() == line
    public = parse_public_key(line, "stdout")
    signer = load_signer(out)
    assert public == PublicKey(signer.public.raw, "alice") and public.kid in printed.err
    assert "PRIVATE" not in printed.out + printed.err
    assert main(["keys", "generate", "--out", str(out)]) == 1  # never overwritten
    assert "exists: refusing to overwrite" in capsys.readouterr().err
    assert main(["keys", "public", str(out), "--label", "alice"]) == 0
    assert capsys.readouterr().out.strip() == line


def test_a_private_key_others_can_read_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key = tmp_path / "alice.key"
    generate(key, "alice")
    key.chmod(0o644)
    with pytest.raises(KeyFileError, match=r"mode 0644\): run `chmod 600 "):
        load_signer(key)
    code = main(
        ["cmd", "--gw", "gw-a", "--dev", "d1", "--action", "trip", "--private-key", str(key), "--port", "1"]
    )
    assert code == 2 and f"chmod 600 {key}" in capsys.readouterr().err
    raw = tmp_path / "raw.key"
    raw.write_bytes(raw_private(load_signer_unchecked(key)))
    raw.chmod(0o600)
    assert load_signer(raw).kid == load_signer_unchecked(key).kid


def load_signer_unchecked(path: Path) -> Signer:
    return Signer.from_bytes(path.read_bytes(), str(path))
