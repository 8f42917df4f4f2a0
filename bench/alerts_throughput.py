"""Alert engine throughput: how many readings per second `gridedge ingest run --role alerts` evaluates.

    .venv/bin/python bench/alerts_throughput.py [--readings 40000] [--meters 200] [--accounts all|none]
                                                [--writer] [--repeat 3]

A private Mosquitto and influxd are started; the alert role runs in this process with every rule set and
its defaults (state in a temporary directory), and `--accounts all` gives every meter a prepaid account
in the cost-control ledger (so each reading is also charged, as on a cost-control utility's meters).
Readings are realistic (a register that rises with the power drawn, one reading per meter per minute, in
the recent past) so the rules run their normal path, not an alert storm; they are encoded before the
clock starts and written by `bench/mqtt_load.py`. Timed: from the first byte published to the last
reading evaluated and acknowledged by the role. Printed: readings/s and the engine's CPU time per
reading (process CPU over the run, which includes the MQTT client thread and the load generator).

`--writer`: in the same round, the writer (`ingest run --role writer`: decode, line protocol, InfluxDB
1.x, acknowledgement) stores the same messages as bench/ingest_throughput.py measures it (its own
broker, database and process, draining the messages published before it starts, timed to the InfluxQL
count that finds them all), so the two figures come from one box within a minute. The writer's method
flatters it: no load generator in its process, a backlog to drain instead of a live stream.
`--repeat N`: N rounds, medians printed, with the load average before and after (the box is shared).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import ingest_throughput  # noqa: E402
from bench.mqtt_load import Blaster, publish_packets  # noqa: E402
from bench.workdir import run_dir  # noqa: E402
from gridedge.services import InfluxDB, Mosquitto  # noqa: E402
from ingest.alerts.costcontrol.ledger import Account, Ledger  # noqa: E402
from ingest.alerts.role import AlertsRole  # noqa: E402
from ingest.config import IngestConfig  # noqa: E402
from ingest.subscriber import Subscriber  # noqa: E402
from protocols import topics  # noqa: E402

GW = "gw-bench"
PERIOD_S = 60


def payload(dev: str, k: int, ts_ms: int, seq: int) -> bytes:
    power = 0.8 + (k % 7) / 10
    values = {
        "voltage_a_v": round(220.0 + (k % 9) / 10, 1),
        "current_a_a": round(power / 0.22, 2),
        "power_active_kw": power,
        "energy_import_kwh": round(1000.0 + k * PERIOD_S / 3600 * 1.1, 3),
        "relay": "closed",
    }
    return json.dumps({"schema": 1, "gw": GW, "dev": dev, "seq": seq, "ts": ts_ms, "values": values}).encode()


def make_messages(args: argparse.Namespace, meters: list[str]) -> list[tuple[str, bytes]]:
    per_meter = args.readings // args.meters
    base = int(time.time() * 1000) - (per_meter + 1) * PERIOD_S * 1000
    return [
        (topics.reading_topic(GW, dev), payload(dev, k, base + k * PERIOD_S * 1000, k * args.meters + i + 1))
        for k in range(per_meter)
        for i, dev in enumerate(meters)
    ]


async def blast(
    port: int, client_id: str, packets: list[bytes], done: Callable[[], int]
) -> tuple[float, float]:
    """Publish every packet, wait until `done()` counts them all: (seconds, process CPU seconds)."""
    pub = Blaster(port, client_id)
    try:
        cpu0, t0 = time.process_time(), time.monotonic()
        await asyncio.to_thread(pub.send_all, packets)
        while done() < len(packets):
            await asyncio.sleep(0.01)
        return time.monotonic() - t0, time.process_time() - cpu0
    finally:
        pub.close()


async def wait_subscribed(subscriber: Subscriber) -> None:
    async with asyncio.timeout(20):
        while not subscriber.subscribed.is_set():
            await asyncio.sleep(0.02)


async def time_alerts(
    args: argparse.Namespace, tmp: Path, port: int, db: InfluxDB, packets: list[bytes]
) -> dict[str, float]:
    meters = [f"m{i:04d}" for i in range(args.meters)]
    doc = {
        "mqtt": {"host": "127.0.0.1", "port": port, "client_id": "bench-alerts", "max_unacked": 10000},
        "influx": {"url": db.url, "database": db.database},
        "alerts": {"state_path": str(tmp / "alerts.sqlite")},
    }
    if args.accounts == "all":
        with Ledger(tmp / "costcontrol-ledger.sqlite") as ledger:  # costcontrol's default ledger_path
            for i, dev in enumerate(meters):
                ledger.upsert_account(
                    Account(f"A-{i:04d}", GW, dev, tariff=0.56, opening=500.0, created_at=0.0)
                )
    role = AlertsRole(IngestConfig.model_validate(doc))
    stop = asyncio.Event()
    task = asyncio.create_task(role.run(stop), name="bench:alerts")
    try:
        await wait_subscribed(role.subscriber)
        seconds, cpu = await blast(port, "bench-alerts-load", packets, lambda: role.stats.acked)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
    return {"rate": len(packets) / seconds, "seconds": seconds, "cpu_us": cpu / len(packets) * 1e6,
            "firing": len(role.engine.alerts()), "signals": role.engine.stats.signals}  # fmt: skip


def one_round(args: argparse.Namespace, msgs: list[tuple[str, bytes]]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    with (
        run_dir("gridedge-alerts-bench-") as work,
        Mosquitto(work.path / "mosquitto") as broker,
        InfluxDB(work.path / "influxd", database="alerts") as db,
    ):
        packets = publish_packets(msgs)
        out["alerts"] = asyncio.run(time_alerts(args, work.path, broker.port, db, packets))
    a = out["alerts"]
    line = (
        f"  alerts {a['rate']:9,.0f} readings/s ({a['seconds']:.2f} s, {a['cpu_us']:.0f} us CPU per reading, "
        f"{a['firing']:.0f} firing, {a['signals']:.0f} signals applied)"
    )
    print(line, flush=True)
    if args.writer:  # its own broker, database and process, as bench/ingest_throughput.py runs it
        out["writer"] = ingest_throughput.run_one("gridedge", msgs, len(msgs))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--readings", type=int, default=40_000)
    p.add_argument("--meters", type=int, default=200)
    p.add_argument("--accounts", choices=("all", "none"), default="all")
    p.add_argument("--writer", action="store_true", help="also time the writer on the same messages")
    p.add_argument("--repeat", type=int, default=1, help="rounds; medians are printed")
    args = p.parse_args()
    meters = [f"m{i:04d}" for i in range(args.meters)]
    msgs = make_messages(args, meters)
    n = len(msgs)
    print(f"{n} readings from {args.meters} meters (accounts: {args.accounts}); load: {_load()}", flush=True)
    rounds = [one_round(args, msgs) for _ in range(args.repeat)]
    alerts = statistics.median(r["alerts"]["rate"] for r in rounds)
    cpu = statistics.median(r["alerts"]["cpu_us"] for r in rounds)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    summary = f"alerts {alerts:,.0f} readings/s, {cpu:.0f} us CPU per reading"
    if args.writer:
        writer = statistics.median(r["writer"]["rate"] for r in rounds)
        summary += f"; writer {writer:,.0f} readings/s; alerts/writer {alerts / writer:.2f}"
    print(f"median of {args.repeat}: {summary} (goal: alerts >= 20,000 and >= 0.5x the writer); "
          f"peak RSS {rss:.0f} MB; load: {_load()}")  # fmt: skip


def _load() -> str:
    return "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


if __name__ == "__main__":
    main()
