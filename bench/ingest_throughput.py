"""Ingest throughput: gridedge's writer vs a naive loop, on the same broker and influxd, side by side.

    .venv/bin/python bench/ingest_throughput.py [--readings 100000] [--per-message 1 10 100] [--repeat 1]

Method: a private Mosquitto (deploy/mosquitto.conf settings) and a private influxd 1.x are started.
For each consumer, its persistent session is created first, then the readings (10 values each, 200
devices) are published into the broker, then the consumer is started in a process of its own and
timed from its "ready" until InfluxDB holds every point (counted with InfluxQL by this process, not
the consumer's). That is the drain rate of a backlog: the consumer's maximum. The values are decimal
quantities as a meter's BCD decodes to (230.1), not float sums with 17-digit reprs.
The naive loop is paho -> json.loads -> line protocol -> POST /write in batches of 5000, acking
automatically. It has none of gridedge's guarantees: it acks on receipt (a crash or an InfluxDB outage
loses what it holds), validates nothing (no dead letters: one bad payload raises in its callback),
adds no topology tags and holds an unbounded batch. gridedge acks a message only after InfluxDB
accepted its points, bounds the unacknowledged window (Receive Maximum), validates every payload
against the contract and dead-letters the bad ones.

`--per-message` K: readings per MQTT message (1: live polling; 10: a bus cycle; 100: what the gateway
sends in a spool replay, `publisher.batch_samples`). For each K both consumers run on the same data,
and the figures, their ratio (goal: gridedge >= 2x naive and >= 20,000 readings/s) and the medians over
`--repeat` runs are printed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.mqtt_load import VALUES, Blaster, publish_packets, reading_values  # noqa: E402
from bench.workdir import run_dir  # noqa: E402
from gridedge.services import InfluxDB, Mosquitto  # noqa: E402
from ingest.config import IngestConfig  # noqa: E402
from ingest.service import Ingest  # noqa: E402
from protocols.config import load as load_model  # noqa: E402

T0 = 1_763_800_000_000


def messages(readings: int, per_message: int, devices: int = 200) -> list[tuple[str, bytes]]:
    out = []
    per_device = readings // devices
    for d in range(devices):
        dev = f"m{d:04d}"
        for start in range(0, per_device, per_message):
            samples = []
            for i in range(start, min(start + per_message, per_device)):
                seq = d * per_device + i + 1
                samples.append({"seq": seq, "ts": T0 + i * 1000, "values": reading_values(seq)})
            head, more = samples[0], samples[1:]
            payload = {"schema": 1, "gw": "gw-bench", "dev": dev, **head, "protocol": "dlt645"}
            if more:
                payload["more"] = more
            out.append((f"gridedge/v1/gw-bench/{dev}/reading", json.dumps(payload).encode()))
    return out


def publish(port: int, msgs: list[tuple[str, bytes]]) -> None:
    blaster = Blaster(port, "bench-pub")  # paho would take ~20 s per 100,000 here (untimed, but slow)
    try:
        blaster.send_all(publish_packets(msgs))
    finally:
        blaster.close()


def prepare_session(port: int, client_id: str) -> None:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 3600
    c.connect("127.0.0.1", port, clean_start=False, properties=props)
    c.loop_start()
    c.subscribe("gridedge/v1/+/+/reading", qos=1)[1]
    time.sleep(0.5)
    c.disconnect()
    c.loop_stop()


def count(db: InfluxDB) -> int:
    s = db.query('SELECT count("voltage_a_v") FROM "meter"')
    return int(s[0]["values"][0][1]) if s else 0


def wait_count(db: InfluxDB, n: int, timeout: float = 600) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if count(db) >= n:
            return time.monotonic()
        time.sleep(0.2)
    raise TimeoutError(f"only {count(db)} of {n} points after {timeout} s")


def consume_gridedge(port: int, url: str, database: str) -> None:
    doc = {
        "mqtt": {"host": "127.0.0.1", "port": port, "client_id": "bench-gridedge", "max_unacked": 20000},
        "influx": {"url": url, "database": database, "batch_points": 5000, "flush_interval_s": 0.2},
    }
    cfg = load_model(IngestConfig, json.dumps(doc), source="bench", environ={})

    async def main() -> None:
        ingest = Ingest(cfg)
        print("ready", flush=True)
        await ingest.run(asyncio.Event())  # until the parent has counted every point and kills us

    asyncio.run(main())


def consume_naive(port: int, url: str, database: str) -> None:
    lock = threading.Lock()
    batch: list[str] = []

    def flush() -> None:
        nonlocal batch
        with lock:
            lines, batch = batch, []
        if lines:
            req = urllib.request.Request(
                f"{url}/write?db={database}&precision=ms", data=("\n".join(lines)).encode(), method="POST"
            )
            urllib.request.urlopen(req, timeout=30).read()

    def on_message(client, userdata, msg) -> None:  # type: ignore[no-untyped-def]
        r = json.loads(msg.payload)
        for s in [r, *r.get("more", [])]:
            fields = ",".join(f"{k}={float(v)}" for k, v in s["values"].items())
            line = f"meter,gw={r['gw']},dev={r['dev']},protocol={r.get('protocol', '')} {fields} {s['ts']}"
            with lock:
                batch.append(line)
        if len(batch) >= 5000:
            flush()

    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-naive", protocol=mqtt.MQTTv5)
    c.on_message = on_message
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 3600
    print("ready", flush=True)
    c.connect("127.0.0.1", port, clean_start=False, properties=props)
    c.loop_start()
    while True:  # until the parent has counted every point and kills us
        time.sleep(0.2)
        flush()


def _peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def run_consumer(name: str, broker: Mosquitto, db: InfluxDB, n: int) -> dict[str, float]:
    """The consumer in a process of its own (its CPU and RSS are its own; the counting is ours), timed
    from its "ready" to the InfluxQL count that finds every point."""
    child = subprocess.Popen(
        [sys.executable, __file__, "--child", name, str(broker.port), db.url, db.database],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        started = time.monotonic()
        done = wait_count(db, n)
        return {"seconds": done - started, "rss_mb": _peak_rss_mb(child.pid)}
    finally:
        child.kill()
        child.wait()


def run_one(name: str, msgs: list[tuple[str, bytes]], n: int) -> dict[str, float]:
    # a fresh broker and database per run, removed after it; only their logs stay when it fails
    with (
        run_dir(f"gridedge-throughput-{name}-") as work,
        Mosquitto(work.path / "mosquitto") as broker,
        InfluxDB(work.path / "influxd", database="bench") as db,
    ):
        prepare_session(broker.port, f"bench-{name}")
        publish(broker.port, msgs)
        res = run_consumer(name, broker, db, n)
        stored = count(db)
        assert stored == n, f"{name}: {stored} points, expected {n}"
        res["rate"] = n / res["seconds"]
        print(f"  {name:9} {res['rate']:9.0f} readings/s  ({res['seconds']:.2f} s, ", end="")
        print(f"peak RSS {res['rss_mb']:.0f} MB, 0 lost)", flush=True)
        return res


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--readings", type=int, default=100_000)
    p.add_argument("--per-message", type=int, nargs="+", default=[1, 10, 100])
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--only", choices=("gridedge", "naive"), default=None)
    args = p.parse_args()
    names = [x for x in ("naive", "gridedge") if not args.only or x == args.only]
    summary = []
    for k in args.per_message:
        msgs = messages(args.readings, k)
        n = len(msgs) and args.readings // 200 * 200
        print(f"{n} readings of {len(VALUES)} values in {len(msgs)} messages ({k} per message)", flush=True)
        rates: dict[str, list[float]] = {x: [] for x in names}
        for _ in range(args.repeat):
            for name in names:
                rates[name].append(run_one(name, msgs, n)["rate"])
        summary.append((k, {x: statistics.median(r) for x, r in rates.items()}))
    print(f"\nper message  naive readings/s  gridedge readings/s  ratio   (medians of {args.repeat} run(s))")
    for k, med in summary:
        naive, ours = med.get("naive", 0.0), med.get("gridedge", 0.0)
        ratio = f"{ours / naive:5.2f}x" if naive and ours else "  -  "
        print(f"{k:11d}  {naive:16.0f}  {ours:19.0f}  {ratio}")
    print("goal: gridedge >= 20,000 readings/s and >= 2x naive. The naive loop acks on receipt, validates")
    print("nothing, has no dead letters, no topology tags and no bound on what it holds.")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        kind, port, url, database = sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
        (consume_gridedge if kind == "gridedge" else consume_naive)(port, url, database)
    else:
        main()
