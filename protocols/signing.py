"""Command signatures, two algorithms, named in the command so a verifier never has to guess:

- `hmac-sha256` (a command without `alg` is this one, as before): hex HMAC-SHA256 keyed by a shared
  secret. Whoever verifies can also sign, so a gateway holding the key can sign for every gateway
  sharing it.
- `ed25519` (`alg: "ed25519"`, `kid`: the key id of the signer's public key): hex Ed25519 signature by
  an operator's private key; a gateway holds only public keys, which sign nothing.

Both sign the same bytes: the UTF-8 JSON of every field but `sig`, keys sorted, separators (",", ":")
(so `alg` and `kid` are signed too: they cannot be swapped without breaking the signature). A
`Keyring` keeps the keys of each algorithm apart: an HMAC key is never tried on an Ed25519 command nor
a public key on an HMAC one, and a command naming an algorithm the keyring has no key for is refused
with that reason (`SignatureRefused.code`), as is an unknown key id, an unsigned or a bad signature.
Several keys of one algorithm may be valid at once (rotation).

Layer: pure (protocols): no I/O; callers read key files and pass their bytes. Shared by the gateway
(verifies), the ingest's cost-control policy and `gridedge cmd` (sign). Must not: put a private key or
an HMAC key in an error message or a repr.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Literal, TypeAlias

from .errors import ProtocolError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

# `cryptography` (OpenSSL's bindings, ~8 MB resident) is imported where an Ed25519 key is used, not at
# module level: a gateway that accepts HMAC only never loads it (its RSS budget: bench/gateway_footprint)

HMAC_SHA256: Final = "hmac-sha256"
ED25519: Final = "ed25519"
Algorithm: TypeAlias = Literal["hmac-sha256", "ed25519"]
ALGORITHMS: Final[tuple[str, ...]] = (HMAC_SHA256, ED25519)

_ED25519_SIG_HEX: Final = 128  # 64 bytes
_KID_HEX: Final = 16


class SignatureRefused(ProtocolError):
    """A command whose signature does not verify. `code` is the refusal's short name in a command
    result (`bad_signature`, `unknown_key`, `alg_not_accepted`, `malformed`, `no_key`); `reason` says
    why, naming the algorithm or the key id, never a key."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason


class KeyFormatError(ProtocolError, ValueError):
    """A public or private key that cannot be read (the message names where it came from)."""


# ---- the signed bytes -----------------------------------------------------------------------------


def signing_bytes(fields: Mapping[str, Any]) -> bytes:
    body = {k: v for k, v in fields.items() if k != "sig"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


# ---- HMAC-SHA256 (shared secret) ------------------------------------------------------------------


def sign(fields: Mapping[str, Any], key: bytes) -> str:
    return hmac.new(key, signing_bytes(fields), hashlib.sha256).hexdigest()


def signed(fields: Mapping[str, Any], key: bytes) -> dict[str, Any]:
    """Return a copy of `fields` with its HMAC `sig` (no `alg`: HMAC is the default)."""
    out = {k: v for k, v in fields.items() if k != "sig"}
    out["sig"] = sign(out, key)
    return out


def verify(fields: Mapping[str, Any], keys: Iterable[bytes]) -> bool:
    """True if `fields` is an HMAC-signed command and one of `keys` made its signature. A command
    naming another algorithm is never verified here, whatever its `sig`."""
    sig = fields.get("sig")
    if not isinstance(sig, str) or fields.get("alg", HMAC_SHA256) != HMAC_SHA256:
        return False
    body = signing_bytes(fields)
    return any(
        hmac.compare_digest(hmac.new(key, body, hashlib.sha256).hexdigest(), sig.lower()) for key in keys
    )


def hmac_key_id(key: bytes) -> str:
    """A short public fingerprint of an HMAC key for logs (8 hex digits of a SHA-256 of the
    domain-separated key): tells which key of a rotation signed a command without revealing it."""
    return hashlib.sha256(b"gridedge-command-key:" + key).hexdigest()[:8]


# ---- Ed25519 (operators sign, gateways verify) ----------------------------------------------------


def ed25519_key_id(raw_public: bytes) -> str:
    """The `kid` of an Ed25519 public key: 16 hex digits of a SHA-256 of the domain-separated raw key.
    Derived, not chosen, so a signer and a gateway cannot disagree on which key a kid names."""
    return hashlib.sha256(b"gridedge-ed25519-key:" + raw_public).hexdigest()[:_KID_HEX]


@dataclass(frozen=True)
class PublicKey:
    """An Ed25519 public key a gateway accepts. `label`: a name for people (who holds it), in logs."""

    raw: bytes
    label: str = ""
    kid: str = field(init=False)

    def __post_init__(self) -> None:
        if len(self.raw) != 32:
            raise KeyFormatError(f"an Ed25519 public key is 32 bytes, not {len(self.raw)}")
        object.__setattr__(self, "kid", ed25519_key_id(self.raw))

    def line(self) -> str:
        """The form a gateway config lists: `ed25519 <base64 of the 32 bytes> [label]`."""
        text = f"{ED25519} {base64.b64encode(self.raw).decode()}"
        return f"{text} {self.label}" if self.label else text

    def verify(self, fields: Mapping[str, Any]) -> bool:
        sig = fields.get("sig")
        if not isinstance(sig, str) or len(sig) != _ED25519_SIG_HEX:
            return False
        try:
            from cryptography.exceptions import InvalidSignature
            from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

            Ed25519PublicKey.from_public_bytes(self.raw).verify(bytes.fromhex(sig), signing_bytes(fields))
        except (InvalidSignature, ValueError):
            return False
        return True


def parse_public_key(line: str, where: str) -> PublicKey:
    """`ed25519 <base64> [label]` -> PublicKey; KeyFormatError naming `where` otherwise."""
    parts = line.split(maxsplit=2)
    if len(parts) < 2 or parts[0] != ED25519:
        raise KeyFormatError(f"{where}: expected 'ed25519 <base64 public key> [label]', got {line[:60]!r}")
    try:
        raw = base64.b64decode(parts[1], validate=True)
    except binascii.Error:
        raise KeyFormatError(f"{where}: the public key is not base64") from None
    if len(raw) != 32:
        raise KeyFormatError(f"{where}: an Ed25519 public key is 32 bytes, this one is {len(raw)}")
    return PublicKey(raw, parts[2].strip() if len(parts) == 3 else "")


def parse_public_keys(text: str, where: str) -> list[PublicKey]:
    """One key per line; blank lines and `#` comments skipped. Errors name `where:line`."""
    keys = []
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip() and not line.lstrip().startswith("#"):
            keys.append(parse_public_key(line.strip(), f"{where}:{number}"))
    return keys


class Signer:
    """An operator's Ed25519 private key. Its repr names the key id only."""

    def __init__(self, private: Ed25519PrivateKey, label: str = "") -> None:
        from cryptography.hazmat.primitives import serialization

        self._private = private
        raw = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        self.public = PublicKey(raw, label)
        self.kid = self.public.kid

    def __repr__(self) -> str:
        return f"Signer(kid={self.kid!r})"

    @classmethod
    def generate(cls, label: str = "") -> Signer:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        return cls(Ed25519PrivateKey.generate(), label)

    @classmethod
    def from_bytes(cls, data: bytes, where: str, label: str = "") -> Signer:
        """A PEM (PKCS#8, unencrypted) private key, or its raw 32 bytes."""
        from cryptography.exceptions import UnsupportedAlgorithm
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        if len(data) == 32 and not data.startswith(b"-----BEGIN"):
            return cls(Ed25519PrivateKey.from_private_bytes(data), label)
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except TypeError:
            raise KeyFormatError(f"{where}: an encrypted private key: give an unencrypted one") from None
        except (ValueError, UnsupportedAlgorithm):
            raise KeyFormatError(
                f"{where}: not an Ed25519 private key (PEM 'BEGIN PRIVATE KEY' or raw 32 bytes)"
            ) from None
        if not isinstance(key, Ed25519PrivateKey):
            raise KeyFormatError(f"{where}: not an Ed25519 private key ({type(key).__name__})")
        return cls(key, label)

    def pem(self) -> bytes:
        from cryptography.hazmat.primitives import serialization

        return self._private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    def signed(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        """A copy of `fields` with `alg`, `kid` and the Ed25519 `sig` over all of them."""
        out = {k: v for k, v in fields.items() if k != "sig"}
        out.update(alg=ED25519, kid=self.kid)
        out["sig"] = self._private.sign(signing_bytes(out)).hex()
        return out


# ---- verification with both kinds of key ---------------------------------------------------------


@dataclass(frozen=True)
class Keyring:
    """The keys a gateway accepts commands from: HMAC keys (empty: HMAC refused) and Ed25519 public
    keys (empty: Ed25519 refused). Its repr shows only key ids."""

    hmac_keys: tuple[bytes, ...] = field(default=(), repr=False)
    public_keys: tuple[PublicKey, ...] = ()

    def __post_init__(self) -> None:
        kids = [k.kid for k in self.public_keys]
        if twice := sorted({kid for kid in kids if kids.count(kid) > 1}):
            raise KeyFormatError(f"Ed25519 public key {', '.join(twice)} is listed twice")

    def __bool__(self) -> bool:
        return bool(self.hmac_keys or self.public_keys)

    def algorithms(self) -> list[str]:
        return [alg for alg, keys in ((HMAC_SHA256, self.hmac_keys), (ED25519, self.public_keys)) if keys]

    def verify(self, fields: Mapping[str, Any]) -> str:
        """The name of the key that signed `fields` (`hmac 1a2b3c4d`, `ed25519 <kid> (label)`), or
        SignatureRefused saying why not."""
        alg = fields.get("alg", HMAC_SHA256)
        if alg not in ALGORITHMS:
            raise SignatureRefused("alg_not_accepted", f"unknown algorithm {str(alg)[:32]!r}")
        if not fields.get("sig"):
            raise SignatureRefused("bad_signature", "unsigned")
        if alg not in self.algorithms():
            accepted = " or ".join(self.algorithms())
            raise SignatureRefused(
                "alg_not_accepted", f"signed with {alg}, this gateway accepts only {accepted}"
            )
        if alg == HMAC_SHA256:
            return self._verify_hmac(fields)
        return self._verify_ed25519(fields)

    def _verify_hmac(self, fields: Mapping[str, Any]) -> str:
        if "kid" in fields:
            raise SignatureRefused("malformed", "kid names an Ed25519 key: an HMAC command has none")
        for key in self.hmac_keys:
            if verify(fields, [key]):
                return hmac_key_id(key)
        raise SignatureRefused("bad_signature", "bad signature")

    def _verify_ed25519(self, fields: Mapping[str, Any]) -> str:
        kid = fields.get("kid")
        if not isinstance(kid, str) or not kid:
            raise SignatureRefused("malformed", "an ed25519 command names its key id in kid")
        key = next((k for k in self.public_keys if k.kid == kid), None)
        if key is None:
            raise SignatureRefused(
                "unknown_key", f"key {kid[:32]!r} is not among this gateway's public keys (retired?)"
            )
        if not key.verify(fields):
            raise SignatureRefused("bad_signature", f"bad signature for ed25519 key {kid}")
        return f"{ED25519} {kid}" + (f" ({key.label})" if key.label else "")


# ---- a new command --------------------------------------------------------------------------------


def new_command(
    gw: str,
    dev: str,
    action: str,
    params: Mapping[str, Any],
    *,
    key: bytes | Signer,
    now_ms: int,
    ttl_ms: int,
) -> dict[str, Any]:
    """A signed command as the contract has it (protocols.messages.Command): a fresh id and nonce,
    valid from `now_ms` for `ttl_ms`, signed with HMAC (`key` bytes) or Ed25519 (a `Signer`). Publish
    it as it is: re-encoding would drop fields the signature covers."""
    fields = {
        "schema": 1,
        "id": uuid.uuid4().hex[:16],
        "gw": gw,
        "dev": dev,
        "action": action,
        "params": dict(params),
        "issued_at": now_ms,
        "expires_at": now_ms + ttl_ms,
        "nonce": uuid.uuid4().hex,
    }
    return key.signed(fields) if isinstance(key, Signer) else signed(fields, key)
