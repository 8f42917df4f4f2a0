"""Where alert state changes go: retained MQTT topics, the InfluxDB `alert` measurement, a webhook.

Layer: ingest alert I/O. Must not: decide anything about the life cycle (the engine did), let a slow
broker or webhook hold up the engine, or publish an alert any other way than `encode` below.

The message (MQTT and webhook) is `protocols.messages.Alert`, built by `message()` — the one place
the engine's `model.Alert` becomes the contract — encoded with msgspec and decoded again before it
leaves (`encode`), so nothing the contract refuses is ever published: such a change is logged with its
rule, subject and the field, and counted (`contract_refused`).

MQTT (`gridedge/v1/alerts/{rule}/{subject}`, QoS 1, own paho client `<client_id>-pub`):
- firing / updated: the message, **retained** — a dashboard that connects later sees every firing alert;
- resolved: the final record (state `resolved`, `end_ts`) **not retained**, immediately followed by an
  empty retained payload that clears the topic. Live subscribers thus get the resolution; late
  subscribers see nothing. There is no separate `.../resolved` topic: subjects contain `/`
  (`gw/dev`, `area/x`), so a suffix would be ambiguous.
Publishing is idempotent (a retained topic holds one state), which is what makes a restart that
re-publishes harmless.

In-flight window: `Publisher.submit` hands a message to paho and returns a future that the PUBACK
resolves; the engine waits only when `window` publishes are unacknowledged. One connection sends in
the order of `submit`, and the broker acknowledges a connection's QoS 1 messages in order, so a later
change of one topic is never acknowledged before an earlier one. The role (ingest/alerts/commits.py)
awaits a batch's futures before it saves the state that batch produced.

InfluxDB: measurement `alert`, tags rule, subject, severity; fields state, value, message,
duration_s, started_at (s); one point per change at the time of the change (firing: fired_at,
resolved: when the engine resolved it). A resolved point that would land on its firing point's
millisecond is moved 1 ms later so both stay. Lines the database cannot take right now are kept
(bounded) and retried with the next flush.

Webhook (optional): each change POSTed as the same JSON as on MQTT; a bounded queue feeds one sender
task that retries with exponential back-off and full jitter; a full queue drops the change and counts it.

Alertmanager (optional, `alerts.alertmanager`): the same message handed to ingest/alerts/alertmanager.py,
which keeps each alert's latest state for its own sender task (its figures: `alertmanager.stats`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import threading
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import asdict, dataclass

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from protocols import messages as m
from protocols import topics
from protocols.errors import ContractError

from ..config import MqttSection
from ..errors import RetryableWrite
from ..influx import InfluxWriter
from ..lineproto import point
from ..subscriber import configure
from .alertmanager import AlertmanagerOutput
from .config import AlertmanagerSection, WebhookSection
from .engine import Change
from .model import Alert, AlertState, subject_kind

log = logging.getLogger("ingest.alerts")

MAX_PENDING_LINES = 100_000
WINDOW = 1000  # unacknowledged publishes before the engine waits (paho keeps them and resends them)
CONFIRM_TIMEOUT_S = 10.0  # a batch's publishes unacknowledged this long are counted and its state saved
ALERTMANAGER_FLUSH_S = 5.0  # at shutdown, what Alertmanager has not been sent yet gets this long


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


def message(change: Change) -> m.Alert:
    """The contract message of one alert state change (the only conversion of a `model.Alert`)."""
    a = change.alert
    kind = subject_kind(a.subject)
    gw, _, dev = a.subject.partition("/") if kind in ("device", "gateway") else ("", "", "")
    return m.Alert(
        schema=m.SCHEMA_VERSION,
        ts=_ms(change.at),
        rule=a.rule,
        subject=a.subject,
        severity=a.severity.value,
        state=a.state.value,
        change=change.kind,
        start_ts=_ms(a.started_at),
        message=a.message,
        subject_kind=kind,
        fire_ts=None if a.fired_at is None else _ms(a.fired_at),
        end_ts=None if a.ended_at is None else _ms(a.ended_at),
        value=None if a.value is None else float(a.value),
        gw=gw,
        dev=dev,
        labels={str(k): str(v) for k, v in a.labels.items()},
        flaps=a.flaps,
        work=a.work,
        assignee=a.assignee,
        arrived_ts=None if a.arrived_at is None else _ms(a.arrived_at),
    )


def encode(change: Change) -> bytes:
    """The message as published; ContractError when the contract would refuse it (checked by decoding
    it exactly as a subscriber does)."""
    body = m.encode(message(change))
    topics.decode_payload(
        topics.parse_topic(topics.alert_topic(change.alert.rule, change.alert.subject)), body
    )
    return body


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
    contract_refused: int = 0
    influx_points: int = 0
    influx_pending: int = 0
    influx_dropped: int = 0
    webhook_sent: int = 0
    webhook_failed: int = 0
    webhook_dropped: int = 0


@dataclass(frozen=True, slots=True)
class Sent:
    """One submitted publish: `acked` resolves True at its PUBACK (False: the broker refused it)."""

    topic: str
    acked: asyncio.Future[bool]


class Publisher:
    """A QoS 1 publishing MQTT client (paho's network thread; it reconnects by itself and resends what
    is unacknowledged) with a bounded window of unacknowledged publishes."""

    def __init__(self, cfg: MqttSection, client_id: str, *, window: int = WINDOW) -> None:
        self.cfg = cfg
        self.window = window
        self.connected = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_publish = self._on_publish
        self._client.max_inflight_messages_set(window)
        configure(self._client, cfg)
        self._slots = asyncio.Semaphore(window)
        self._unacked = 0
        self._mutex = threading.Lock()  # _waiting and _early: paho's thread and the event loop
        self._waiting: dict[int, asyncio.Future[bool]] = {}
        self._early: dict[int, bool] = {}  # PUBACKs that came before publish() returned their mid

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._client.connect_async(self.cfg.host, self.cfg.port, self.cfg.keepalive_s)
        self._client.loop_start()

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    @property
    def in_flight(self) -> int:
        """Publishes submitted and not yet acknowledged."""
        return self._unacked

    async def submit(self, topic: str, data: bytes, *, retain: bool) -> Sent:
        """Hand one message to paho in order; waits only while the window is full."""
        await self._slots.acquire()
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[bool] = loop.create_future()
        self._unacked += 1
        fut.add_done_callback(self._acknowledged)
        # never hold our mutex across publish(): paho calls on_publish holding its own message lock
        info = self._client.publish(topic, data, qos=1, retain=retain)
        with self._mutex:
            early = self._early.pop(info.mid, None)
            if early is None:
                self._waiting[info.mid] = fut
        if early is not None:
            fut.set_result(early)
        return Sent(topic, fut)

    def _acknowledged(self, _: asyncio.Future[bool]) -> None:
        self._unacked -= 1
        self._slots.release()

    async def publish(self, topic: str, data: bytes, *, retain: bool, timeout: float = 10.0) -> bool:
        """Submit and wait: True once the broker acknowledged, False when unconfirmed in `timeout`."""
        sent = await self.submit(topic, data, retain=retain)
        with contextlib.suppress(TimeoutError):
            return await asyncio.wait_for(asyncio.shield(sent.acked), timeout)
        return False

    def _on_publish(self, client: mqtt.Client, userdata: object, mid: int, rc: object, p: object) -> None:
        ok = not getattr(rc, "is_failure", False)
        if not ok:
            log.error("alerts mqtt: the broker refused publish %d: %s", mid, rc)
        with self._mutex:
            fut = self._waiting.pop(mid, None)
            if fut is None:
                self._early[mid] = ok
                return
        if self._loop is not None:
            self._loop.call_soon_threadsafe(_settle, fut, ok)

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


def _settle(fut: asyncio.Future[bool], ok: bool) -> None:
    if not fut.done():
        fut.set_result(ok)


class Outputs:
    def __init__(
        self,
        publisher: Publisher | None,
        writer: InfluxWriter | None,
        webhook: WebhookSection | None = None,
        alertmanager: AlertmanagerSection | None = None,
    ) -> None:
        self.publisher = publisher
        self.writer = writer
        self.webhook = webhook if webhook is not None and webhook.url else None
        self.alertmanager = (
            AlertmanagerOutput(alertmanager) if alertmanager is not None and alertmanager.url else None
        )
        self.stats = OutputStats()
        self._lines: list[str] = []
        self._queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=webhook.queue if webhook else 1)

    async def emit(self, changes: list[Change]) -> list[Sent]:
        """Submit each change's MQTT messages (in order), queue its InfluxDB point and webhook POST;
        the returned publishes are confirmed with `confirm` (InfluxDB is written by `flush_influx`)."""
        sent: list[Sent] = []
        for change in changes:
            if change.record:
                self._lines.append(influx_line(change))
            try:
                body = encode(change)
            except ContractError as exc:
                self.stats.contract_refused += 1
                a = change.alert
                log.error("alerts: %s %s not published: %s: %s", a.rule, a.subject, exc.field, exc.reason)
                continue
            sent += await self._publish(change, body)
            self._enqueue(body)
            if self.alertmanager is not None:  # records the latest state only: never waits
                self.alertmanager.put(message(change))
        return sent

    async def send(self, topic: str, data: bytes, *, retain: bool = False) -> list[Sent]:
        """Another message of the alert role (autocontrol) through the same window, in order."""
        if self.publisher is None:
            return []
        return [await self.publisher.submit(topic, data, retain=retain)]

    async def confirm(self, sent: list[Sent], timeout: float = CONFIRM_TIMEOUT_S) -> None:
        """Wait for these publishes' PUBACKs (up to `timeout`); count the confirmed and the others."""
        if not sent:
            return
        await asyncio.wait([s.acked for s in sent], timeout=timeout)
        for s in sent:
            if s.acked.done() and s.acked.result():
                self.stats.published += 1
            else:
                self.stats.publish_unconfirmed += 1
                log.warning("alerts: %s not confirmed by the broker (paho resends it)", s.topic)

    def write_later(self, lines: list[str]) -> None:
        """Other points of the alert role (the autocontrol audit) through the same retrying path."""
        self._lines += lines

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

    async def _publish(self, change: Change, body: bytes) -> list[Sent]:
        if self.publisher is None:
            return []
        a = change.alert
        topic = topics.alert_topic(a.rule, a.subject)
        if a.state is AlertState.RESOLVED:
            return [
                await self.publisher.submit(topic, body, retain=False),
                await self.publisher.submit(topic, b"", retain=True),
            ]
        return [await self.publisher.submit(topic, body, retain=True)]

    # ---- webhook ------------------------------------------------------------------------------------

    def _enqueue(self, body: bytes) -> None:
        if self.webhook is None:
            return
        try:
            self._queue.put_nowait(body)
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
                    await asyncio.to_thread(_post, hook, body)
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

    def metric_fields(self) -> dict[str, float | int | bool]:
        """The figures for /metrics (`alerts.prometheus_port`): alerts_<stat>, alerts_alertmanager_<stat>."""
        figures = {f"alerts_{k}": v for k, v in asdict(self.stats).items()}
        if self.alertmanager is not None:
            figures |= {f"alerts_alertmanager_{k}": v for k, v in asdict(self.alertmanager.stats).items()}
        return figures

    async def run_alertmanager(self, current: Iterable[Alert]) -> None:
        """The Alertmanager sender (a named task of the role), first given the engine's `current`
        alerts' firing ones; returns at once without `alerts.alertmanager.url`."""
        if self.alertmanager is None:
            return
        firing = [a for a in current if a.state is AlertState.FIRING]
        self.alertmanager.seed(message(Change("firing", a, a.fired_at or a.started_at)) for a in firing)
        await self.alertmanager.run()

    async def close(self) -> None:
        if self.alertmanager is not None:
            await self.alertmanager.flush(ALERTMANAGER_FLUSH_S)
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
