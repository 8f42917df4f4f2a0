"""Alerts to a Prometheus Alertmanager, in its v2 API shape (`POST {url}/api/v2/alerts`).

Layer: ingest alert I/O, beside the MQTT publisher and the webhook (ingest/alerts/outputs.py, which
hands it the contract message of every change). Must not: decide anything about the life cycle (the
engine did), make the engine wait for Alertmanager, or lose a change without counting it.

Mapping of one `protocols.messages.Alert` to a postable alert:
- labels: `alertname` = rule, `subject`, `severity`, `subject_kind`, `gw` / `dev` (device and gateway
  subjects) and those of the alert's own labels named in `alertmanager.label_keys` (where the subject
  is: site, area, region, phase, hall, counter, account ...), over `alertmanager.labels`. A label set
  is an alert's identity to Alertmanager (grouping, silences, inhibition match it), so it holds nothing
  that changes while the alert fires but its severity;
- annotations: `summary` = the alert's message, `value`, `flaps` when the engine damps the subject, and
  the alert's other labels (inhibits, inhibited_by, ticket, staff, SLA clock states ...);
- names Alertmanager refuses (`[a-zA-Z_][a-zA-Z0-9_]*`) get `_` for each other character; empty values
  are left out (Alertmanager treats an empty label as an absent one);
- `startsAt` = when it fired; `endsAt`: a resolved alert's end, a firing one's `now + lease_s`;
- `generatorURL` from `alertmanager.generator_url` when set.

Firing alerts and Alertmanager's timeout: Alertmanager ends an alert at its `endsAt`, and when a client
leaves `endsAt` out it sets now + `resolve_timeout` ("Clients are expected to re-send firing alerts ...
at regular intervals until the alert is resolved", its docs/alerts_api.md). We send an explicit
`endsAt` = now + `lease_s` (default 300 s) and re-send every firing alert each `resend_s` (default 60
s), as Prometheus does with its own alerts: a firing alert never ends by itself whatever Alertmanager's
`resolve_timeout`, and if this engine stops it ends `lease_s` after the last re-send instead of
staying firing for ever. Alertmanager keeps alerts in memory only: after it restarts, the next re-send
gives it back every firing one. When a firing alert's labels change (its severity, say), the old label
set - a different alert to Alertmanager - is ended at the change.

Never blocking: `put` only records the alert's latest state (O(1), no I/O); one sender task POSTs what
is due in batches of `batch`, a thread per request (`urllib.request`, `timeout_s`). A connection error,
a timeout or an HTTP status other than 400/422 is retried with exponential back-off and full jitter
(counted: `retries`), rebuilding the batch from the latest states each time, until Alertmanager
takes it; 400/422 means Alertmanager refused the alerts themselves: logged with its answer and counted
(`refused`), not retried. While it is unreachable, firing alerts stay due (bounded by what the engine
has firing) and ended ones wait up to `queue`; an ended alert beyond that is dropped and counted
(`dropped`): Alertmanager then ends it at the `endsAt` of its last re-send. At shutdown what is due
gets one more attempt (`flush`).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import random
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from protocols import messages as m

from .config import AlertmanagerSection

log = logging.getLogger("ingest.alerts")

API_PATH = "/api/v2/alerts"
REFUSED_STATUS = frozenset({400, 422})  # the alerts are wrong: sending them again changes nothing
_LABEL_CHAR = re.compile(r"[^a-zA-Z0-9_]")
_NAMES: dict[str, str] = {}  # label_name's answers
MAX_NAMES = 10_000

Postable = dict[str, Any]
Identity = tuple[tuple[str, str], ...]  # an alert as Alertmanager knows it: its sorted label set


@dataclass
class AlertmanagerStats:
    sent: int = 0  # alerts Alertmanager accepted (re-sends included)
    posts: int = 0  # successful POSTs
    retries: int = 0  # failed attempts (connection, timeout, 5xx ...), retried after a back-off
    refused: int = 0  # alerts in POSTs answered 400/422 (not retried; Alertmanager keeps the valid ones)
    dropped: int = 0  # ended alerts dropped because `queue` were already waiting
    pending: int = 0  # alerts due now (firing re-sends and ended alerts)
    connected: bool = False  # the last POST succeeded


def label_name(name: str) -> str:
    """A label name Alertmanager accepts: other characters become `_`, a leading digit gets `_`."""
    clean = _NAMES.get(name)
    if clean is None:  # label names are few (rules and topology tags): each is worked out once
        clean = _LABEL_CHAR.sub("_", name) or "_"
        clean = "_" + clean if clean[0].isdigit() else clean
        if len(_NAMES) < MAX_NAMES:
            _NAMES[name] = clean
    return clean


def rfc3339(ms: int) -> str:
    return (
        dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )


def labels_of(msg: m.Alert, cfg: AlertmanagerSection) -> dict[str, str]:
    """The alert's labels as Alertmanager gets them (see the module docstring for precedence)."""
    merged = {**cfg.labels, **{k: v for k, v in msg.labels.items() if k in cfg.label_keys}}
    if msg.gw:
        merged["gw"], merged["dev"] = msg.gw, msg.dev
    merged["alertname"], merged["subject"] = msg.rule, msg.subject
    merged["severity"], merged["subject_kind"] = msg.severity, msg.subject_kind
    return _clean(merged)


def annotations_of(msg: m.Alert, cfg: AlertmanagerSection) -> dict[str, str]:
    """`summary`, `value`, `flaps` and the alert's labels that are not `label_keys`."""
    out = {k: v for k, v in msg.labels.items() if k not in cfg.label_keys}
    out["summary"] = msg.message
    if msg.value is not None:
        out["value"] = f"{msg.value:g}"
    if msg.flaps:
        out["flaps"] = str(msg.flaps)
    return _clean(out)


def _clean(pairs: dict[str, str]) -> dict[str, str]:
    """Names Alertmanager accepts (the first of two names made the same stays), no empty values."""
    out: dict[str, str] = {}
    for name, value in pairs.items():
        if value:
            out.setdefault(label_name(name), value)
    return out


def postable(msg: m.Alert, cfg: AlertmanagerSection) -> Postable:
    """The postable alert of one change, without `endsAt` when it fires (the sender adds its lease)."""
    start = msg.fire_ts if msg.fire_ts is not None else msg.start_ts
    out: Postable = {
        "labels": labels_of(msg, cfg),
        "annotations": annotations_of(msg, cfg),
        "startsAt": rfc3339(start),
    }
    if str(msg.state) == "resolved":
        out["endsAt"] = rfc3339(max(start, msg.end_ts if msg.end_ts is not None else msg.ts))
    if cfg.generator_url:
        quote = urllib.parse.quote
        out["generatorURL"] = cfg.generator_url.format(
            rule=quote(msg.rule, ""), subject=quote(msg.subject, "")
        )
    return out


def identity(alert: Postable) -> Identity:
    return tuple(sorted(alert["labels"].items()))


class RefusedError(Exception):
    """Alertmanager refused the alerts themselves (HTTP 400/422)."""


class AlertmanagerOutput:
    """The latest state of every alert to send, and the task that sends it (`run`)."""

    def __init__(self, cfg: AlertmanagerSection, *, wall: Callable[[], float] = time.time) -> None:
        assert cfg.url is not None
        self.cfg = cfg
        self.url = cfg.url.rstrip("/") + API_PATH
        self.stats = AlertmanagerStats()
        self._wall = wall  # Alertmanager compares endsAt with its own (real) clock, not the engine's
        self._firing: dict[Identity, Postable] = {}  # without endsAt
        self._ended: dict[Identity, Postable] = {}  # with endsAt, until sent
        self._due: dict[Identity, None] = {}  # an ordered set: what the next POSTs carry
        self._current: dict[tuple[str, str], Identity] = {}  # (rule, subject) -> its firing identity
        self._wakeup = asyncio.Event()
        self._failing = False

    def put(self, msg: m.Alert) -> None:
        """Record one change (from the engine's task; no I/O, never waits)."""
        alert = postable(msg, self.cfg)
        ident, key = identity(alert), (msg.rule, msg.subject)
        previous = self._current.pop(key, None)
        if previous is not None and previous != ident:  # the labels changed: a different alert to AM
            self._end(previous, rfc3339(msg.ts))
        if "endsAt" in alert:
            self._firing.pop(ident, None)
            self._queue_end(ident, alert)
        else:
            self._ended.pop(ident, None)
            self._firing[ident] = alert
            self._current[key] = ident
            self._due[ident] = None
        self.stats.pending = len(self._due)
        self._wakeup.set()

    def seed(self, firing: Iterable[m.Alert]) -> None:
        """The engine's firing alerts at start (a restart re-sends what Alertmanager may still hold)."""
        for msg in firing:
            self.put(msg)

    def _end(self, ident: Identity, at: str) -> None:
        old = self._firing.pop(ident, None)
        if old is not None:
            self._queue_end(ident, {**old, "endsAt": max(at, old["startsAt"])})

    def _queue_end(self, ident: Identity, alert: Postable) -> None:
        if ident not in self._ended and len(self._ended) >= self.cfg.queue:
            self.stats.dropped += 1
            self._due.pop(ident, None)
            if self.stats.dropped % 1000 == 1:  # the first, then one line per thousand: no log flood
                log.warning(
                    "alerts: alertmanager: %s %s not sent: %d ended alerts already wait "
                    "(alertmanager.queue); %d dropped so far",
                    alert["labels"]["alertname"], alert["labels"]["subject"], len(self._ended),
                    self.stats.dropped,
                )  # fmt: skip
            return
        self._ended[ident] = alert
        self._due[ident] = None

    # ---- the sender -----------------------------------------------------------------------------

    async def run(self) -> None:
        """Send what is due, re-send firing alerts every `resend_s`; runs until cancelled."""
        loop = asyncio.get_running_loop()
        next_resend = loop.time() + self.cfg.resend_s
        delay = self.cfg.backoff_s
        while True:
            self.stats.pending = len(self._due)
            if not self._due:
                await self._idle(next_resend - loop.time())
            if loop.time() >= next_resend:
                self._due |= dict.fromkeys(self._firing)
                next_resend = loop.time() + self.cfg.resend_s
            if not self._due:
                continue
            if await self._send_batch():
                delay = self.cfg.backoff_s
            else:
                await asyncio.sleep(random.uniform(0, delay))
                delay = min(delay * 2, self.cfg.backoff_max_s)

    async def flush(self, timeout: float) -> None:
        """At shutdown: send what is due (one attempt a batch, no back-off) for up to `timeout`, so a
        resolution of the last moments is not left to the lease."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while self._due and await self._send_batch():
                    pass

    async def _idle(self, seconds: float) -> None:
        """Until `put` records something or `seconds` have passed."""
        self._wakeup.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wakeup.wait(), max(0.0, seconds))

    def _batch(self) -> list[tuple[Identity, Postable, Postable]]:
        """Up to `batch` due alerts: (identity, the state it is built from, the alert as sent)."""
        until = rfc3339(round((self._wall() + self.cfg.lease_s) * 1000))
        out = []
        for ident in list(self._due)[: self.cfg.batch]:
            if (ended := self._ended.get(ident)) is not None:
                out.append((ident, ended, ended))
            elif (firing := self._firing.get(ident)) is not None:
                out.append((ident, firing, {**firing, "endsAt": max(until, firing["startsAt"])}))
            else:  # superseded by a later state that was dropped: nothing left to say
                del self._due[ident]
        return out

    async def _send_batch(self) -> bool:
        """One POST of the next batch; False when it should be retried after a back-off."""
        batch = self._batch()
        if not batch:
            return True
        body = json.dumps([sent for _, _, sent in batch]).encode()
        try:
            await asyncio.to_thread(_post, self.url, body, self.cfg)
        except RefusedError as exc:
            self.stats.refused += len(batch)
            names = ", ".join(
                f"{a['labels']['alertname']} {a['labels'].get('subject')}" for _, _, a in batch[:5]
            )
            log.error("alerts: alertmanager refused %d alert(s) (%s ...): %s", len(batch), names, exc)
        except (OSError, urllib.error.URLError, ValueError) as exc:
            self.stats.retries += 1
            # said once per outage, then at debug level: a long outage must not flood the log
            level = logging.DEBUG if self._failing else logging.WARNING
            log.log(level, "alerts: alertmanager %s: %s; %d alert(s) wait", self.url, exc, len(self._due))
            self._failing, self.stats.connected = True, False
            return False
        else:
            self.stats.sent += len(batch)
            self.stats.posts += 1
            if self._failing:
                log.warning("alerts: alertmanager %s is back (%d alert(s) due)", self.url, len(self._due))
            self._failing, self.stats.connected = False, True
        self._settle(batch)
        return True

    def _settle(self, batch: list[tuple[Identity, Postable, Postable]]) -> None:
        """Forget what was sent unless it changed while the POST was under way."""
        for ident, source, _ in batch:
            if self._ended.get(ident) is source:
                del self._ended[ident]
                self._due.pop(ident, None)
            elif self._firing.get(ident) is source:
                self._due.pop(ident, None)
        self.stats.pending = len(self._due)


def _post(url: str, body: bytes, cfg: AlertmanagerSection) -> None:
    headers = {"Content-Type": "application/json", **cfg.headers}
    req = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=cfg.timeout_s) as resp:
            resp.read()
    except urllib.error.HTTPError as exc:
        answer = exc.read()[:500].decode("utf-8", "replace").strip()
        if exc.code in REFUSED_STATUS:
            raise RefusedError(f"HTTP {exc.code}: {answer}") from None
        raise OSError(f"HTTP {exc.code}: {answer}") from None
