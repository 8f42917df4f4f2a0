"""Command signatures: hex HMAC-SHA256 over the UTF-8 JSON of every field but `sig`,
keys sorted, separators (",", ":").

Layer: pure (protocols). Shared by the gateway (verifies), the ingest's cost-control policy (signs) and
operators' scripts. Several keys may be valid at once (rotation): verification accepts any of them.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import Iterable, Mapping
from typing import Any


def signing_bytes(fields: Mapping[str, Any]) -> bytes:
    body = {k: v for k, v in fields.items() if k != "sig"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def sign(fields: Mapping[str, Any], key: bytes) -> str:
    return hmac.new(key, signing_bytes(fields), hashlib.sha256).hexdigest()


def signed(fields: Mapping[str, Any], key: bytes) -> dict[str, Any]:
    """Return a copy of `fields` with its `sig`."""
    out = {k: v for k, v in fields.items() if k != "sig"}
    out["sig"] = sign(out, key)
    return out


def verify(fields: Mapping[str, Any], keys: Iterable[bytes]) -> bool:
    sig = fields.get("sig")
    if not isinstance(sig, str):
        return False
    body = signing_bytes(fields)
    return any(
        hmac.compare_digest(hmac.new(key, body, hashlib.sha256).hexdigest(), sig.lower()) for key in keys
    )


def new_command(
    gw: str, dev: str, action: str, params: Mapping[str, Any], *, key: bytes, now_ms: int, ttl_ms: int
) -> dict[str, Any]:
    """A signed command as the contract has it (protocols.messages.Command): a fresh id and nonce,
    valid from `now_ms` for `ttl_ms`. Publish it as it is: re-encoding would drop fields the
    signature covers."""
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
    return signed(fields, key)
