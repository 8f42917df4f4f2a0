"""The gateway service: buses, drivers, one poll task per device, the spool and the publisher.

Layer: gateway composition. `run(plan)` is what `gridedge gateway run` calls: it installs SIGTERM /
SIGINT handlers and runs `serve(plan, stop)` until one arrives. Shutdown order: stop polling, drain
the spool to the broker for up to `drain_s`, publish the retained offline status, close the ports,
checkpoint the spool (what was not published stays there for the next start).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from protocols import messages as m
from protocols.version import VERSION

from .bus import Bus
from .clock import system_clock_synchronised
from .commands import CommandHandler, GatewayAction, NonceStore
from .config import GatewayConfig, Plan
from .drivers.base import Driver, DriverContext
from .drivers.registry import driver_class
from .pipeline import SpoolSink
from .publisher import Publisher, StatusSource
from .scheduler import DeviceRunner
from .spool import Spool
from .update import ACTION as UPDATE
from .update import Updater, settings_from
from .update_trial import handover, report_health, trial_fd

log = logging.getLogger("gateway")

DRAIN_S = 5.0


def _always() -> bool:
    return True


def gateway_version() -> str:
    return VERSION


def warn_if_root() -> None:
    """The gateway needs only its serial ports (group dialout) and its state folder: running it as root
    turns any bug in a parser of bytes from the field bus into a root compromise."""
    if os.geteuid() == 0:
        log.warning(
            "running as root: run the gateway as an unprivileged user in group dialout "
            "(deploy/gridedge-gateway.service: User=gridedge, SupplementaryGroups=dialout)"
        )


def run(plan: Plan) -> int:
    """Run until SIGTERM/SIGINT; 0 after a clean shutdown."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await serve(plan, stop)

    asyncio.run(main())
    return 0


class Gateway:
    """The running parts, exposed for the commissioning CLI, the command handler and tests."""

    def __init__(self, cfg: GatewayConfig, spool: Spool, *, config_hash: str = "") -> None:
        self.cfg = cfg
        self.spool = spool
        self.buses: dict[str, Bus] = {}
        self.drivers: dict[str, Driver] = {}
        self.runners: dict[str, DeviceRunner] = {}
        self.publisher = Publisher(
            cfg.gateway.id,
            cfg.mqtt,
            spool,
            StatusSource(gateway_version(), self.bus_status, config_hash=config_hash),
            status_interval_s=cfg.gateway.status_interval_s,
        )
        self.sink = SpoolSink(cfg.gateway.id, spool, self.publisher)
        self.commands: CommandHandler | None = None

    def bus_status(self) -> list[m.BusStatus]:
        out = []
        for bus_cfg in self.cfg.buses:
            bus = self.buses.get(bus_cfg.name)
            state = bus.state if bus is not None else "closed"
            out.append(
                m.BusStatus(
                    name=bus_cfg.name,
                    port=bus_cfg.port,
                    state=state if state in ("open", "reconnecting") else "closed",  # type: ignore[arg-type]
                    devices=len(bus_cfg.devices),
                )
            )
        return out

    def context(self) -> DriverContext:
        return DriverContext(
            gateway_id=self.cfg.gateway.id,
            clock_ms=lambda: int(time.time() * 1000),
            state_dir=self.cfg.gateway.state_dir,
            log=logging.getLogger("gateway.device"),
            clock_synchronised=system_clock_synchronised if self.cfg.gateway.require_ntp else _always,
        )


async def serve(
    plan: Plan,
    stop: asyncio.Event,
    *,
    on_ready: Callable[[Gateway], None] | None = None,
    drain_s: float = DRAIN_S,
    gateway_actions: Mapping[str, GatewayAction] | None = None,
    config_hash: str = "",
) -> None:
    """Run `plan` until `stop` is set. `gateway_actions`: commands to the gateway itself (device
    `gateway`, e.g. gateway.remote_config's config_apply); `config_hash`: reported in the status.
    An update installed by the `update` command (gateway.update) ends the run too; its trial
    (gateway.update_trial.handover) then replaces this process (exec) by the new release, or by
    this one again when the new one failed."""
    cfg = plan.config
    updater = Updater(settings_from(cfg), asyncio.Event()) if cfg.update.enabled else None
    if updater is not None:
        gateway_actions = {UPDATE: updater, **(gateway_actions or {})}
    warn_if_root()
    await asyncio.to_thread(Path(cfg.gateway.state_dir).mkdir, parents=True, exist_ok=True)
    spool = await Spool.open(cfg.spool.path, max_bytes=cfg.spool.max_bytes, fsync=cfg.spool.fsync)
    gw = Gateway(cfg, spool, config_hash=config_hash)
    log.info(
        "gateway %s: %d bus(es), %d device(s), spool %s holds %d record(s)",
        cfg.gateway.id,
        len(cfg.buses),
        sum(len(b.devices) for b in cfg.buses),
        cfg.spool.path,
        spool.stats.depth,
    )
    try:
        async with contextlib.AsyncExitStack() as stack:
            for bus_cfg in cfg.buses:
                gap_s = (bus_cfg.gap_ms or 0.0) / 1000
                bus = Bus(bus_cfg.name, bus_cfg.port, bus_cfg.line, echo=bus_cfg.echo, min_gap_s=gap_s)
                gw.buses[bus_cfg.name] = await stack.enter_async_context(bus)
                turn = asyncio.Lock()
                for dev in bus_cfg.devices:
                    if not dev.enabled:
                        continue
                    driver = driver_class(dev.kind)(dev, bus, gw.context())
                    gw.drivers[dev.id] = driver
                    gw.runners[dev.id] = DeviceRunner(driver, gw.sink, turn=turn)
            try:
                async with asyncio.TaskGroup() as tg:
                    commands = CommandHandler(
                        cfg.gateway.id,
                        cfg.commands.keys(),
                        gw.drivers,
                        stack.enter_context(
                            contextlib.closing(NonceStore(cfg.gateway.state_dir / "nonces.sqlite3"))
                        ),
                        gw.sink.command_result,
                        gateway_actions=gateway_actions,
                    )
                    gw.commands = commands

                    def on_command(topic: str, payload: bytes) -> None:
                        tg.create_task(
                            commands.handle(topic, payload), name=f"cmd:{topic.rsplit('/', 2)[-2]}"
                        )

                    gw.publisher.on_command = on_command
                    publisher = tg.create_task(gw.publisher.run(), name="mqtt:publisher")
                    polls = [
                        tg.create_task(runner.run(), name=f"poll:{dev}") for dev, runner in gw.runners.items()
                    ]
                    if (fd := trial_fd()) is not None:  # a new release on trial: tell the old one
                        report = report_health(fd, gw, cfg.update.trial_s, int(time.time() * 1000))
                        polls.append(tg.create_task(report, name="update:trial-report"))
                    log.info("gateway %s: polling %d device(s)", cfg.gateway.id, len(gw.runners))
                    if on_ready is not None:
                        on_ready(gw)
                    await _first(stop, updater.stop if updater is not None else stop)
                    log.info("gateway %s: stopping", cfg.gateway.id)
                    for task in polls:
                        task.cancel()
                    await gw.publisher.stop(drain_s)
                    await publisher
            finally:
                for driver in gw.drivers.values():
                    try:
                        await driver.aclose()
                    except Exception:
                        log.exception("%s: could not persist its state on shutdown", driver.id)
    finally:
        await spool.close()
        log.info("gateway %s: stopped; %d record(s) kept in the spool", cfg.gateway.id, spool.stats.depth)
    if updater is not None and updater.pending is not None:
        await handover(cfg, updater.pending, stop.is_set)  # execs; returns if stopped meanwhile


async def _first(*events: asyncio.Event) -> None:
    """Returns once any of `events` is set."""
    waits = [asyncio.create_task(event.wait(), name=f"gateway:wait:{i}") for i, event in enumerate(events)]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in waits:
            task.cancel()
