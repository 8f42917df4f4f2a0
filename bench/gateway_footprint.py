"""Gateway footprint: 4 buses x 32 DL/T 645 meters at 1-minute intervals (paced simulators, real broker).

    .venv/bin/python bench/gateway_footprint.py [--buses 4] [--meters 32] [--seconds 180]

Starts a private Mosquitto, one simulator process per bus (2400 8E1 ptys), and `gridedge gateway run`
as its own process; measures the gateway's start-up time to its first published reading, its peak and
final RSS, and its CPU use (utime + stime from /proc) over the run. Goals: RSS <= 60 MB, CPU <= 5 % of
one core, start-up <= 2 s to first poll.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import yaml
from paho.mqtt.enums import CallbackAPIVersion

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.workdir import run_dir  # noqa: E402
from gridedge.services import Mosquitto  # noqa: E402

ITEMS = ["energy_import_kwh", "voltage_a_v", "status_word_3"]


def proc_stats(pid: int) -> tuple[float, float]:
    """(rss MB, cpu seconds)."""
    with open(f"/proc/{pid}/status") as f:
        rss = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return rss, (int(fields[11]) + int(fields[12])) / ticks


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--buses", type=int, default=4)
    p.add_argument("--meters", type=int, default=32)
    p.add_argument("--seconds", type=float, default=180)
    args = p.parse_args()
    with run_dir("gridedge-footprint-") as run:  # removed afterwards; its logs kept if the run failed
        if not measure(args, run.path):
            run.failed()


def measure(args: argparse.Namespace, tmp: Path) -> bool:
    """One run in `tmp`; False when the gateway published nothing."""
    broker = Mosquitto(tmp / "mosquitto")
    broker.start()
    sims: list[subprocess.Popen[str]] = []
    buses = []
    try:
        for b in range(args.buses):
            addresses = [f"{b + 1:02d}{m + 1:010d}" for m in range(args.meters)]
            argv = [sys.executable, "-m", "gridedge", "sim", "dlt645", "--port", "pty", "--baud", "2400"]
            for a in addresses:
                argv += ["--meter", a]
            sim = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, cwd=ROOT)
            sims.append(sim)
            assert sim.stdout is not None
            path = sim.stdout.readline().strip()
            devices = [
                {"kind": "dlt645", "id": a, "address": a, "interval_s": 60, "items": ITEMS, "preamble": 0}
                for a in addresses
            ]
            buses.append(
                {"name": f"bus-{b + 1}", "port": path, "baud": 2400, "parity": "E", "devices": devices}
            )
        config = {
            "gateway": {"id": "gw-bench", "state_dir": str(tmp / "state")},
            "mqtt": {"host": "127.0.0.1", "port": broker.port},
            "spool": {"path": str(tmp / "state" / "spool.sqlite3")},
            "buses": buses,
        }
        (tmp / "gateway.yaml").write_text(yaml.safe_dump(config))
        check = subprocess.run(
            [sys.executable, "-m", "gridedge", "gateway", "check", "-c", str(tmp / "gateway.yaml")],
            capture_output=True,
            text=True,
            cwd=ROOT,
            check=False,
        )
        print(check.stdout or check.stderr)
        first = threading.Event()
        readings = [0]

        def on_message(client, userdata, msg) -> None:  # type: ignore[no-untyped-def]
            readings[0] += 1
            first.set()

        sub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="footprint-watch")
        sub.on_message = on_message
        sub.on_connect = lambda c, *a: c.subscribe("gridedge/v1/gw-bench/+/reading", qos=1)
        sub.connect("127.0.0.1", broker.port)
        sub.loop_start()
        time.sleep(0.5)
        started = time.monotonic()
        log_path = tmp / "gateway.log"
        gw = subprocess.Popen(
            [sys.executable, "-m", "gridedge", "-v", "gateway", "run", "-c", str(tmp / "gateway.yaml")],
            cwd=ROOT,
            stderr=log_path.open("w"),
        )
        polling = None  # the goal's "first poll": the gateway logs when its pollers start
        deadline = time.monotonic() + 30
        while polling is None and time.monotonic() < deadline:
            if ": polling " in log_path.read_text(errors="replace"):
                polling = time.monotonic() - started
            else:
                time.sleep(0.01)
        first.wait(30)
        startup = time.monotonic() - started
        time.sleep(5)  # past the start-up burst
        rss0, cpu0 = proc_stats(gw.pid)
        t0 = time.monotonic()
        peak = rss0
        while time.monotonic() - t0 < args.seconds:
            time.sleep(1)
            peak = max(peak, proc_stats(gw.pid)[0])
        rss1, cpu1 = proc_stats(gw.pid)
        cpu = (cpu1 - cpu0) / (time.monotonic() - t0)
        gw.terminate()
        gw.wait(30)
        sub.loop_stop()
        n = args.buses * args.meters
        print(
            f"{args.buses} buses x {args.meters} meters = {n} meters, {len(ITEMS)} items each, 60 s interval"
        )
        print(f"start-up to first poll               {polling or float('nan'):6.2f} s   (goal <= 2 s)")
        print(f"start-up to first published reading  {startup:6.2f} s   (+ its first poll on the wire)")
        print(f"RSS steady / peak                    {rss1:6.1f} / {peak:.1f} MB   (goal <= 60 MB)")
        print(f"CPU over {args.seconds:.0f} s                      {cpu:6.1%} of one core   (goal <= 5 %)")
        print(f"readings published                   {readings[0]}")
        return readings[0] > 0
    finally:
        for sim in sims:
            sim.terminate()
            sim.wait(10)
        broker.stop()


if __name__ == "__main__":
    main()
