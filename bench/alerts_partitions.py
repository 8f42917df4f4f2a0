"""Alert engine scale-out: the same stream through 1 and then 2 partitioned alert engines.

    .venv/bin/python bench/alerts_partitions.py [--gateways 16] [--meters 25] [--readings 100]
                                                [--accounts none|all] [--ledger shared|partition]
                                                [--counts 1,2]

A private Mosquitto and influxd are started. For each partition count n, n processes
`gridedge ingest run --role alerts` (config `alerts.partition: {index: i, count: n}`, own client id and
state file; one cost-control ledger for all, or `--ledger partition` one each) take the same stream:
`--readings` readings per meter of `--meters` meters behind each of `--gateways` gateways, realistic (a
register rising with the power), encoded before the clock starts and written by bench/mqtt_load.py as
fast as the broker takes them. A few meters' registers go down mid-stream (register_decrease fires) and
each gateway's last reading is a sentinel that drops its `sentinel` meter's register: when a
partition's sentinel alerts have arrived, it has evaluated (and had acknowledged) everything of its
gateways before them, in order. The timer is off (tick_s 3600): what it judges depends on the wall
clock, so runs of different lengths would not be comparable.

With `--repeat k` the counts are run k times, alternated, and the medians printed as well: on a
shared machine single runs vary by up to 2x.

Printed per partition: readings it owns, readings/s (owned readings / time from the first byte to its
last sentinel alert), the process's CPU time per owned reading; in total: readings/s (all readings /
time to the last sentinel). Then the check: the alerts published (rule, subject, state) are the same
multiset for every run, and every alert in partition i's state file is about a gateway crc32 assigns
to i. From the CPU figures: c_own (CPU per reading a partition evaluates, from n=1) and c_foreign (CPU
per reading it only receives and drops, from n=2), and the predicted total for n engines on n cores:
1 / (c_own / n + c_foreign x (n - 1) / n), bounded by 1 / c_foreign however many cores.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import paho.mqtt.client as mqtt  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402

from bench.mqtt_load import Blaster, publish_packet  # noqa: E402
from bench.workdir import run_dir  # noqa: E402
from gridedge.services import InfluxDB, Mosquitto  # noqa: E402
from ingest.alerts.costcontrol.ledger import Account, Ledger  # noqa: E402
from ingest.alerts.partition import owner  # noqa: E402
from ingest.alerts.role import open_session  # noqa: E402
from ingest.config import IngestConfig  # noqa: E402
from protocols import topics  # noqa: E402

PERIOD_S = 60
LEDGER = "costcontrol-ledger{suffix}.sqlite"  # next to the state files
TICKS = os.sysconf("SC_CLK_TCK")
Key = tuple[str, str, str]  # (rule, subject, state)


class Watch:
    """Every alert message, with when it arrived (monotonic)."""

    def __init__(self, port: int) -> None:
        self.seen: list[tuple[float, Key]] = []
        self.changed = threading.Condition()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-watch-{os.getpid()}")
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.subscribe("gridedge/v1/alerts/#", qos=1)
        self.client.loop_start()

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        if not msg.payload or msg.retain:
            return
        rule, _, subject = msg.topic.removeprefix("gridedge/v1/alerts/").partition("/")
        state = json.loads(msg.payload)["state"]
        with self.changed:
            self.seen.append((time.monotonic(), (rule, subject, state)))
            self.changed.notify_all()

    def wait_for(self, wanted: set[Key], timeout: float) -> dict[Key, float]:
        """When each of `wanted` first arrived; raise TimeoutError naming what is missing."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                got = {k: t for t, k in reversed(self.seen) if k in wanted}
                if len(got) == len(wanted):
                    return got
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"alerts never seen: {sorted(wanted - set(got))[:5]}")
                self.changed.wait(left)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def reading(gw: str, dev: str, kwh: float, k: int, ts_ms: int, seq: int) -> bytes:
    power = 0.8 + (k % 7) / 10
    values = {
        "voltage_a_v": round(220.0 + (k % 9) / 10, 1),
        "current_a_a": round(power / 0.22, 2),
        "power_active_kw": power,
        "energy_import_kwh": round(kwh, 3),
        "relay": "closed",
    }
    return json.dumps({"schema": 1, "gw": gw, "dev": dev, "seq": seq, "ts": ts_ms, "values": values}).encode()


class Stream:
    """The readings of every meter, in time order; `drops`: meters whose register goes down once."""

    def __init__(self, gateways: list[str], meters: list[str], per_meter: int) -> None:
        self.gateways, self.meters, self.per_meter = gateways, meters, per_meter
        base = int(time.time() * 1000) - (per_meter + 3) * PERIOD_S * 1000
        self.drops = {
            (gw, m) for gi, gw in enumerate(gateways) for mi, m in enumerate(meters) if mi == gi % 7
        }
        self.owned: collections.Counter[str] = collections.Counter()
        self.packets: list[bytes] = []
        seq = 0
        for k in range(per_meter):
            for gw in gateways:
                for dev in meters:
                    kwh = 1000.0 + k * PERIOD_S / 3600 * 1.1
                    if (gw, dev) in self.drops and k >= per_meter // 2:
                        kwh -= 5.0  # the register went down (meter exchanged, or tampering)
                    seq += 1
                    self.packets.append(self._packet(gw, dev, kwh, k, base + k * PERIOD_S * 1000, seq))
                    self.owned[gw] += 1
        end = base + per_meter * PERIOD_S * 1000
        for gw in gateways:  # the sentinels, last of all
            for i, kwh in enumerate((2000.0, 1990.0)):
                seq += 1
                self.packets.append(self._packet(gw, "sentinel", kwh, i, end + i * PERIOD_S * 1000, seq))
        self.warmup = {  # one decrease per gateway: every engine is up once these alerts arrive
            gw: [
                self._packet(gw, "warmup", kwh, i, base + i * 1000, i + 1) for i, kwh in enumerate((9.0, 1.0))
            ]
            for gw in gateways
        }

    @staticmethod
    def _packet(gw: str, dev: str, kwh: float, k: int, ts_ms: int, seq: int) -> bytes:
        return publish_packet(
            topics.reading_topic(gw, dev), reading(gw, dev, kwh, k, ts_ms, seq), seq % 65535 + 1
        )

    @property
    def total(self) -> int:
        return sum(self.owned.values())


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def config(tmp: Path, port: int, db: InfluxDB, run: str, index: int, count: int) -> dict[str, Any]:
    return {
        "mqtt": {"host": "127.0.0.1", "port": port, "client_id": f"bench-{run}", "max_unacked": 10000},
        "influx": {"url": db.url, "database": db.database},
        "alerts": {
            "state_path": str(tmp / run / "alerts.sqlite"),
            # no timer during the run: what it judges depends on the wall clock (a run of 3 s ticks
            # never, one of 6 s once), so the runs would not be comparable; evaluation is what is timed
            "tick_s": 3600,
            "partition": {"index": index, "count": count},
        },
    }


def accounts(path: Path, s: Stream) -> None:
    with Ledger(path) as ledger:
        for gi, gw in enumerate(s.gateways):
            for mi, dev in enumerate([*s.meters, "sentinel", "warmup"]):
                ledger.upsert_account(Account(f"A-{gi:03d}-{mi:03d}", gw, dev, tariff=0.56, opening=500.0))


def run_partitions(
    args: argparse.Namespace, tmp: Path, broker: Mosquitto, db: InfluxDB, count: int, s: Stream, rep: int
) -> dict[str, Any]:
    run = f"n{count}-{rep}"
    (tmp / run).mkdir()
    ledgers = [LEDGER.format(suffix="")]
    if args.ledger == "partition":
        ledgers = [LEDGER.format(suffix=f"-p{i}of{count}") for i in range(count)]
    for name in ledgers if args.accounts == "all" else []:  # every ledger gets every account
        accounts(tmp / run / name, s)
    procs = []
    for i in range(count):
        doc = config(tmp, broker.port, db, run, i, count)
        doc["alerts"]["rules"] = {"costcontrol": {"ledger_path": ledgers[i % len(ledgers)]}}
        # the session exists before the engine runs: nothing published meanwhile is missed
        asyncio.run(open_session(IngestConfig.model_validate(doc)))
        path = tmp / run / f"ingest-{i}.json"
        path.write_text(json.dumps(doc))  # JSON is YAML
        log = (tmp / run / f"ingest-{i}.log").open("w")
        cmd = [sys.executable, "-m", "gridedge", "ingest", "run", "-c", str(path), "--role", "alerts"]
        procs.append(subprocess.Popen(cmd, cwd=ROOT, stderr=log))
    watch = Watch(broker.port)
    pub = Blaster(broker.port, f"bench-load-{run}")
    try:
        pub.send_all([p for packets in s.warmup.values() for p in packets])
        watch.wait_for({("register_decrease", f"{gw}/warmup", "firing") for gw in s.gateways}, 120)
        assert broker.proc is not None
        cpu0 = [cpu_seconds(p.pid) for p in procs]
        broker0, own0 = cpu_seconds(broker.proc.pid), time.process_time()
        t0 = time.monotonic()
        pub.send_all(s.packets)
        sentinels = {("register_decrease", f"{gw}/sentinel", "firing") for gw in s.gateways}
        arrived = watch.wait_for(sentinels, 600)
        cpu = [cpu_seconds(p.pid) - c for p, c in zip(procs, cpu0, strict=True)]
        broker_cpu, load_cpu = cpu_seconds(broker.proc.pid) - broker0, time.process_time() - own0
        time.sleep(1.0)  # the alerts published after the last sentinel's (none expected) still count
        published = collections.Counter(k for _, k in watch.seen)
    finally:
        pub.close()
        watch.close()
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(60)
    parts = []
    for i in range(count):
        mine = [gw for gw in s.gateways if owner(gw, count) == i]
        if not mine:
            raise SystemExit(f"partition {i} of {count} owns none of {len(s.gateways)} gateways: use more")
        readings = sum(s.owned[gw] for gw in mine) + 2 * len(mine)
        seconds = max(arrived[("register_decrease", f"{gw}/sentinel", "firing")] for gw in mine) - t0
        parts.append({"gateways": len(mine), "readings": readings, "seconds": seconds, "cpu": cpu[i]})
    stray = wrong_partition(tmp / run, count)
    total_s = max(arrived.values()) - t0
    return {
        "count": count, "parts": parts, "seconds": total_s, "published": published, "stray": stray,
        "broker_cpu": broker_cpu, "load_cpu": load_cpu,
    }  # fmt: skip


def wrong_partition(folder: Path, count: int) -> list[tuple[int, str, str]]:
    """Alerts in partition i's state file (current or history) about another partition's gateway."""
    stray = []
    for i in range(count):
        db = sqlite3.connect(folder / f"alerts-p{i}of{count}.sqlite")
        rows = db.execute(
            "SELECT rule, subject FROM current UNION SELECT rule, subject FROM history"
        ).fetchall()
        db.close()
        stray += [(i, r, sub) for r, sub in rows if owner(sub.partition("/")[0], count) != i]
    return stray


def report(result: dict[str, Any], total_readings: int) -> None:
    n = result["count"]
    for i, p in enumerate(result["parts"]):
        print(
            f"  partition {i} of {n}: {p['gateways']} gateways, {p['readings']:,} readings, "
            f"{p['readings'] / p['seconds']:,.0f} readings/s, "
            f"{p['cpu'] / p['readings'] * 1e6:.0f} us CPU per owned reading ({p['cpu']:.1f} s CPU)"
        )
    print(
        f"  total: {total_readings / result['seconds']:,.0f} readings/s ({result['seconds']:.1f} s); "
        f"mosquitto {result['broker_cpu'] / total_readings * 1e6:.0f} us CPU per reading "
        f"({n} subscriber(s)), load generator and watcher {result['load_cpu'] / total_readings * 1e6:.0f} us"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--gateways", type=int, default=16)
    p.add_argument("--meters", type=int, default=25, help="meters per gateway")
    p.add_argument("--readings", type=int, default=100, help="readings per meter")
    p.add_argument("--accounts", choices=("none", "all"), default="none", help="a prepaid account per meter")
    p.add_argument(
        "--ledger", choices=("shared", "partition"), default="shared", help="one ledger, or one per partition"
    )
    p.add_argument("--counts", default="1,2", help="partition counts to run, in order")
    p.add_argument("--repeat", type=int, default=1, help="runs of the counts, alternated; medians reported")
    args = p.parse_args()
    s = Stream(
        [f"gw-b{i:02d}" for i in range(args.gateways)],
        [f"m{i:03d}" for i in range(args.meters)],
        args.readings,
    )
    results = []
    with (
        run_dir("gridedge-partitions-bench-") as work,
        Mosquitto(work.path / "mosquitto") as broker,
        InfluxDB(work.path / "influxd", database="alerts") as db,
    ):
        for rep in range(args.repeat):  # alternated, so a noisy neighbour weighs on every count alike
            for count in (int(c) for c in args.counts.split(",")):
                result = run_partitions(args, work.path, broker, db, count, s, rep)
                cores, ledger = os.cpu_count(), args.ledger
                print(f"{count} partition(s), {cores} cores, accounts: {args.accounts}, ledger: {ledger}")
                report(result, s.total + 2 * len(s.gateways))
                results.append(result)
    check(results)
    medians(results, s.total + 2 * len(s.gateways))
    predict(results, s.total + 2 * len(s.gateways))


def medians(results: list[dict[str, Any]], total: int) -> None:
    for count in sorted({r["count"] for r in results}):
        runs = [r for r in results if r["count"] == count]
        rates = sorted(total / r["seconds"] for r in runs)
        print(
            f"{count} partition(s), {len(runs)} run(s): median {statistics.median(rates):,.0f} readings/s in "
            f"total (from {rates[0]:,.0f} to {rates[-1]:,.0f})"
        )


def check(results: list[dict[str, Any]]) -> None:
    base = results[0]["published"]
    for r in results:
        lost, extra = base - r["published"], r["published"] - base
        messages, first = sum(r["published"].values()), results[0]["count"]
        print(
            f"{r['count']} partition(s): {messages} alert messages; against {first}: {sum(lost.values())} "
            f"lost, {sum(extra.values())} extra; {len(r['stray'])} in the wrong partition's state"
        )
        if lost or extra or r["stray"]:
            print(f"  lost {sorted(lost)[:5]} extra {sorted(extra)[:5]} stray {r['stray'][:5]}")
            raise SystemExit(1)


def predict(results: list[dict[str, Any]], total: int) -> None:
    ones = [r for r in results if r["count"] == 1]
    twos = [r for r in results if r["count"] == 2]
    if not ones or not twos:
        return
    c_own = statistics.median(r["parts"][0]["cpu"] / total for r in ones)
    # a partition of 2 evaluates its own readings and drops the others': cpu = own x c_own + rest x c_foreign
    foreign = [(p["cpu"] - p["readings"] * c_own) / (total - p["readings"]) for r in twos for p in r["parts"]]
    c_foreign = max(1e-9, statistics.median(foreign))
    us = f"c_own {c_own * 1e6:.0f} us, c_foreign {c_foreign * 1e6:.1f} us"
    print(f"{us} CPU per reading (engine process, medians over the runs)")
    for n in (1, 2, 4, 8, 16):
        rate = 1 / (c_own / n + c_foreign * (n - 1) / n)
        print(f"  predicted, {n} engines on {n} free cores: {rate:,.0f} readings/s")
    print(
        f"  ceiling however many engines (each still receives every reading): {1 / c_foreign:,.0f} readings/s"
    )


if __name__ == "__main__":
    main()
