"""The accounting of the fault rig: an independent MQTT witness and the figures of a cut.

Layer: test harness. Definitions are in tests/faults/harness.py's docstring. Must not: read a
service's internals (only MQTT and InfluxQL).
"""

from __future__ import annotations

import contextlib
import json
import threading
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gridedge.services import InfluxDB

GW = "gw-fault"


class RigError(RuntimeError):
    """A part of the rig did not start or answer."""


# ---- witness ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Witnessed:
    seq: int
    dev: str
    ts: int
    source: str
    stored: bool  # the sample carries values, so the ingest writes a point


@dataclass
class Witness:
    """Independent record of what the gateway handed to the broker (see the module docstring)."""

    port: int
    gw: str = GW
    readings: dict[int, Witnessed] = field(default_factory=dict)
    seqs: set[int] = field(default_factory=set)
    redelivered: int = 0
    deadlettered: set[tuple[str, int]] = field(default_factory=set)
    last_status: dict[str, Any] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    connected: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id="fault-witness",
            protocol=mqtt.MQTTv5,
            reconnect_on_failure=True,
        )
        client.on_connect = self._on_connect
        client.on_disconnect = lambda *a: self.connected.clear()
        client.on_message = self._on_message
        client.reconnect_delay_set(1, 1)
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = 3600
        client.connect("127.0.0.1", self.port, keepalive=10, clean_start=False, properties=props)
        client.loop_start()
        self._client = client
        if not self.connected.wait(10):
            raise RigError("the witness could not connect to the broker")

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def _on_connect(
        self, client: mqtt.Client, userdata: object, flags: object, rc: Any, props: object
    ) -> None:
        client.subscribe("gridedge/v1/#", qos=1)
        self.connected.set()

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        try:
            doc = json.loads(msg.payload)
        except ValueError:
            return
        with self.lock:
            if msg.topic == "gridedge/v1/deadletter":
                self._dead_letter(doc)
            elif doc.get("gw") == self.gw and isinstance(doc.get("seq"), int):
                self._gateway_message(msg.topic, doc)

    def _gateway_message(self, topic: str, doc: dict[str, Any]) -> None:
        if topic.endswith("/status"):
            if doc["seq"] == 0:
                return  # the Last Will is built once with seq 0
            if doc["seq"] >= self.last_status.get("seq", -1):
                self.last_status = doc
        samples = [doc, *doc.get("more", [])] if topic.endswith("/reading") else [doc]
        for s in samples:
            if s["seq"] in self.seqs:
                self.redelivered += 1
                continue
            self.seqs.add(s["seq"])
            if topic.endswith("/reading"):
                self.readings[s["seq"]] = Witnessed(
                    s["seq"], doc["dev"], s["ts"], s.get("source", "live"), bool(s.get("values"))
                )

    def _dead_letter(self, doc: dict[str, Any]) -> None:
        with contextlib.suppress(ValueError, KeyError, TypeError):
            reading = json.loads(doc["payload"])
            if doc["topic"].endswith("/reading"):
                for s in [reading, *reading.get("more", [])]:
                    self.deadlettered.add((reading["dev"], s["ts"]))

    def snapshot(self) -> tuple[list[Witnessed], set[int], set[tuple[str, int]], dict[str, Any]]:
        with self.lock:
            return (
                list(self.readings.values()),
                set(self.seqs),
                set(self.deadlettered),
                dict(self.last_status),
            )


# ---- accounting -----------------------------------------------------------------------------------


@dataclass
class Accounting:
    produced: int = 0
    produced_points: int = 0
    stored: int = 0
    lost: int = 0
    duplicated: int = 0
    collided: int = 0
    deadlettered: int = 0
    unaccounted: int = 0
    spool_dropped: int = 0
    redelivered: int = 0
    seq_gaps: int = 0
    unexplained_gaps: int = 0
    replayed: int = 0
    by_dev: dict[str, int] = field(default_factory=dict)
    lost_keys: list[tuple[str, int]] = field(default_factory=list)
    duplicated_keys: list[tuple[str, int]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (
            self.lost == 0
            and self.duplicated == 0
            and self.unaccounted == 0
            and self.spool_dropped == 0
            and self.unexplained_gaps == 0
        )

    def line(self, faults: int) -> str:
        return (
            f"faults={faults} produced={self.produced} stored={self.stored} "
            f"lost={self.lost} duplicated={self.duplicated}"
        )

    def summary(self) -> str:
        keys = (
            *("produced", "produced_points", "stored", "lost", "duplicated", "collided", "deadlettered"),
            *("unaccounted", "spool_dropped", "redelivered", "seq_gaps", "unexplained_gaps", "replayed"),
        )
        text = " ".join(f"{k}={getattr(self, k)}" for k in keys)
        if self.lost_keys:
            text += f" lost_keys={self.lost_keys[:10]}"
        if self.duplicated_keys:
            text += f" duplicated_keys={self.duplicated_keys[:10]}"
        return text


def stored_points(influx: InfluxDB, gw: str = GW) -> list[tuple[str, int]]:
    """(dev, ts ms) of every stored meter point of `gw`, one per row (series included)."""
    rows: list[tuple[str, int]] = []
    for series in influx.query(f'SELECT * FROM "meter" WHERE "gw" = \'{gw}\''):
        columns: list[str] = series["columns"]  # type: ignore[assignment]
        t, d = columns.index("time"), columns.index("dev")
        rows += [(row[d], int(row[t])) for row in series["values"]]  # type: ignore[attr-defined]
    return rows


def account(
    witnessed: list[Witnessed],
    seen_later: set[tuple[str, int]],
    seqs: set[int],
    dead: set[tuple[str, int]],
    status: dict[str, Any],
    rows: list[tuple[str, int]],
    windows: list[tuple[float, float]],
    redelivered: int = 0,
) -> Accounting:
    """Figures of one cut: `witnessed` are the readings at the cut, `seen_later` every (dev, ts) the
    witness had seen when `rows` (the stored points) were read, `seqs` every seq it had seen then."""
    acc = Accounting(redelivered=redelivered)
    with_values = [w for w in witnessed if w.stored]
    produced: dict[tuple[str, int], list[int]] = {}
    for w in with_values:
        produced.setdefault((w.dev, w.ts), []).append(w.seq)
        acc.by_dev[w.dev] = acc.by_dev.get(w.dev, 0) + 1
    stored = set(rows) & set(produced)
    acc.produced, acc.produced_points, acc.stored = len(with_values), len(produced), len(stored)
    acc.collided = sum(len(s) - 1 for s in produced.values())
    acc.replayed = sum(1 for w in with_values if w.source != "live")
    lost = sorted(set(produced) - stored, key=lambda k: k[1])
    acc.lost, acc.lost_keys = len(lost), lost
    extra = sorted(set(rows) - seen_later, key=lambda k: k[1])
    acc.duplicated = len(extra) + sum(1 for r in rows if r in produced) - len(stored)
    acc.duplicated_keys = extra
    acc.deadlettered = len(dead)
    acc.unaccounted = len(set(lost) - dead)
    acc.spool_dropped = int(status.get("spool_dropped", 0))
    top = max((w.seq for w in witnessed), default=0)
    gaps, unexplained = seq_gaps({s for s in seqs if s <= top}, witnessed, windows)
    acc.seq_gaps, acc.unexplained_gaps = gaps, unexplained
    return acc


def seq_gaps(
    seqs: set[int], witnessed: list[Witnessed], windows: list[tuple[float, float]]
) -> tuple[int, int]:
    """Missing seqs below the highest, and how many fall outside every recorded fault window (the time
    of a missing seq is taken from the nearest reading below it)."""
    if not seqs:
        return 0, 0
    ts_of = sorted((w.seq, w.ts / 1000) for w in witnessed)
    missing = [s for s in range(1, max(seqs)) if s not in seqs]
    unexplained = 0
    i = 0
    for s in missing:
        while i + 1 < len(ts_of) and ts_of[i + 1][0] < s:
            i += 1
        when = ts_of[i][1] if ts_of and ts_of[i][0] < s else 0.0
        if not any(a - 2 <= when <= b + 2 for a, b in windows):
            unexplained += 1
    return len(missing), unexplained
