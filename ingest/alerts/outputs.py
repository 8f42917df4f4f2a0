"""Where alert state changes go: retained MQTT topics, the InfluxDB `alert` measurement, a webhook.

Layer: ingest alert I/O. Must not: decide anything about the life cycle (the engine did), or let a slow
webhook hold up the engine.

MQTT (`gridedge/v1/alerts/{rule}/{subject}`, QoS 1, own paho client `<client_id>-pub`):
- firing / updated: the alert as JSON, **retained** — a dashboard that connects later sees every
  firing alert;
- resolved: the final record (state `resolved`, ended_at, duration_s) **not retained**, immediately
  followed by an empty retained payload that clears the topic. Live subscribers thus get the
  resolution with its duration; late subscribers see nothing. There is no separate `.../resolved`
  topic: subjects contain `/` (`gw/dev`, `area/x`), so a suffix would be ambiguous.
Publishing is idempotent (a retained topic holds one state), which is what makes a restart that
re-publishes harmless.

InfluxDB: measurement `alert`, tags rule, subject, severity; fields state, value, message,
duration_s, started_at (s); one point per change at the time of the change (firing: fired_at,
resolved: when the engine resolved it). A resolved point that would land on its firing point's
millisecond is moved 1 ms later so both stay. Lines the database cannot take right now are kept
(bounded) and retried with the next change.

Webhook (optional): each change POSTed as the same JSON; a bounded queue feeds one sender task that
retries with exponential back-off and full jitter; a full queue drops the change and counts it.

Payload (JSON): rule, subject, state, severity, started_at, fired_at, ended_at, duration_s, value,
message, labels, flaps — times in UNIX seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from protocols import topics

from ..config import MqttSection
from ..errors import RetryableWrite
from ..influx import InfluxWriter
from ..lineproto import point
from ..subscriber import configure, publish_confirmed
from .config import WebhookSection
from .engine import Change
from .model import Alert, AlertState

log = logging.getLogger("ingest.alerts")

MAX_PENDING_LINES = 100_000


def payload(alert: Alert) -> dict[str, Any]:
    return {
        "rule": alert.rule,
        "subject": alert.subject,
        "state": alert.state.value,
        "severity": alert.severity.value,
        "started_at": alert.started_at,
        "fired_at": alert.fired_at,
        "ended_at": alert.ended_at,
        "duration_s": alert.duration_s,
        "value": alert.value,
        "message": alert.message,
        "labels": dict(alert.labels),
        "flaps": alert.flaps,
    }


def influx_line(change: Change) -> str:
    a = change.alert
    fields: dict[str, float | int | bool | str] = {
        "state": a.state.value,
        "message": a.message,
        "started_at": float(a.started_at),
    }
    if a.value is not None:
        fields["value"] = float(a.value)
    if a.duration_s is not None:
        fields["duration_s"] = float(a.duration_s)
    ts_ms = round(change.at * 1000)
    if a.state is AlertState.RESOLVED and a.fired_at is not None:
        ts_ms = max(ts_ms, round(a.fired_at * 1000) + 1)
    return point("alert", {"rule": a.rule, "subject": a.subject, "severity": a.severity.value}, fields, ts_ms)


@dataclass
class OutputStats:
    published: int = 0
    publish_unconfirmed: int = 0
    influx_points: int = 0
    influx_pending: int = 0
    influx_dropped: int = 0
    webhook_sent: int = 0
    webhook_failed: int = 0
    webhook_dropped: int = 0


class Publisher:
    """A QoS 1 publishing MQTT client (paho's network thread; it reconnects by itself)."""

    def __init__(self, cfg: MqttSection, client_id: str) -> None:
        self.cfg = cfg
        self.connected = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        configure(self._client, cfg)

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._client.connect_async(self.cfg.host, self.cfg.port, self.cfg.keepalive_s)
        self._client.loop_start()

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    async def publish(self, topic: str, data: bytes, *, retain: bool, timeout: float = 10.0) -> bool:
        """True once the broker acknowledged; False when unconfirmed (paho still resends it)."""
        return await publish_confirmed(self._client, topic, data, retain=retain, timeout=timeout)

    def _on_connect(
        self, client: mqtt.Client, userdata: object, flags: object, rc: object, p: object
    ) -> None:
        if getattr(rc, "is_failure", False):
            log.warning("alerts mqtt: %s:%d refused the connection: %s", self.cfg.host, self.cfg.port, rc)
            return
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self.connected.set)

    def _on_disconnect(self, client: mqtt.Client, userdata: object, f: object, rc: object, p: object) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self.connected.clear)


class Outputs:
    def __init__(
        self,
        publisher: Publisher | None,
        writer: InfluxWriter | None,
        webhook: WebhookSection | None = None,
    ) -> None:
        self.publisher = publisher
        self.writer = writer
        self.webhook = webhook if webhook is not None and webhook.url else None
        self.stats = OutputStats()
        self._lines: list[str] = []
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=webhook.queue if webhook else 1)

    async def emit(self, changes: list[Change]) -> None:
        if not changes:
            return
        for change in changes:
            await self._publish(change)
            self._lines.append(influx_line(change))
            self._enqueue(change)
        await self.flush_influx()

    async def write_lines(self, lines: list[str]) -> None:
        """Other points of the alert role (the autocontrol audit) through the same retrying path."""
        if lines:
            self._lines += lines
            await self.flush_influx()

    async def flush_influx(self) -> None:
        if self.writer is None or not self._lines:
            self._lines = [] if self.writer is None else self._lines
            return
        lines, self._lines = self._lines, []
        try:
            refused = await self.writer.write(lines)
        except RetryableWrite as exc:
            log.warning("alerts: influx: %s; %d point(s) kept for the next attempt", exc, len(lines))
            self._lines = lines + self._lines
            if len(self._lines) > MAX_PENDING_LINES:
                self.stats.influx_dropped += len(self._lines) - MAX_PENDING_LINES
                self._lines = self._lines[-MAX_PENDING_LINES:]
            self.stats.influx_pending = len(self._lines)
            return
        for line, reason in refused:
            log.error("alerts: influx refused %s: %s", line, reason)
        self.stats.influx_points += len(lines) - len(refused)
        self.stats.influx_pending = 0

    async def _publish(self, change: Change) -> None:
        if self.publisher is None:
            return
        a = change.alert
        topic = topics.alert_topic(a.rule, a.subject)
        body = json.dumps(payload(a)).encode()
        if a.state is AlertState.RESOLVED:
            oks = [
                await self.publisher.publish(topic, body, retain=False),
                await self.publisher.publish(topic, b"", retain=True),
            ]
        else:
            oks = [await self.publisher.publish(topic, body, retain=True)]
        self.stats.published += sum(oks)
        self.stats.publish_unconfirmed += len(oks) - sum(oks)

    # ---- webhook ------------------------------------------------------------------------------------

    def _enqueue(self, change: Change) -> None:
        if self.webhook is None:
            return
        try:
            self._queue.put_nowait({"kind": change.kind, **payload(change.alert)})
        except asyncio.QueueFull:
            self.stats.webhook_dropped += 1

    async def run_webhook(self) -> None:
        """The webhook sender (a named task of the role); returns at once without a webhook."""
        hook = self.webhook
        if hook is None:
            return
        while True:
            body = await self._queue.get()
            delay = hook.backoff_s
            for attempt in range(hook.retries + 1):
                try:
                    await asyncio.to_thread(_post, hook, json.dumps(body).encode())
                except (OSError, urllib.error.URLError, ValueError) as exc:
                    (log.warning if attempt == 0 else log.debug)("alerts: webhook %s: %s", hook.url, exc)
                    if attempt == hook.retries:
                        self.stats.webhook_failed += 1
                        break
                    await asyncio.sleep(random.uniform(0, delay))
                    delay = min(delay * 2, hook.backoff_max_s)
                else:
                    self.stats.webhook_sent += 1
                    break

    async def close(self) -> None:
        with contextlib.suppress(RetryableWrite):
            await self.flush_influx()


def _post(hook: WebhookSection, body: bytes) -> None:
    assert hook.url is not None
    req = urllib.request.Request(
        hook.url, data=body, method="POST", headers={"Content-Type": "application/json", **hook.headers}
    )
    with urllib.request.urlopen(req, timeout=hook.timeout_s) as resp:
        if resp.status >= 300:
            raise OSError(f"HTTP {resp.status}")
