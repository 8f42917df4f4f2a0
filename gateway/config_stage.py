"""Staging a remote config: the files beside the config (FILE.previous, FILE.incoming, FILE.trial), a
requested config validated exactly as `gridedge gateway check` does plus the fleet's rules, and the
rollback of a change left on trial. The sequence and its reasons are in gateway.remote_config.

Layer: gateway core; blocking file I/O (the supervisor calls these in a thread).
Must not: start or stop the gateway, or publish anything.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from protocols.errors import ConfigError

from . import config_doc
from .commands import GATEWAY_DEV
from .config import Plan, load_config
from .trial import Trial, TrialMarker

log = logging.getLogger(__name__)

DEFAULT_DEADLINE_S: Final = 120.0
MIN_DEADLINE_S: Final = 5.0
MAX_DEADLINE_S: Final = 3600.0


@dataclass(frozen=True)
class Running:
    """A config the gateway runs (or is about to run): its file, plan, document and hash."""

    path: Path
    plan: Plan
    doc: dict[str, Any]
    hash: str


class Refused(Exception):
    def __init__(self, code: str, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason


def previous_path(path: Path) -> Path:
    return path.with_name(path.name + ".previous")


def marker_for(path: Path) -> TrialMarker:
    return TrialMarker(path.with_name(path.name + ".trial"))


def load_running(path: Path, plan: Plan | None = None, environ: Mapping[str, str] | None = None) -> Running:
    """The config at `path` (its plan: given, or loaded as `gateway check` does). ConfigError. A
    config the gateway runs but that is not JSON data (a YAML date) has no hash (""): it runs, and
    only a whole config can replace it."""
    plan = plan if plan is not None else load_config(path, environ)
    try:
        doc = config_doc.read(path)
    except config_doc.DocumentError as exc:
        log.warning("config %s has no config hash: %s", path, exc)
        return Running(path, plan, {}, "")
    return Running(path, plan, doc, config_doc.config_hash(doc))


# ---- files (blocking: run in a thread) ---------------------------------------------------------------


def write_private(path: Path, text: str) -> None:
    """Like statefile.write_atomically, but created 0600: a config may hold secrets inline."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _sync_dir(path.parent)


def _sync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def swap_in(path: Path, incoming: Path, trial: Trial) -> None:
    """The running file kept as FILE.previous, the trial marked, the validated file in place."""
    write_private(previous_path(path), path.read_text())
    marker_for(path).begin(trial)
    os.replace(incoming, path)
    _sync_dir(path.parent)


def restore(path: Path) -> bool:
    """FILE <- a copy of FILE.previous (kept, so a crash half-way repeats it); False if there is none."""
    previous = previous_path(path)
    try:
        text = previous.read_text()
    except FileNotFoundError:
        log.error("config %s: no %s to roll back to: keeping the file as it is", path, previous.name)
        return False
    write_private(path, text)
    return True


def recover(path: Path) -> Trial | None:
    """At start-up, before the config is loaded: a change found on trial is rolled back (the gateway
    died during its trial); returns that trial, or None. The marker stays until the supervisor has
    spooled the trial's result."""
    marker = marker_for(path)
    trial = marker.pending()
    if trial is None:
        return None
    log.error("config %s: a change was on trial when the gateway stopped: rolling it back", path)
    restore(path)
    return trial


# ---- staging a requested config (blocking: run in a thread) -----------------------------------------


def stage(
    running: Running, params: Mapping[str, Any], environ: Mapping[str, str] | None = None
) -> tuple[Running, float] | None:
    """The requested config validated as `FILE.incoming` and its trial deadline; None when it is the
    running config already. Refused otherwise."""
    doc, deadline_s = _requested(running, params)
    try:
        got = config_doc.config_hash(doc)
    except config_doc.DocumentError as exc:
        raise Refused("bad_params", str(exc)) from None
    if "hash" in params and got != params["hash"]:
        raise Refused("hash_mismatch", f"the config's hash is {got}, the command says {params['hash']}")
    if got == running.hash:
        return None
    incoming = running.path.with_name(running.path.name + ".incoming")
    write_private(incoming, config_doc.dump(doc))
    try:
        plan = load_config(incoming, environ)
        _fleet_rules(running.plan, plan)
    except ConfigError as exc:
        incoming.unlink(missing_ok=True)
        raise Refused("invalid_config", "; ".join(exc.problems)) from None
    except Refused:
        incoming.unlink(missing_ok=True)
        raise
    return Running(running.path, plan, doc, got), deadline_s


def _requested(running: Running, params: Mapping[str, Any]) -> tuple[dict[str, Any], float]:
    """The requested document: `config` with its `hash`, or the running one patched by `patch` with
    the result's `hash` or the running config's `base_hash` (the patch applies to that config only)."""
    unknown = set(params) - {"config", "patch", "hash", "base_hash", "deadline_s"}
    if unknown:
        raise Refused("bad_params", f"unknown param(s) {', '.join(sorted(unknown))}")
    if ("config" in params) == ("patch" in params):
        raise Refused("bad_params", "give exactly one of config (a whole document) or patch (RFC 7386)")
    hashes = ("hash",) if "config" in params else ("hash", "base_hash")
    given = [name for name in hashes if name in params]
    if len(given) != 1 or not _is_sha256(params[given[0]]):
        which = " or ".join(hashes)
        raise Refused("bad_params", f"{which}: one SHA-256 (64 hex digits) of a config document")
    if "patch" in params and not running.hash:
        raise Refused("bad_params", "the running config has no hash (not JSON data): send a whole config")
    if params.get("base_hash", running.hash) != running.hash:
        reason = f"the patch is for config {params['base_hash']}, this gateway runs {running.hash}"
        raise Refused("hash_mismatch", reason)
    deadline = params.get("deadline_s", DEFAULT_DEADLINE_S)
    if isinstance(deadline, bool) or not isinstance(deadline, int | float):
        raise Refused("bad_params", f"deadline_s: a number of seconds, got {deadline!r}")
    if not MIN_DEADLINE_S <= deadline <= MAX_DEADLINE_S:
        raise Refused("bad_params", f"deadline_s: {MIN_DEADLINE_S:g} to {MAX_DEADLINE_S:g} s, got {deadline}")
    if "config" in params:
        doc = params["config"]
    elif isinstance(params["patch"], dict):
        doc = config_doc.merge_patch(running.doc, params["patch"])
    else:
        raise Refused("bad_params", "patch: a JSON object (RFC 7386 merge patch)")
    if not isinstance(doc, dict):
        raise Refused("bad_params", "config: a JSON object (the config document)")
    return doc, float(deadline)


def _is_sha256(value: object) -> bool:
    return isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)


def _fleet_rules(running: Plan, new: Plan) -> None:
    old, cfg = running.config, new.config
    if cfg.gateway.id != old.gateway.id:
        reason = f"the config is for gateway {cfg.gateway.id!r}, this is {old.gateway.id!r}"
        raise Refused("wrong_gateway", reason)
    for name, was, now in (
        ("gateway.state_dir", old.gateway.state_dir, cfg.gateway.state_dir),
        ("spool.path", old.spool.path, cfg.spool.path),
    ):
        if Path(was).resolve() != Path(now).resolve():
            reason = f"{name} {now} is not {was}: spooled records and remembered nonces would be left behind"
            raise Refused("state_moved", reason)
    if any(dev.id == GATEWAY_DEV for bus in cfg.buses for dev in bus.devices):
        raise Refused("reserved_device", f"device id {GATEWAY_DEV!r} names the gateway's own commands")
    try:
        keys = cfg.commands.keys()
    except OSError as exc:
        raise Refused("locks_out", f"commands: cannot read a key file: {exc}") from None
    if not keys:
        raise Refused("locks_out", "the config has no command key: no later command could change it")
