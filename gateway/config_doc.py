"""A gateway config as a document: its canonical hash and JSON merge patches (RFC 7386).

Layer: gateway core, pure apart from reading a file; shared by the gateway (remote configuration) and
the operator's `gridedge cmd --action config_apply --config-file FILE`, so both hash alike.

The config hash is the SHA-256 (hex) of the document's canonical JSON: the YAML parsed to JSON data
(mappings, lists, strings, numbers, booleans, null), encoded with keys sorted, no whitespace
(separators `,` and `:`), non-ASCII characters as they are, in UTF-8. So comments, key order, quoting
and indentation do not change it; a value does. It is the document as written in the file:
`GRIDEDGE_<SECTION>__<KEY>` environment overrides are not part of it (they belong to the box, not to
the config sent to it). YAML that is not JSON data (a date, a set, a non-string key) is refused.

Must not: validate the config (gateway.config.load_config does, exactly as `gateway check`).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import yaml


class DocumentError(ValueError):
    """The text is not a config document (not YAML, not a mapping, not JSON data)."""


def parse(text: str, where: str) -> dict[str, Any]:
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise DocumentError(f"{where}: not valid YAML: {exc}") from None
    if not isinstance(doc, dict):
        raise DocumentError(f"{where}: a gateway config is a mapping (gateway:, mqtt:, buses: ...)")
    canonical(doc, where)  # refuse what JSON cannot carry now, not when it is hashed
    return doc


def read(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise DocumentError(f"{path}: cannot read: {exc.strerror}") from None
    return parse(text, str(path))


def canonical(doc: Any, where: str = "config") -> bytes:
    try:
        text = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise DocumentError(f"{where}: not JSON data ({exc})") from None
    return text.encode()


def config_hash(doc: Any) -> str:
    return hashlib.sha256(canonical(doc)).hexdigest()


def dump(doc: dict[str, Any]) -> str:
    """YAML of the document (what the gateway writes as its config file); parses back to `doc`."""
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: a mapping patches a mapping key by key (null removes the key), anything else replaces
    the target. Lists are replaced whole (a bus's devices are sent complete). Inputs are not changed."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result
