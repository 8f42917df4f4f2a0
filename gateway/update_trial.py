"""A new release's trial: run it, switch `current` only once it is healthy, else keep the old one.

Layer: gateway composition (processes, file descriptors, the spool). Runs in the *old* release's
process, once its run stopped (ports closed, spool closed), so the judge is code that was running and
verified before the update: a new release that exits at start, hangs or never polls cannot judge
itself. The old process starts `releases/<new>/venv/bin/gridedge <same argv>` with a pipe in
$GRIDEDGE_TRIAL_FD; the new gateway writes `{"healthy": true}` there once connected to the broker
with a poll answered on every bus (gateway.trial.confirm, shared with remote configuration), or why
not at `update.trial_s` (`report_health`). Healthy: `current` -> the new release (`previous` -> the
old one). The child is stopped either way (SIGTERM: it drains and closes its ports), the command's
final result is written to the spool, and the old process execs: the new release's gateway when
healthy, else itself again as it was started (`current` never moved). The PID stays, so systemd's
unit sees no stop and the supervisor above `serve` (gateway.remote_config) needs no part in it; the
next gateway publishes the result from the spool.

Must not: move `current` before the health report; leave the child running.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from protocols import messages as m
from protocols import topics
from protocols.version import VERSION

from .commands import GATEWAY_DEV
from .config import GatewayConfig
from .release import Layout
from .spool import Entry, Spool
from .trial import confirm
from .update import Candidate

if TYPE_CHECKING:
    from .app import Gateway

log = logging.getLogger("gateway.update")
audit = logging.getLogger("gateway.audit")

TRIAL_FD_ENV: Final = "GRIDEDGE_TRIAL_FD"
STARTUP_S: Final = 30.0  # the old release waits this long more than update.trial_s: imports, ports
STOP_S: Final = 30.0  # a stopping child drains its spool for up to 5 s; systemd's TimeoutStopSec is 30


@dataclass
class Verdict:
    healthy: bool
    reason: str
    seconds: float = 0.0


def trial(
    candidate: Candidate,
    layout: Layout,
    argv: Sequence[str],
    deadline_s: float,
    stopping: Callable[[], bool] = lambda: False,
) -> Verdict:
    """Run the candidate's gateway with `argv` (the old one's arguments) until it reports healthy, exits
    or `deadline_s` passes; on health, switch `current` to it. The child is stopped in every case."""
    exe = layout.gridedge(candidate.release)
    read_end, write_end = os.pipe()
    started = time.monotonic()
    env = {**os.environ, TRIAL_FD_ENV: str(write_end)}
    child = subprocess.Popen([str(exe), *argv], pass_fds=(write_end,), env=env)
    os.close(write_end)  # the child holds the only write end: EOF means it exited
    try:
        verdict = _watch(read_end, child, started + deadline_s, stopping)
        verdict.seconds = time.monotonic() - started
    finally:
        os.close(read_end)
        _stop(child)
    if verdict.healthy:
        layout.switch(candidate.release)
    # the failed candidate goes, and releases older than previous: current and previous stay
    for gone in layout.prune():
        log.info("update: removed release %s", gone.name)
    return verdict


def _watch(
    read_end: int, child: subprocess.Popen[bytes], deadline: float, stopping: Callable[[], bool]
) -> Verdict:
    buffer = b""
    while (left := deadline - time.monotonic()) > 0:
        if stopping():
            return Verdict(False, "the gateway was stopped during the trial")
        ready, _, _ = select.select([read_end], [], [], min(left, 0.5))
        if not ready:
            continue
        chunk = os.read(read_end, 4096)
        if not chunk:
            code = child.wait(STOP_S)
            return Verdict(False, f"the new release exited with {code} before it was healthy")
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            fact = json.loads(line)
            if fact.get("healthy"):
                return Verdict(True, "connected and polled every bus")
            return Verdict(False, f"its health check failed: {fact.get('reason', '')}")
    return Verdict(False, "no health report within the trial's deadline")


def _stop(child: subprocess.Popen[bytes]) -> None:
    if child.poll() is not None:
        return
    child.send_signal(signal.SIGTERM)
    try:
        child.wait(STOP_S)
    except subprocess.TimeoutExpired:
        log.warning("update trial: the new release did not stop within %.0f s: killed", STOP_S)
        child.kill()
        child.wait()


async def record(cfg: GatewayConfig, candidate: Candidate, verdict: Verdict) -> None:
    """The update command's final result, into the spool (published by whichever gateway runs next)."""
    status: m.CommandStatus = "done" if verdict.healthy else "failed"
    version = candidate.signed.version if verdict.healthy else VERSION
    reason = (
        f"{candidate.signed.version} healthy after {verdict.seconds:.1f} s: now running"
        if verdict.healthy
        else f"{candidate.signed.version} rolled back: {verdict.reason}; {VERSION} running again"
    )
    audit.warning("update %s: %s: %s", candidate.command_id, status, reason)
    state: dict[str, m.Scalar | None] = {"version": version, "previous": candidate.previous_version}
    ts = int(time.time() * 1000)
    gw, dev = candidate.gw, GATEWAY_DEV

    def build(seq: int) -> bytes:
        result = m.CommandResult(
            schema=m.SCHEMA_VERSION,
            gw=gw,
            dev=dev,
            seq=seq,
            ts=ts,
            id=candidate.command_id,
            status=status,
            reason=reason,
            answer={"candidate": candidate.signed.version, "trial_s": round(verdict.seconds, 1)},
            state=state,
        )
        return m.encode(result)

    spool = await Spool.open(cfg.spool.path, max_bytes=cfg.spool.max_bytes, fsync=cfg.spool.fsync)
    try:
        await spool.add([Entry(dev, "result", topics.cmd_result_topic(gw, dev), build)])
    finally:
        await spool.close()


# ---- in the new release: its health, reported to the old one ---------------------------------------


async def report_health(fd: int, gw: Gateway, deadline_s: float, since_ms: int) -> None:
    """Write `{"healthy": true}` once gateway.trial.confirm says connected with a poll answered on
    every bus, else `{"healthy": false, "reason": ...}` at the deadline."""
    with os.fdopen(fd, "wb", buffering=0) as out:
        reason = await confirm(gw, deadline_s, since_ms)
        fact = {"healthy": reason is None, "version": VERSION, "reason": reason or ""}
        try:
            out.write(json.dumps(fact).encode() + b"\n")
        except BrokenPipeError:  # the judge is gone (killed): it cannot switch to us; keep serving
            log.warning("update trial: the previous release is gone; not reporting health")


def trial_fd() -> int | None:
    """The pipe the old release gave this one, when it runs on trial."""
    value = os.environ.pop(TRIAL_FD_ENV, None)
    with contextlib.suppress(ValueError):
        return int(value) if value else None
    return None


async def handover(cfg: GatewayConfig, candidate: Candidate, stopping: Callable[[], bool]) -> None:
    """The trial of `candidate` (the old gateway stopped), its result into the spool, then exec: the
    new release when healthy, this one again otherwise (same PID either way: systemd sees no stop).
    Returns only when `stopping()` (a SIGTERM came during the trial)."""
    if stopping():  # a SIGTERM or a config change stopped the gateway while the release installed
        why = "the gateway was stopped or restarted before the trial: send the update again"
        await record(cfg, candidate, Verdict(False, why))
        return
    layout = Layout(cfg.update.root)
    argv = sys.argv[1:]
    deadline = cfg.update.trial_s + STARTUP_S
    verdict = await asyncio.to_thread(trial, candidate, layout, argv, deadline, stopping)
    await record(cfg, candidate, verdict)
    if stopping():
        return
    if verdict.healthy:
        _exec(str(layout.gridedge(layout.current)), argv)
    # the old release again, as it was started: sys.orig_argv is the interpreter's own argv
    _exec(sys.executable, sys.orig_argv[1:])


def _exec(exe: str, argv: Sequence[str]) -> None:
    log.warning("update: exec %s %s", exe, " ".join(argv))
    logging.shutdown()
    os.execv(exe, [exe, *argv])
