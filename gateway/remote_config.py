"""Remote configuration with automatic rollback: a signed `config_apply` command replaces the gateway's
config on trial, on the same spool, and the gateway goes back to the previous config by itself when
the new one does not prove itself within a deadline.

Layer: gateway composition, above gateway.app: `Supervisor` runs `app.serve` and runs it again with
another plan. `gridedge gateway run` runs the gateway through it.

The command goes to the gateway itself, `gridedge/v1/{gw}/gateway/cmd`, signed and checked like every
command (gateway.commands: signature, gateway id, expiry, nonce). Its params: `config` (the whole
document) with `hash` (its config hash, gateway.config_doc: SHA-256 of its canonical JSON, not of
YAML bytes), or `patch` (a JSON merge patch, RFC 7386, of the running document) with `hash` (of the
result) or `base_hash` (of the config it patches: refused if the gateway runs another); optional
`deadline_s` (5 to 3600 s, default 120). A whole config fits a command easily: measured, 16 buses of
32 DL/T 645 meters (512, entries as in examples/gateway.yaml) make a signed command of 77 kB, the
contract's limit is 256 kB. A patch changes one value without re-sending the rest (nor the secrets
written inline in the running file).

1. Refused (result `rejected`, reason `code: why`): a change already on trial (`busy`); params that are
   not one of `config` / `patch` plus `hash` (`bad_params`); a hash that is not the document's
   (`hash_mismatch`); a document that fails validation exactly as `gridedge gateway check` does it
   (`invalid_config`, every problem with its line and field: a serial port that does not exist is
   refused here); one for another gateway id (`wrong_gateway`); one that moves `state_dir` or the spool
   (`state_moved`: spooled records and remembered nonces would be left behind); one with a device
   named `gateway` (`reserved_device`); one that leaves no command key (`locks_out`: no later command
   could repair it). The running config's hash again: `done`, nothing restarted.
2. Accepted: `FILE.previous` <- the running file, the trial marker `FILE.trial` (gateway.trial), then
   `FILE` <- the new document (validated as that very file, `FILE.incoming`, renamed over `FILE`; mode
   0600). Each step is an atomic, fsync'd replace, so a power cut leaves one config or the other.
3. The gateway stops as on SIGTERM (polls stop, the spool drains to the broker for up to `drain_s`, the
   ports close, the spool closes: what was not published stays in its SQLite file) and runs again with
   the new plan on the same spool file. Nothing is lost.
4. Trial (gateway.trial.confirm), counted from the new config's start: connected to the broker and a
   poll answered on every bus within `deadline_s` -> the marker is removed, result `done` (answer
   `outcome: applied`). Otherwise, or if the gateway fails with it, `FILE` <- a copy of
   `FILE.previous`, the marker is removed, the gateway runs the previous plan again, and the result is
   `failed` (answer `outcome: rolled_back`, reason: why, naming the broker or the silent buses).
5. A gateway that starts and finds the marker died during the trial (crash, power cut, stop): `recover`
   rolls back before the config is even loaded, and the result says so. A restart never confirms.

Results are spooled like every command result: a rollback's result, spooled while the broker was
unreachable, is published by the previous config once it reconnects. Every result's `state` carries
the running `config_hash` and `version`, as the retained status does.

Deployment: the config file's folder must be writable by the gateway's user (deploy/
gridedge-gateway.service: ReadWritePaths=/etc/gridedge).

Must not: write the config before it validated, keep a change nobody confirmed, or open the spool
other than through `serve`.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from protocols import messages as m
from protocols import topics
from protocols.version import VERSION

from .app import DRAIN_S, Gateway, serve
from .commands import Reply
from .config import Plan
from .config_stage import Refused, Running, load_running, marker_for, restore, stage, swap_in
from .trial import Trial, confirm

log = logging.getLogger(__name__)

CONFIG_APPLY: Final = "config_apply"


# ---- the supervisor ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Due:
    """A final result to spool (and so publish) once a gateway runs."""

    trial: Trial
    status: m.CommandStatus
    reason: str
    outcome: str
    ts: int = field(default_factory=lambda: int(time.time() * 1000))  # when the outcome was known


class Supervisor:
    """Runs the gateway with its config, and again with another one (a config on trial or a rollback)."""

    def __init__(
        self,
        running: Running,
        *,
        environ: Mapping[str, str] | None = None,
        drain_s: float = DRAIN_S,
        on_ready: Callable[[Gateway], None] | None = None,
        recovered: Trial | None = None,
    ) -> None:
        self.running = running
        self.gateway: Gateway | None = None
        self._environ = environ
        self._drain_s = drain_s
        self._on_ready = on_ready
        self._trial: tuple[Trial, Running] | None = None  # on trial, and the config to fall back to
        self._restart = asyncio.Event()
        self._due: list[_Due] = []
        if recovered is not None:
            why = "the gateway restarted during the trial (a crash, a power cut, a stop) before confirming it"
            self._due.append(_Due(recovered, "failed", f"rolled back: {why}", "rolled_back"))

    async def run(self, stop: asyncio.Event) -> None:
        """Until `stop` (serve() adds its own gateway-wide actions, gateway.update's, to config_apply)."""
        self._restart = asyncio.Event()  # bound to the loop that runs the supervisor
        while not stop.is_set():
            await self._run_once(stop)

    async def _run_once(self, stop: asyncio.Event) -> None:
        self._restart.clear()
        run_stop = asyncio.Event()
        ready: asyncio.Future[Gateway] = asyncio.get_running_loop().create_future()
        running = self.running
        log.info("gateway: running config %s (%s)", running.hash[:12], running.path)
        try:
            async with asyncio.TaskGroup() as tg:
                serving = tg.create_task(
                    serve(
                        running.plan,
                        run_stop,
                        on_ready=ready.set_result,
                        drain_s=self._drain_s,
                        gateway_actions={CONFIG_APPLY: self._apply},
                        config_hash=running.hash,
                    ),
                    name="gateway:serve",
                )
                attending = tg.create_task(self._attend(ready, run_stop, stop), name="gateway:attend")
                # serve may end by itself (a software update handing over): attending ends with it
                serving.add_done_callback(lambda _: attending.cancel())
        except* Exception as group:
            if self._trial is None:
                raise
            await self._roll_back(None, f"the gateway failed with it: {group.exceptions[0]!r}")

    async def _attend(
        self, ready: asyncio.Future[Gateway], run_stop: asyncio.Event, stop: asyncio.Event
    ) -> None:
        gw = self.gateway = await ready
        if self._on_ready is not None:
            self._on_ready(gw)
        due, self._due = self._due, []
        for result in due:
            await self._spool_result(gw, result)
        if self._trial is None:
            # a rolled back trial's marker goes only now, its result spooled: a crash before this
            # rolls back again (restoring FILE.previous twice is harmless) and the result is not lost
            await asyncio.to_thread(marker_for(self.running.path).end)
        else:
            # a stop during the trial leaves the marker: the next start rolls the change back
            await _unless(stop, self._judge(gw, self._trial[0]))
        await _first(stop, self._restart)
        run_stop.set()

    async def _judge(self, gw: Gateway, trial: Trial) -> None:
        reason = await confirm(gw, trial.deadline_s, since_ms=int(time.time() * 1000))
        if reason is None:
            await self._confirmed(gw, trial)
        else:
            await self._roll_back(gw, reason)

    async def _confirmed(self, gw: Gateway, trial: Trial) -> None:
        await asyncio.to_thread(marker_for(self.running.path).end)
        self._trial = None
        log.warning("config %s: confirmed (connected, every bus polled)", self.running.hash[:12])
        await self._spool_result(
            gw, _Due(trial, "done", f"applied config {self.running.hash[:12]}", "applied")
        )

    async def _roll_back(self, gw: Gateway | None, reason: str) -> None:
        assert self._trial is not None
        trial, fallback = self._trial
        log.error("config %s: rolling back to %s: %s", self.running.hash[:12], fallback.hash[:12], reason)
        await asyncio.to_thread(restore, self.running.path)
        self._trial, self.running = None, fallback
        # the result is spooled by the previous config's run, which then takes the next command
        self._due.append(_Due(trial, "failed", f"rolled back: {reason}", "rolled_back"))
        if gw is not None:
            self._restart.set()

    async def _apply(self, command: m.Command, reply: Reply) -> None:
        if self._trial is not None or self._restart.is_set():
            reason = "busy: a config change is on trial; send it again once its result is in"
            await reply("rejected", reason=reason, state=self._state())
            return
        try:
            staged = await asyncio.to_thread(stage, self.running, command.params, self._environ)
        except Refused as exc:
            await reply("rejected", reason=f"{exc.code}: {exc.reason}", state=self._state())
            return
        old = self.running
        if staged is None:
            answer = {"outcome": "unchanged", "config_hash": old.hash}
            await reply(
                "done",
                reason=f"config {old.hash[:12]} is running already",
                answer=answer,
                state=self._state(),
            )
            return
        new, deadline_s = staged
        detail = {"hash": new.hash, "previous_hash": old.hash}
        trial = Trial("config", command.id, command.dev, deadline_s, int(time.time() * 1000), detail)
        reason = f"config {new.hash[:12]} on trial for {deadline_s:g} s (previous {old.hash[:12]})"
        await reply("accepted", reason=reason, state=self._state())
        incoming = new.path.with_name(new.path.name + ".incoming")
        await asyncio.to_thread(swap_in, new.path, incoming, trial)
        self._trial, self.running = (trial, old), new
        self._restart.set()

    def _state(self) -> dict[str, m.Scalar | None]:
        return {"config_hash": self.running.hash, "version": VERSION}

    async def _spool_result(self, gw: Gateway, due: _Due) -> None:
        trial = due.trial
        if not trial.command_id:
            return  # an unreadable marker: no command to answer (the log says what happened)
        answer = {"outcome": due.outcome, **trial.detail}
        state = self._state()
        ts = due.ts

        def build(seq: int) -> m.CommandResult:
            return m.CommandResult(
                schema=m.SCHEMA_VERSION,
                gw=gw.cfg.gateway.id,
                dev=trial.dev,
                seq=seq,
                ts=ts,
                id=trial.command_id,
                status=due.status,
                reason=due.reason,
                answer=answer,
                state=state,
            )

        topic = topics.cmd_result_topic(gw.cfg.gateway.id, trial.dev)
        await gw.sink.command_result(topic, trial.dev, build)


async def _unless(stop: asyncio.Event, work: Coroutine[Any, Any, None]) -> None:
    """Runs `work` until it returns, or cancels it when `stop` is set first."""
    async with asyncio.TaskGroup() as tg:
        task = tg.create_task(work, name="supervisor:trial")
        waiter = tg.create_task(stop.wait(), name="supervisor:stop")
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        task.cancel()
        waiter.cancel()


async def _first(*events: asyncio.Event) -> None:
    """Returns once any of `events` is set."""
    async with asyncio.TaskGroup() as tg:
        waits = [tg.create_task(event.wait(), name=f"supervisor:wait:{i}") for i, event in enumerate(events)]
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for task in waits:
            task.cancel()


def run(path: Path, plan: Plan, recovered: Trial | None) -> int:
    """`gridedge gateway run`: the gateway under the supervisor until SIGTERM/SIGINT; 0 after a clean
    stop. (A software update, gateway.update, is one of serve()'s own gateway-wide actions.)"""
    supervisor = Supervisor(load_running(path, plan), recovered=recovered)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await supervisor.run(stop)

    asyncio.run(main())
    return 0
