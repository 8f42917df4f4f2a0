"""The fault-injection rig: the real binaries on loopback, fault actions, and the accounting check.

Layer: test harness (used by tests/faults/test_*.py and bench/soak.py). A `Rig` runs, in one temporary
directory: a Mosquitto and an influxd (gridedge.services), the simulators (`tests.faults.simrunner`,
the site runner plus line faults), an independent witness (below), the gateway (`gridedge gateway run`
under `tests.faults.clockshim`, so its wall clock can jump) and the ingest (`gridedge ingest run`),
each a subprocess started exactly as in the field. Must not: mock any part, or read a service's
internals (the accounting uses only MQTT and InfluxQL).

Accounting (`Rig.account()`), for the gateway `GW`:

* **witness**: an MQTT client (QoS 1, persistent session, clean_start=False) subscribed to
  `gridedge/v1/#` before the gateway first starts. It records every message's `seq`, and for each
  reading sample (the message's own and each of its `more`) the tuple (seq, dev, ts, source, has
  values). Redeliveries (at-least-once) are recognised by seq and counted, never double counted.
* **produced** = distinct reading seqs the witness saw whose sample carries values (a sample whose
  every value failed is published with `quality` only and, by the schema, stores no point).
  `produced_points` = their distinct (dev, ts).
* **stored** = distinct (dev, ts) of the points of measurement `meter` with tag gw = GW (InfluxQL).
* **lost** = produced (dev, ts) not stored. **duplicated** = stored (dev, ts) the witness never saw
  produced (a value re-published with a fresh timestamp, a replay with a rewritten ts), plus stored
  rows beyond one per (dev, ts) (one reading written to two series). **collided** = produced seqs
  beyond the first sharing one (dev, ts): two acquisitions InfluxDB cannot tell apart (one overwrote
  the other; reported, e.g. after a backwards clock step).
* **every drop counted**: `deadlettered` = reading points the ingest refused (witnessed on
  `gridedge/v1/deadletter`); `spool_dropped` = the gateway's own drop counter (its latest status).
  `unaccounted` = lost points that are not dead letters; it must be 0, and so must `spool_dropped`
  whenever the spool never filled (a dropped record never reaches the witness, so this counter is
  the only trace).
* **seq gaps**: seqs missing between 1 and the highest seen. The gateway draws health and status seqs
  from the same counter and may legitimately never publish one (a retained health value superseded
  while the broker was away, a status whose publish failed), so a gap is *explained* when it falls in
  a window the rig recorded for a broker outage or gateway kill; `unexplained_gaps` must be 0.

A check is taken at a **cut**: the witness's set at that moment is waited for in InfluxDB (readings
still in the gateway's spool are not in the set yet and are judged at a later cut), so a shared rig
keeps running between scenarios and the last cut (after a graceful gateway stop) covers everything.
"""

from __future__ import annotations

import contextlib
import os
import queue
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from gridedge.services import REPO_ROOT, InfluxDB, Mosquitto, stop_process

from .accounting import GW, Accounting, RigError, Witness, Witnessed, account, stored_points

__all__ = ["GW", "Accounting", "Rig", "RigError", "Witness", "Witnessed", "account", "stored_points"]

DLT_METERS = ("000000000001", "000000000002")
MODBUS_UNITS = (11, 12)
DLT_INTERVAL_S = 3.0
MODBUS_INTERVAL_S = 1.0
LINE_DEVICES: dict[str, tuple[str, ...]] = {"dlt": DLT_METERS, "mb": tuple(f"mb-{u}" for u in MODBUS_UNITS)}


# ---- the rig --------------------------------------------------------------------------------------


@dataclass
class Proc:
    name: str
    argv: list[str]
    log: Path
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                self.argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **self.env},
                cwd=REPO_ROOT,
                start_new_session=True,
            )

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> None:
        proc, self.proc = self.proc, None
        stop_process(proc, sig, timeout)


class Sim:
    """The simulator subprocess and its control channel (tests.faults.simrunner)."""

    def __init__(self, site: Path, log: Path) -> None:
        self.site, self.log = site, log
        self.proc: subprocess.Popen[bytes] | None = None
        self._answers: queue.Queue[str] = queue.Queue()

    def start(self) -> None:
        err = self.log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.faults.simrunner", str(self.site)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=err,
            cwd=REPO_ROOT,
            start_new_session=True,
        )
        err.close()
        threading.Thread(target=self._read, args=(self.proc,), name="sim-stdout", daemon=True).start()
        if self._answer(20) != "ready":
            raise RigError(f"the simulators did not start: see {self.log}")

    def _read(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            self._answers.put(raw.decode(errors="replace").strip())

    def _answer(self, timeout: float) -> str:
        try:
            return self._answers.get(timeout=timeout)
        except queue.Empty:
            raise RigError(f"the simulators did not answer: see {self.log}") from None

    def command(self, text: str) -> str:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(text.encode() + b"\n")
        self.proc.stdin.flush()
        answer = self._answer(10)
        if not answer.startswith("ok"):
            raise RigError(f"simulator: {text!r}: {answer}")
        return answer

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        with contextlib.suppress(OSError):
            assert proc.stdin is not None
            proc.stdin.close()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@dataclass
class FaultRecord:
    kind: str
    started: float
    recovered_s: float | None = None


class Rig:
    """Everything on loopback under `workdir`; `with Rig(path) as rig: ...` or start()/stop()."""

    def __init__(self, workdir: Path, *, seed: int = 0) -> None:
        self.workdir = workdir
        self.rng = random.Random(seed)
        workdir.mkdir(parents=True, exist_ok=True)
        # run as root, mosquitto drops to user `mosquitto` and cannot write its persistence file in
        # our (root-owned) directory: every restart would forget the sessions. `user` is ignored
        # when not started as root.
        self.broker = Mosquitto(workdir / "mosquitto")
        self.influx = InfluxDB(workdir / "influxdb", database="gridedge")
        self.witness: Witness | None = None
        self.sim = Sim(workdir / "sim.yaml", workdir / "sim.log")
        self.clock_file = workdir / "clock-offset"
        self.clock_offset_s = 0.0
        self.windows: list[tuple[float, float]] = []  # outages that may leave seq gaps
        self.faults: list[FaultRecord] = []
        self.recovery_timeout_s = 45.0  # a quarantined device comes back at its probe, <= 30 s later
        self.gateway: Proc | None = None
        self.ingest: Proc | None = None

    # ---- lifecycle -----------------------------------------------------------------------------

    def __enter__(self) -> Rig:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        try:
            self.broker.start()
            self.influx.start()
            self.witness = Witness(self.broker.port)
            self.witness.start()
            self._write_configs()
            self.sim.start()
            self.gateway, self.ingest = self._gateway_proc(), self._ingest_proc()
            self.ingest.start()
            # the ingest's session exists from its first SUBSCRIBE on: a reading published before it
            # would never reach the ingest (measured: lost when the gateway started faster)
            self.wait_for(
                lambda: "mqtt: subscribed to" in self.ingest.log.read_text(), 30, "the ingest's SUBACK"
            )
            self.gateway.start()
            self.delivering(timeout=30)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        for part in (self.gateway, self.ingest):
            if part is not None:
                part.stop()
        self.sim.stop()
        if self.witness is not None:
            self.witness.stop()
        self.influx.stop()
        self.broker.stop()

    def _write_configs(self) -> None:
        w = self.workdir
        self.clock_file.write_text("0\n")
        site = {
            "speed": 1.0,
            "lines": [
                {
                    "name": "dlt",
                    "port": "pty",
                    "link": str(w / "tty-dlt"),
                    "baud": 19200,
                    "parity": "E",
                    "devices": [{"kind": "dlt645", "options": {"meter": list(DLT_METERS), "seed": 1}}],
                },
                {
                    "name": "mb",
                    "port": "pty",
                    "link": str(w / "tty-mb"),
                    "baud": 19200,
                    "parity": "N",
                    "devices": [{"kind": "modbus", "options": {"unit": list(MODBUS_UNITS), "seed": 3}}],
                },
            ],
        }
        (w / "sim.yaml").write_text(yaml.safe_dump(site, sort_keys=False))
        (w / "gateway.yaml").write_text(yaml.safe_dump(self._gateway_config(), sort_keys=False))
        ingest = {
            "mqtt": {"host": "127.0.0.1", "port": self.broker.port, "client_id": "fault-ingest"},
            "influx": {"url": self.influx.url, "database": "gridedge", "flush_interval_s": 0.1},
            "metrics": {"interval_s": 2},
            "alerts": {"enabled": False, "state_path": str(w / "alerts.sqlite")},
        }
        (w / "ingest.yaml").write_text(yaml.safe_dump(ingest, sort_keys=False))

    def _gateway_config(self) -> dict[str, Any]:
        w = self.workdir
        dlt = [
            {"kind": "dlt645", "id": a, "address": a, "interval_s": DLT_INTERVAL_S, "area": "a1"}
            for a in DLT_METERS
        ]
        mb = [
            {
                "kind": "modbus",
                "id": f"mb-{u}",
                "unit": u,
                "map": "gridedge-prepaid",
                "interval_s": MODBUS_INTERVAL_S,
            }
            for u in MODBUS_UNITS
        ]
        return {
            "gateway": {
                "id": GW,
                "state_dir": str(w / "state"),
                "status_interval_s": 1,
                "require_ntp": False,
            },
            "mqtt": {
                "host": "127.0.0.1",
                "port": self.broker.port,
                "reconnect_min_s": 0.2,
                "reconnect_max_s": 1,
            },
            "commands": {"enabled": False},
            "spool": {"path": str(w / "state" / "spool.sqlite3"), "fsync": "normal"},
            "buses": [
                {"name": "dlt", "port": str(w / "tty-dlt"), "baud": 19200, "parity": "E", "devices": dlt},
                {"name": "mb", "port": str(w / "tty-mb"), "baud": 19200, "parity": "N", "devices": mb},
            ],
        }

    def _gateway_proc(self) -> Proc:
        argv = [sys.executable, "-m", "tests.faults.clockshim", str(self.clock_file)]
        argv += ["gateway", "run", "-c", str(self.workdir / "gateway.yaml")]
        return Proc("gateway", argv, self.workdir / "gateway.log", {})

    def _ingest_proc(self) -> Proc:
        argv = [
            sys.executable,
            "-m",
            "gridedge",
            "-v",
            "ingest",
            "run",
            "-c",
            str(self.workdir / "ingest.yaml"),
        ]
        return Proc("ingest", argv, self.workdir / "ingest.log", {})

    # ---- waiting -------------------------------------------------------------------------------

    def wait_for(self, cond: Callable[[], bool], timeout: float, what: str) -> float:
        """Poll `cond` (an external process's observable state) until true; return the seconds taken.
        A service that exited on its own fails the wait at once, with the end of its log."""
        start = time.monotonic()
        while not cond():
            for part in (self.gateway, self.ingest):
                if part is not None and part.proc is not None and part.proc.poll() is not None:
                    tail = part.log.read_text(errors="replace")[-1500:]
                    raise RigError(f"{part.name} exited with {part.proc.returncode}:\n{tail}")
            if time.monotonic() - start > timeout:
                raise RigError(f"timed out after {timeout:.0f} s waiting for {what}")
            time.sleep(0.1)
        return time.monotonic() - start

    def delivering(self, devices: tuple[str, ...] | None = None, timeout: float = 30.0) -> float:
        """Wait until every device (or those named) has a reading published after this call (a seq
        above every seq witnessed so far, whatever the gateway's clock says); seconds taken."""
        assert self.witness is not None
        witness = self.witness
        _, seqs, _, _ = witness.snapshot()
        after = max(seqs, default=0)
        wanted = set(devices) if devices else {*DLT_METERS, *(f"mb-{u}" for u in MODBUS_UNITS)}

        def fresh() -> bool:
            readings, *_ = witness.snapshot()
            return wanted <= {w.dev for w in readings if w.seq > after and w.stored}

        return self.wait_for(fresh, timeout, f"fresh readings of {sorted(wanted)}")

    def run_for(self, seconds: float) -> None:
        """Let the rig run (the pipeline is live: nothing to await but time itself)."""
        time.sleep(seconds)

    # ---- fault actions -------------------------------------------------------------------------

    @contextlib.contextmanager
    def fault(self, kind: str, *, gap_window: bool = False) -> Iterator[FaultRecord]:
        record = FaultRecord(kind, time.monotonic())
        wall = time.time() + self.clock_offset_s
        self.faults.append(record)
        yield record
        if gap_window:
            self.windows.append((wall, time.time() + self.clock_offset_s))

    def _recovered(self, record: FaultRecord, devices: tuple[str, ...] | None = None) -> None:
        self.delivering(devices, timeout=self.recovery_timeout_s)
        record.recovered_s = round(time.monotonic() - record.started, 1)

    def broker_outage(self, down_s: float) -> FaultRecord:
        with self.fault("broker stop/start", gap_window=True) as rec:
            self.broker.stop()
            time.sleep(down_s)
            self.broker.start()
            self._recovered(rec)
        return rec

    def influx_outage(self, down_s: float) -> FaultRecord:
        with self.fault("influxd stop/start") as rec:
            self.influx.stop()
            time.sleep(down_s)
            self.influx.start()
            self.wait_for(lambda: self._stored_fresh(rec.started), 60, "points stored after the outage")
            rec.recovered_s = round(time.monotonic() - rec.started, 1)
        return rec

    def _stored_fresh(self, since_monotonic: float) -> bool:
        since_ms = int((time.time() - (time.monotonic() - since_monotonic) + self.clock_offset_s) * 1000)
        try:
            rows = self.influx.query(f'SELECT count(*) FROM "meter" WHERE time >= {since_ms}ms', epoch="ms")
        except Exception:
            return False
        return bool(rows)

    def kill_gateway(self, restart_after_s: float = 0.0) -> FaultRecord:
        assert self.gateway is not None
        with self.fault("SIGKILL gateway", gap_window=True) as rec:
            self.gateway.stop(signal.SIGKILL)
            time.sleep(restart_after_s)
            self.gateway.start()
            self._recovered(rec)
        return rec

    def kill_ingest(self, restart_after_s: float = 0.0) -> FaultRecord:
        assert self.ingest is not None
        with self.fault("SIGKILL ingest") as rec:
            self.ingest.stop(signal.SIGKILL)
            time.sleep(restart_after_s)
            self.ingest.start()
            self.wait_for(
                lambda: self._stored_fresh(rec.started + restart_after_s), 60, "the ingest writing again"
            )
            rec.recovered_s = round(time.monotonic() - rec.started, 1)
        return rec

    def dead_meter(self, dev: str, dead_s: float, *, await_recovery: bool = True) -> FaultRecord:
        """A meter goes silent for `dead_s`; the others on its bus must keep delivering meanwhile. It
        is quarantined by then, so its recovery waits for the gateway's next probe (up to 30 s)."""
        others = tuple(d for d in DLT_METERS if d != dev)
        with self.fault("dead meter") as rec:
            self.sim.command(f"fault {dev} silent")
            deadline = time.monotonic() + dead_s
            while time.monotonic() < deadline:
                self.delivering(others, timeout=3 * DLT_INTERVAL_S + 2)
            self.sim.command(f"clear {dev}")
            if await_recovery:
                self._recovered(rec, (dev,))
        return rec

    def line_noise(self, line: str, seconds: float, p: float = 0.3) -> FaultRecord:
        """Corrupted, truncated and garbage-prefixed replies plus noise bursts on one line."""
        with self.fault("line noise/truncation") as rec:
            self.sim.command(f"line {line} corrupt={p} truncate={p} garbage={p}")
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                self.sim.command(f"noise {line} {self.rng.randrange(4, 64)}")
                time.sleep(self.rng.uniform(0.05, 0.3))
            self.sim.command(f"line {line} corrupt=0 truncate=0 garbage=0")
            self._recovered(rec, LINE_DEVICES[line])
        return rec

    def unplug(self, line: str, gone_s: float) -> FaultRecord:
        with self.fault("serial port vanished") as rec:
            self.sim.command(f"unplug {line}")
            time.sleep(gone_s)
            self.sim.command(f"plug {line}")
            self._recovered(rec, LINE_DEVICES[line])
        return rec

    def clock_jump(self, seconds: float, hold_s: float = 0.0) -> FaultRecord:
        """Step the gateway's wall clock by `seconds` (stays stepped; see `clock_reset`)."""
        assert self.gateway is not None and self.gateway.proc is not None
        with self.fault("gateway clock step") as rec:
            self.clock_offset_s += seconds
            self.clock_file.write_text(f"{self.clock_offset_s}\n")
            self.gateway.proc.send_signal(signal.SIGUSR1)
            time.sleep(hold_s)
            self._recovered(rec)
        return rec

    # ---- accounting ----------------------------------------------------------------------------

    def account(self, *, final: bool = False, timeout: float = 20.0) -> Accounting:
        """Cut: wait (up to `timeout`) until InfluxDB holds what the witness saw, then compare. `final`
        first stops the gateway gracefully (it drains its spool) so the cut covers everything."""
        assert self.witness is not None
        if final and self.gateway is not None:
            self.gateway.stop()
            time.sleep(0.5)  # the last PUBACKed messages in flight to the witness
        readings, _, dead, _ = self.witness.snapshot()
        wanted = {(w.dev, w.ts) for w in readings if w.stored} - dead
        with contextlib.suppress(RigError):
            self.wait_for(lambda: wanted <= set(stored_points(self.influx)), timeout, "the witnessed points")
        rows = stored_points(self.influx)
        time.sleep(0.3)  # a point stored just now is at the witness too: the broker sent both at once
        later, seqs, dead, status = self.witness.snapshot()
        seen_later = {(w.dev, w.ts) for w in later}
        return account(readings, seen_later, seqs, dead, status, rows, self.windows, self.witness.redelivered)

    def fault_table(self) -> str:
        kinds: dict[str, list[FaultRecord]] = {}
        for rec in self.faults:
            kinds.setdefault(rec.kind, []).append(rec)
        lines = [f"{'fault':<34} {'count':>5} {'recovery s (max)':>17} {'mean':>6}"]
        for kind, recs in sorted(kinds.items()):
            times = [r.recovered_s for r in recs if r.recovered_s is not None]
            worst = f"{max(times):.1f}" if times else "-"
            mean = f"{sum(times) / len(times):.1f}" if times else "-"
            lines.append(f"{kind:<34} {len(recs):>5} {worst:>17} {mean:>6}")
        return "\n".join(lines)
