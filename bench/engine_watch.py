"""What bench/ingest_latency.py watches of the alert engine (`--role all`): how far behind the stream
it is, how long a reading takes to be evaluated, and how long a reading that raises an alert takes to
reach an alert subscriber.

Layer: bench (run by hand or by `make bench`); it must not be imported by a service.

From outside the process, through what the engine leaves anyway:
- **evaluated**: the engine's state file (alerts.state_path, SQLite WAL, read-only here). The reading
  rules keep each meter's newest sample time (`last_ts`, one part per meter in `rule_parts`), saved
  at every batch once its alerts are confirmed: a reading is evaluated (and saved) when its meter's
  `last_ts` reaches its `ts`. The **lag** is the published readings minus the evaluated ones, sampled
  every 0.25 s (the stream's time stamps advance `step_ms` per `devices` readings, so the state says
  where the engine is to `devices` readings).
- **reading -> alert**: two probe readings a second join the stream (one more meter, dated when sent,
  its register a little lower each time), so each raises a register_decrease change (firing, then
  updated) whose message names the value; a subscriber on that alert's topic times each from the
  publish of the chunk it went out with to the change's arrival. (The stream's own readings are dated
  ahead of the wall clock, one second per 200 readings, so the engine, which judges a condition from
  the sample's time against its clock, fires none of theirs.)
"""

from __future__ import annotations

import collections
import json
import re
import sqlite3
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from bench.mqtt_load import publish_packet

_DOWN = re.compile(r"register of (\S+) went down from (\S+) to (\S+) kWh")


def quantiles(values: Sequence[float]) -> str:
    if len(values) < 2:
        return f"{len(values)} value(s)" + (f": {values[0] * 1000:.0f} ms" if values else "")
    q = statistics.quantiles(values, n=100)
    return (
        f"p50 {q[49] * 1000:.0f} ms, p90 {q[89] * 1000:.0f} ms, p99 {q[98] * 1000:.0f} ms, "
        f"max {max(values) * 1000:.0f} ms over {len(values)}"
    )


class EngineWatch:
    """Samples the engine's progress from its state file and probes reading -> evaluated."""

    def __init__(
        self, state: Path, base_ms: int, step_ms: int, devices: int, published: Callable[[], int]
    ) -> None:
        """The stream: reading i is device i % devices, dated base_ms + (i // devices) * step_ms."""
        self.state, self.base_ms, self.step_ms = state, base_ms, step_ms
        self.devices, self.published = devices, published
        self.lags: list[tuple[float, int]] = []  # (seconds since start, readings behind)
        self.latencies: list[float] = []
        self.wanted: collections.deque[tuple[str, int, float]] = collections.deque(maxlen=1)
        self._stop = threading.Event()
        self._db: sqlite3.Connection | None = None
        self._rule: str | None = None
        self._thread = threading.Thread(target=self._run, name="engine-watch", daemon=True)

    def start(self) -> None:
        self.t0 = time.monotonic()
        self._thread.start()

    def stop(self) -> int:
        """Stop sampling; return the readings evaluated then."""
        self._stop.set()
        self._thread.join(10)
        return self.evaluated()

    def evaluated(self) -> int:
        """Readings evaluated and saved, to `devices` readings (from the newest meter's sample time)."""
        row = self._query(
            "SELECT max(json_extract(state, '$.last_ts')) FROM rule_parts WHERE name LIKE 'reading:%'"
        )
        if not row or row[0] is None:
            return 0
        return int((float(row[0]) * 1000 - self.base_ms) // self.step_ms + 1) * self.devices

    def _meter_ts(self, dev: str) -> float | None:
        if self._rule is None:  # the reading rules' key, e.g. reading:0:missed_reading,...
            found = self._query("SELECT name FROM rule_parts WHERE name LIKE 'reading:%' LIMIT 1")
            self._rule = str(found[0]) if found and found[0] is not None else None
            if self._rule is None:
                return None
        sql = "SELECT json_extract(state, '$.last_ts') FROM rule_parts WHERE name = ? AND part = ?"
        row = self._query(sql, (self._rule, f"gw-lat/{dev}"))  # the primary key: one row
        return None if not row or row[0] is None else float(row[0])

    def _query(self, sql: str, args: tuple[str, ...] = ()) -> tuple[float | str | None] | None:
        if self._db is None:
            if not self.state.exists():
                return None
            self._db = sqlite3.connect(f"file:{self.state}?mode=ro", uri=True, check_same_thread=False)
        try:
            row: tuple[float | str | None] | None = self._db.execute(sql, args).fetchone()
            return row
        except sqlite3.OperationalError:  # not created yet (no batch saved)
            return None

    def _run(self) -> None:
        probe: tuple[str, int, float] | None = None
        next_sample = 0.0
        while not self._stop.is_set():
            now = time.monotonic()
            if now >= next_sample:
                self.lags.append((now - self.t0, max(0, self.published() - self.evaluated())))
                next_sample = now + 0.25
            if probe is None and self.wanted:
                probe = self.wanted.popleft()
            if probe is not None:
                dev, ts_ms, sent = probe
                seen = self._meter_ts(dev)
                if seen is not None and seen * 1000 >= ts_ms:
                    self.latencies.append(time.monotonic() - sent)
                    probe = None
                elif time.monotonic() - sent > 60:
                    probe = None  # never evaluated within a minute: the lag says it
            time.sleep(0.01)

    def lag_profile(self) -> str:
        """The lag at each quarter of the publishing time and its growth (readings/s)."""
        if len(self.lags) < 4:
            return "too short to say"
        end = self.lags[-1][0]
        marks = [min(self.lags, key=lambda p: abs(p[0] - end * q / 4)) for q in (1, 2, 3, 4)]
        half = [p for p in self.lags if p[0] >= end / 2]
        slope = (half[-1][1] - half[0][1]) / max(1e-9, half[-1][0] - half[0][0])
        points = ", ".join(f"{lag:,} at {t:.0f} s" for t, lag in marks)
        worst = [
            max((lag for t, lag in self.lags if int(t) == sec), default=0) for sec in range(int(end) + 1)
        ]
        per_second = " ".join(f"{w / 1000:.0f}k" for w in worst)
        return f"{points}; second half {slope:+,.0f} readings/s; worst each second: {per_second}"


class AlertWatch:
    """Probe readings in the stream, each a register going down (so each raises a register_decrease
    change: firing, then updated), and a subscriber on that alert's topic that times them."""

    EVERY_S = 0.5

    def __init__(self, port: int, gw: str, dev: str = "probe") -> None:
        self.gw, self.dev = gw, dev
        self.probes = 0
        self.latencies: list[float] = []
        self.unmatched = 0
        self._sent: dict[str, float] = {}  # the alert message's "to" value -> publish time
        self._unsent: list[str] = []
        self._next = 0.0
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="lat-alerts", protocol=mqtt.MQTTv5)
        self._client.on_message = self._on_message
        self._subscribed = threading.Event()
        self._client.on_subscribe = lambda *_: self._subscribed.set()
        self._client.connect("127.0.0.1", port)
        self._client.loop_start()
        self._client.subscribe(f"gridedge/v1/alerts/register_decrease/{gw}/{dev}", qos=0)
        if not self._subscribed.wait(10):
            raise TimeoutError("the alert watcher did not get its subscription")

    def due(self) -> bool:
        return time.monotonic() >= self._next

    def probe(self) -> bytes:
        """The next probe reading's PUBLISH (dated now, its register lower than the last one's); no
        voltage, so the benchmark's count of stored readings leaves it out."""
        self._next = time.monotonic() + self.EVERY_S
        self.probes += 1
        kwh = 100_000.0 - self.probes
        if self.probes > 1:  # the first one is the meter's start reading: nothing goes down
            self._unsent.append(f"{kwh:.2f}")
        body = {"schema": 1, "gw": self.gw, "dev": self.dev, "seq": self.probes,
                "ts": int(time.time() * 1000), "values": {"energy_import_kwh": kwh}}  # fmt: skip
        topic = f"gridedge/v1/{self.gw}/{self.dev}/reading"
        return publish_packet(topic, json.dumps(body).encode(), 65535 - self.probes % 1000)

    def published(self, at: float) -> None:
        for key in self._unsent:
            self._sent[key] = at
        self._unsent.clear()

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        arrived = time.monotonic()
        if not msg.payload:
            return  # a retained topic cleared
        alert = json.loads(msg.payload)
        found = _DOWN.match(alert.get("message", "")) if alert.get("change") != "resolved" else None
        sent = self._sent.pop(found[3], None) if found else None
        if sent is None:
            self.unmatched += 1
            return
        self.latencies.append(arrived - sent)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()
