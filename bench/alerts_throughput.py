"""Alert engine throughput: how many readings per second `gridedge ingest run --role alerts` evaluates.

    .venv/bin/python bench/alerts_throughput.py [--readings 40000] [--meters 200] [--accounts all|none]

A private Mosquitto and influxd are started; the alert role runs in this process with every rule set and
its defaults (state in a temporary directory), and `--accounts all` gives every meter a prepaid account
in the cost-control ledger (so each reading is also charged, as on a cost-control utility's meters).
Readings are realistic (a register that rises with the power drawn, one reading per meter per minute, in
the recent past) so the rules run their normal path, not an alert storm; they are encoded before the
clock starts and written by `bench/mqtt_load.py`. Timed: from the first byte published to the last
reading evaluated and acknowledged by the role. Printed: readings/s and the engine's CPU time per
reading (process CPU over the run, which includes the MQTT client thread).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.mqtt_load import Blaster, publish_packet  # noqa: E402
from bench.workdir import run_dir  # noqa: E402
from gridedge.services import InfluxDB, Mosquitto  # noqa: E402
from ingest.alerts.costcontrol.ledger import Account, Ledger  # noqa: E402
from ingest.alerts.role import AlertsRole  # noqa: E402
from ingest.config import IngestConfig  # noqa: E402
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


async def run(args: argparse.Namespace, tmp: Path, broker: Mosquitto, db: InfluxDB) -> None:
    meters = [f"m{i:04d}" for i in range(args.meters)]
    per_meter = args.readings // args.meters
    total = per_meter * args.meters
    base = int(time.time() * 1000) - (per_meter + 1) * PERIOD_S * 1000
    packets = []
    for k in range(per_meter):
        for i, dev in enumerate(meters):
            seq = k * args.meters + i + 1
            topic = topics.reading_topic(GW, dev)
            packets.append(
                publish_packet(topic, payload(dev, k, base + k * PERIOD_S * 1000, seq), seq % 65535 + 1)
            )
    doc = {
        "mqtt": {"host": "127.0.0.1", "port": broker.port, "client_id": "bench-alerts", "max_unacked": 10000},
        "influx": {"url": db.url, "database": db.database},
        "alerts": {"state_path": str(tmp / "alerts.sqlite")},
    }
    if args.accounts == "all":
        with Ledger(
            tmp / "costcontrol-ledger.sqlite"
        ) as ledger:  # costcontrol's default ledger_path, next to the state
            for i, dev in enumerate(meters):
                ledger.upsert_account(
                    Account(f"A-{i:04d}", GW, dev, tariff=0.56, opening=500.0, created_at=0.0)
                )
    role = AlertsRole(IngestConfig.model_validate(doc))
    stop = asyncio.Event()
    task = asyncio.create_task(role.run(stop), name="bench:alerts")
    try:
        async with asyncio.timeout(20):
            while not role.subscriber.subscribed.is_set():
                await asyncio.sleep(0.05)
        pub = Blaster(broker.port, "bench-alerts-load")
        cpu0, t0 = time.process_time(), time.monotonic()
        await asyncio.to_thread(pub.send_all, packets)
        while role.stats.acked < total:
            await asyncio.sleep(0.05)
        seconds, cpu = time.monotonic() - t0, time.process_time() - cpu0
        pub.close()
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"{total} readings from {args.meters} meters (accounts: {args.accounts}): "
        f"{total / seconds:,.0f} readings/s ({seconds:.1f} s), {cpu / total * 1e6:.0f} us CPU per reading, "
        f"peak RSS {rss:.0f} MB, "
        f"{len(role.engine.alerts())} alert(s) firing at the end"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--readings", type=int, default=40_000)
    p.add_argument("--meters", type=int, default=200)
    p.add_argument("--accounts", choices=("all", "none"), default="all")
    args = p.parse_args()
    with (
        run_dir("gridedge-alerts-bench-") as work,
        Mosquitto(work.path / "mosquitto") as broker,
        InfluxDB(work.path / "influxd", database="alerts") as db,
    ):
        asyncio.run(run(args, work.path, broker, db))


if __name__ == "__main__":
    main()
