"""Ingest latency: publish -> queryable in InfluxDB, at a steady rate below the maximum.

    .venv/bin/python bench/ingest_latency.py [--rate 1500] [--seconds 20] [--writers 1] [--role writer]

A private Mosquitto and influxd are started, `--writers` gridedge ingest processes subscribe (a shared
subscription when more than one), and readings are published at `--rate` per second (1 reading of 10 values
per message, 200 devices) by `bench/mqtt_load.py`: packets encoded before the clock starts and written every
5 ms, so the load generator does not take the CPU the writers need (paho publishing 7,500 messages/s would
take a whole core of the two). One prober thread samples the stream: it takes the latest published reading
whenever it is free and queries InfluxDB every 10 ms until that point is visible; the time from its publish
to the first query that sees it is its latency. (One prober, not one per probe: a thread per probe polling
every 10 ms loads the machine more, the more latency grows, and measures itself.)
`--role writer` (the default) runs what bench/ingest_throughput.py measures the maximum rate of; `--role all`
runs the alert engine in the same process too (`gridedge ingest run`'s default), which shares its core.
Printed: p50 / p90 / p99 / max over the probed readings, and whether every reading arrived.

With `--role all` the alert engine is watched too (bench/engine_watch.py, from its state file and an
alert subscriber): its lag behind the stream (readings published but not yet evaluated, sampled every
0.25 s, at each quarter of the run and its growth over the second half: flat when it keeps up), where
its state is when publishing ends, reading -> evaluated (and saved) over probed readings, and
reading -> alert over probe readings (2 a second, each raising a register_decrease change; goal: lag
flat, p99 < 0.5 s).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import queue
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.engine_watch import AlertWatch, EngineWatch, quantiles  # noqa: E402
from bench.mqtt_load import Blaster, publish_packet, reading_values  # noqa: E402
from bench.workdir import run_dir  # noqa: E402
from gridedge.services import InfluxDB, Mosquitto  # noqa: E402


def payload(dev: str, seq: int, ts: int) -> bytes:
    return json.dumps(
        {"schema": 1, "gw": "gw-lat", "dev": dev, "seq": seq, "ts": ts, "values": reading_values(seq)}
    ).encode()


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (/proc/<pid>/stat, clock ticks)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def report_engine(engine: EngineWatch, alerts: AlertWatch, at_end: int, total: int) -> None:
    """The alert engine's lines (`--role all`)."""
    time.sleep(1)  # the last alert changes in flight
    alerts.close()
    print(f"alert engine lag (readings published, not yet evaluated): {engine.lag_profile()}")
    print(f"alert engine state when publishing ended: {at_end:,} of {total:,} readings evaluated")
    print(f"reading -> evaluated (state saved): {quantiles(engine.latencies)} (goal p99 < 0.5 s)")
    print(
        f"reading -> alert ({alerts.probes} probe readings, {len(alerts.latencies)} alerts received, "
        f"{alerts.unmatched} unmatched): {quantiles(alerts.latencies)}"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--rate", type=float, default=1500)
    p.add_argument("--seconds", type=float, default=20)
    p.add_argument("--writers", type=int, default=1)
    p.add_argument("--role", choices=("writer", "all"), default="writer")
    args = p.parse_args()
    with (
        run_dir("gridedge-latency-") as run,
        Mosquitto(run.path / "mosquitto") as broker,
        InfluxDB(run.path / "influxd", database="lat") as db,
    ):
        tmp = run.path
        writers = []
        try:
            for w in range(args.writers):
                doc = {
                    "mqtt": {
                        "host": "127.0.0.1",
                        "port": broker.port,
                        "client_id": f"lat-writer-{w}",
                        "max_unacked": 10000,  # as examples/ingest.yaml
                        **({"shared_group": "lat"} if args.writers > 1 else {}),
                    },
                    "influx": {
                        "url": db.url,
                        "database": "lat",
                        "batch_points": 5000,
                        "flush_interval_s": 0.1,
                    },
                    "alerts": {"state_path": str(tmp / f"alerts-{w}.sqlite")},
                }
                cfg = tmp / f"ingest-{w}.json"
                cfg.write_text(json.dumps(doc))  # JSON is YAML
                writers.append(
                    subprocess.Popen(
                        [
                            sys.executable,
                            "-m",
                            "gridedge",
                            "ingest",
                            "run",
                            "-c",
                            str(cfg),
                            "--role",
                            args.role,
                        ],
                        cwd=ROOT,
                        stderr=(tmp / f"ingest-{w}.log").open("w"),
                    )
                )
            total = int(args.rate * args.seconds)
            base = int(time.time() * 1000)
            step = 1000  # each device's readings 1 s apart (ahead of the wall clock at high rates)
            stream = []  # encoded before the clock starts: the load generator must not load the machine
            for i in range(total):
                dev, ts = f"m{i % 200:04d}", base + (i // 200) * step
                packet = publish_packet(
                    f"gridedge/v1/gw-lat/{dev}/reading", payload(dev, i + 1, ts), i % 65535 + 1
                )
                stream.append((dev, ts, packet))
            time.sleep(3)
            engine = alerts = None
            published = 0
            if args.role == "all":
                alerts = AlertWatch(broker.port, "gw-lat")
                engine = EngineWatch(tmp / "alerts-0.sqlite", base, step, 200, lambda: published)
            pub = Blaster(broker.port, "lat-pub")
            latencies: list[float] = []
            wanted: queue.Queue[tuple[str, int, float] | None] = queue.Queue(maxsize=1)

            def prober() -> None:
                while (item := wanted.get()) is not None:
                    dev, ts, sent = item
                    q = f'SELECT count("voltage_a_v") FROM "meter" WHERE "dev" = \'{dev}\' AND time = {ts}ms'
                    deadline = sent + 30
                    while time.monotonic() < deadline:
                        if db.query(q):
                            latencies.append(time.monotonic() - sent)
                            break
                        time.sleep(0.01)

            probing = threading.Thread(target=prober, name="prober", daemon=True)
            probing.start()

            # every 5 ms, whatever is due by then goes out in one write
            if engine is not None:
                engine.start()
            cpu0 = [_cpu_s(w.pid) for w in writers]
            t0 = time.monotonic()
            i = 0
            while i < total:
                due = min(total, int((time.monotonic() - t0) * args.rate) + 1)
                if due > i:
                    packets = [packet for _, _, packet in stream[i:due]]
                    if alerts is not None and alerts.due():
                        packets.append(alerts.probe())  # behind this chunk in the engine's queue
                    pub.send(packets)
                    sent = time.monotonic()
                    dev, ts, _ = stream[due - 1]
                    if wanted.empty():
                        with contextlib.suppress(queue.Full):
                            wanted.put_nowait((dev, ts, sent))
                    if engine is not None and alerts is not None:
                        alerts.published(sent)
                        if not engine.wanted:
                            engine.wanted.append((dev, ts, sent))
                    i = published = due
                time.sleep(0.005)
            elapsed = time.monotonic() - t0
            achieved = total / elapsed
            busy = [(_cpu_s(w.pid) - c) / elapsed for w, c in zip(writers, cpu0, strict=True)]
            at_end = engine.stop() if engine is not None else 0
            wanted.put(None)
            probing.join(35)
            pub.wait_acked(total + (alerts.probes if alerts is not None else 0))
            pub.close()
            time.sleep(1)
            series = db.query('SELECT count("voltage_a_v") FROM "meter"')
            stored = int(series[0]["values"][0][1]) if series else 0
            if stored < total:
                run.failed()  # keep the writers' logs: where did the rest go?
            q = statistics.quantiles(latencies, n=100)
            print(
                f"{args.writers} writer(s) (--role {args.role}), {achieved:.0f} readings/s offered "
                f"for {args.seconds:.0f} s, {stored}/{total} stored; ingest process CPU while publishing: "
                + ", ".join(f"{b:.0%} of a core" for b in busy)
                + f"; load {os.getloadavg()[0]:.2f}"
            )
            print(
                f"publish -> queryable over {len(latencies)} probes: p50 {q[49] * 1000:.0f} ms, "
                f"p90 {q[89] * 1000:.0f} ms, p99 {q[98] * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms "
                "(goal p99 < 1 s)"
            )
            if engine is not None and alerts is not None:
                report_engine(engine, alerts, at_end, total)
        finally:
            for writer in writers:
                writer.terminate()
                writer.wait(20)


if __name__ == "__main__":
    main()
