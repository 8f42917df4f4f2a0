"""The Alertmanager output (ingest/alerts/alertmanager.py) against a real Prometheus Alertmanager
(Debian's prometheus-alertmanager, `alertmanager` fixture) whose one receiver is a webhook to a small
HTTP server in the test (`receiver`), so the tests see both what Alertmanager holds (its v2 API) and
what it routes. The alert engine runs as the alerts role on the real broker and influxd (`alert_harness`).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from gridedge.services import REPO_ROOT, Alertmanager, find_binary, free_port
from ingest.alerts.alertmanager import AlertmanagerOutput, label_name, postable
from ingest.alerts.config import AlertmanagerSection, AlertsSection
from protocols import messages as m
from protocols import topics
from tests.alerts.conftest import AlertHarness, HarnessFactory

GW = "gw-1"
TOPOLOGY = {
    "gateways": {GW: {"site": "site-1"}},
    "areas": {"area-1": {"region": "urban"}},
    "devices": {f"{GW}/m1": {"area": "area-1", "phase": "A"}, f"{GW}/m2": {"area": "area-1", "phase": "B"}},
}
FAST = {"backoff_s": 0.05, "backoff_max_s": 0.2, "timeout_s": 5}


class Receiver:
    """Alertmanager's webhook receiver: every notification's alerts, as (status, labels)."""

    def __init__(self) -> None:
        self.notified: list[tuple[str, dict[str, str]]] = []
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with outer._lock:
                    outer.notified += [(a["status"], a["labels"]) for a in body["alerts"]]
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, name="am-receiver", daemon=True)
        self.thread.start()

    def of(self, subject: str) -> list[str]:
        """The statuses notified for `subject`, in order."""
        with self._lock:
            return [status for status, labels in self.notified if labels.get("subject") == subject]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def alertmanager(tmp_path: Path, receiver: Receiver) -> Iterator[Alertmanager]:
    """A real Alertmanager on a free loopback port, data in a temp dir, every alert to `receiver`."""
    am = Alertmanager(tmp_path / "alertmanager", receiver_url=receiver.url)
    am.start()
    yield am
    am.stop()


async def until(cond: Callable[[], Any], what: str, timeout: float = 20.0) -> None:
    """Poll `cond` (it may call Alertmanager's API: off the loop) until true; fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(cond):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


def am_alert(am: Alertmanager, subject: str) -> dict[str, Any] | None:
    found = [a for a in am.alerts() if a["labels"]["subject"] == subject]  # type: ignore[index]
    return found[0] if found else None


def health(state: str, at: float, dev: str) -> m.Health:
    return m.Health(schema=1, gw=GW, dev=dev, seq=int(at), ts=round(at * 1000), state=state)  # type: ignore[arg-type]


async def go(h: AlertHarness, dev: str, state: str) -> None:
    await h.publish(topics.health_topic(GW, dev), health(state, h.now, dev), retain=True)


async def harness(
    factory: HarnessFactory, am_url: str, alerts: dict[str, Any] | None = None, **section: Any
) -> AlertHarness:
    cfg = {"url": am_url, **FAST, **section}
    return await factory(
        TOPOLOGY, {"devices": {"pending_s": 60}}, alerts={"alertmanager": cfg, **(alerts or {})}
    )


def scrape(port: int) -> dict[str, float]:
    """The alert engine's /metrics (alerts.prometheus_port), as {name: value}."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return {
        name: float(value)
        for name, value in (line.split(" ", 1) for line in text.splitlines() if line and line[0] != "#")
    }


def sender(h: AlertHarness) -> AlertmanagerOutput:
    assert h.role is not None and h.role.outputs.alertmanager is not None
    return h.role.outputs.alertmanager


# ---- mapping and configuration (pure) ----------------------------------------------------------------


def alert_msg(state: str = "firing", **kw: Any) -> m.Alert:
    fields: dict[str, Any] = {
        "schema": m.SCHEMA_VERSION, "ts": 1_000_000, "rule": "device_offline", "subject": "gw-1/m1",
        "severity": "major", "state": state, "change": state, "start_ts": 900_000, "fire_ts": 960_000,
        "message": "m1 offline for 60 s", "subject_kind": "device", "gw": "gw-1", "dev": "m1",
        "value": 60.0, "labels": {"gw": "gw-1", "dev": "m1", "area": "area-1", "feeder-no": "7", "x": ""},
    } | kw  # fmt: skip
    if state == "resolved":
        fields.setdefault("end_ts", 1_000_000)
    return m.Alert(**fields)


def test_postable_maps_rule_subject_severity_labels_and_times() -> None:
    cfg = AlertmanagerSection(
        url="http://127.0.0.1:9093",
        labels={"source": "gridedge", "severity": "overridden"},
        generator_url="https://grafana.example/d/alerts?rule={rule}&subject={subject}",
    )
    firing = postable(alert_msg(), cfg)
    assert firing["labels"] == {
        "alertname": "device_offline", "subject": "gw-1/m1", "severity": "major", "subject_kind": "device",
        "gw": "gw-1", "dev": "m1", "area": "area-1", "source": "gridedge",
    }  # fmt: skip
    # the alert's labels that are not label_keys (they may change while it fires) are annotations
    assert firing["annotations"] == {"summary": "m1 offline for 60 s", "value": "60", "feeder_no": "7"}
    keyed = postable(alert_msg(), cfg.model_copy(update={"label_keys": ["area", "feeder-no"]}))
    assert keyed["labels"]["feeder_no"] == "7" and "feeder_no" not in keyed["annotations"]
    assert firing["startsAt"] == "1970-01-01T00:16:00.000Z" and "endsAt" not in firing  # the sender's lease
    assert firing["generatorURL"].endswith("rule=device_offline&subject=gw-1%2Fm1")
    resolved = postable(alert_msg("resolved", end_ts=990_000), cfg)
    assert resolved["endsAt"] == "1970-01-01T00:16:30.000Z" and resolved["labels"] == firing["labels"]
    assert [label_name(n) for n in ("ok_1", "a-b.c", "9x", "")] == ["ok_1", "a_b_c", "_9x", "_"]


def test_config_refuses_a_lease_shorter_than_two_resends_and_unknown_placeholders() -> None:
    with pytest.raises(ValueError, match="lease_s 90 must be at least 2 x resend_s 60"):
        AlertsSection.model_validate({"alertmanager": {"url": "http://am:9093", "lease_s": 90}})
    with pytest.raises(ValueError, match=r"alertmanager\.generator_url"):
        AlertsSection.model_validate({"alertmanager": {"url": "http://am:9093", "generator_url": "x/{id}"}})
    assert AlertsSection().alertmanager.url is None  # off unless configured


async def test_ended_alerts_beyond_the_queue_are_dropped_and_counted() -> None:
    out = AlertmanagerOutput(AlertmanagerSection(url="http://127.0.0.1:9", queue=2))
    for dev in ("m1", "m2", "m3"):
        out.put(alert_msg("resolved", subject=f"gw-1/{dev}", dev=dev))
    assert out.stats.dropped == 1 and len(out._ended) == 2
    out.put(alert_msg("firing", subject="gw-1/m3", dev="m3"))  # a firing one is never dropped
    assert len(out._firing) == 1 and out.stats.dropped == 1


# ---- against a real Alertmanager ------------------------------------------------------------------------


async def test_a_firing_alert_reaches_alertmanager_and_its_receiver_and_its_resolution_ends_it(
    alert_harness: HarnessFactory, alertmanager: Alertmanager, receiver: Receiver
) -> None:
    h = await harness(alert_harness, alertmanager.url)
    await go(h, "m1", "offline")
    await h.advance(61)
    await until(lambda: am_alert(alertmanager, "gw-1/m1") is not None, "the alert in Alertmanager")
    got = am_alert(alertmanager, "gw-1/m1")
    assert got is not None
    assert got["labels"] == {
        "alertname": "device_offline", "subject": "gw-1/m1", "severity": "warning",
        "subject_kind": "device", "gw": "gw-1", "dev": "m1", "area": "area-1", "phase": "A", "site": "site-1",
    }  # fmt: skip
    assert got["annotations"]["summary"] == h.engine.firing("device_offline", "gw-1/m1").message  # type: ignore[union-attr]
    assert got["status"]["state"] == "active" and got["receivers"] == [{"name": "hook"}]
    assert got["startsAt"].startswith("2025-11-22T08:27:")  # when it fired (the engine's clock)
    await until(lambda: receiver.of("gw-1/m1") == ["firing"], "the receiver's firing notification")

    await go(h, "m1", "online")
    await h.advance(1)
    await until(lambda: am_alert(alertmanager, "gw-1/m1") is None, "Alertmanager to end it")
    await until(lambda: receiver.of("gw-1/m1") == ["firing", "resolved"], "the resolved notification")
    stats = sender(h).stats
    assert stats.sent == 2 and stats.retries == stats.dropped == stats.refused == 0


async def test_a_silence_made_in_alertmanager_silences_the_alert(
    alert_harness: HarnessFactory, alertmanager: Alertmanager, receiver: Receiver
) -> None:
    silence = await asyncio.to_thread(
        alertmanager.silence, {"alertname": "device_offline", "subject": "gw-1/m1"}, 3600, "crew on site"
    )
    h = await harness(alert_harness, alertmanager.url)
    await go(h, "m1", "offline")
    await go(h, "m2", "offline")
    await h.advance(61)
    # m2's notification is the marker: Alertmanager handled both alerts, and routed only m2's
    await until(lambda: receiver.of("gw-1/m2") == ["firing"], "m2's notification")
    await until(lambda: am_alert(alertmanager, "gw-1/m1") is not None, "m1 in Alertmanager")
    got = am_alert(alertmanager, "gw-1/m1")
    assert got is not None and got["status"]["state"] == "suppressed"
    assert got["status"]["silencedBy"] == [silence]
    assert receiver.of("gw-1/m1") == []
    unsilenced = await asyncio.to_thread(alertmanager.alerts, silenced="false")
    assert [a["labels"]["subject"] for a in unsilenced] == ["gw-1/m2"]  # type: ignore[index]


async def test_alertmanager_down_the_engine_goes_on_retries_are_counted_and_alerts_arrive_once_it_is_back(
    alert_harness: HarnessFactory, alertmanager: Alertmanager, receiver: Receiver
) -> None:
    port = free_port()
    h = await harness(alert_harness, alertmanager.url, alerts={"prometheus_port": port})
    alertmanager.stop()
    await go(h, "m1", "offline")
    await h.advance(61)  # returns: the engine never waits for Alertmanager
    await until(lambda: sender(h).stats.retries >= 2, "retries of the refused connection")
    metrics = await asyncio.to_thread(scrape, port)  # the retries are visible where operators look
    assert metrics["gridedge_ingest_alerts_alertmanager_retries"] >= 2
    assert metrics["gridedge_ingest_alerts_alertmanager_connected"] == 0
    await go(h, "m2", "offline")
    await h.advance(61)
    assert {s for (_, s) in h.retained_alerts()} == {"gw-1/m1", "gw-1/m2"}  # evaluated and published
    assert sender(h).stats.sent == 0 and sender(h).stats.pending == 2 and not sender(h).stats.connected

    alertmanager.start()  # same port, nothing in memory
    await until(lambda: receiver.of("gw-1/m1") == receiver.of("gw-1/m2") == ["firing"], "both notified")
    assert {a["labels"]["subject"] for a in alertmanager.alerts()} == {"gw-1/m1", "gw-1/m2"}  # type: ignore[index]
    stats = sender(h).stats
    assert stats.sent == 2 and stats.connected and stats.pending == 0 and stats.dropped == 0
    metrics = await asyncio.to_thread(scrape, port)
    assert metrics["gridedge_ingest_alerts_alertmanager_sent"] == 2
    assert metrics["gridedge_ingest_alerts_alertmanager_dropped"] == 0


async def test_a_slow_alertmanager_does_not_stall_evaluation_and_its_timeout_is_retried(
    alert_harness: HarnessFactory,
) -> None:
    release = asyncio.Event()
    requests = 0

    async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal requests
        requests += 1
        await release.wait()  # never answers while the test runs
        writer.close()

    server = await asyncio.start_server(hang, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    try:
        h = await harness(alert_harness, url, timeout_s=0.5)
        await go(h, "m1", "offline")
        async with asyncio.timeout(10):
            await h.advance(61)
            await go(h, "m2", "offline")
            await h.advance(61)  # both evaluated and published while the POSTs hang
        assert {s for (_, s) in h.retained_alerts()} == {"gw-1/m1", "gw-1/m2"}
        await until(lambda: sender(h).stats.retries >= 1, "the timed-out POST counted as a retry")
        assert requests >= 1 and sender(h).stats.sent == 0
    finally:
        release.set()
        server.close()


async def test_firing_alerts_are_re_sent_so_a_restarted_alertmanager_has_them_again(
    alert_harness: HarnessFactory, alertmanager: Alertmanager
) -> None:
    h = await harness(alert_harness, alertmanager.url, resend_s=0.3, lease_s=30)
    await go(h, "m1", "offline")
    await h.advance(61)
    await until(lambda: am_alert(alertmanager, "gw-1/m1") is not None, "the alert in Alertmanager")
    got = am_alert(alertmanager, "gw-1/m1")
    assert got is not None
    ends = time.mktime(time.strptime(got["endsAt"][:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
    assert time.time() < ends <= time.time() + 30  # the lease: Alertmanager ends it if we go silent
    alertmanager.stop()
    alertmanager.start()  # alerts are kept in memory only: this one is gone ...
    await until(lambda: am_alert(alertmanager, "gw-1/m1") is not None, "the re-send")  # ... and back
    assert sender(h).stats.sent >= 2


async def test_a_restarted_engine_re_sends_the_alerts_it_has_firing(
    alert_harness: HarnessFactory, alertmanager: Alertmanager
) -> None:
    h = await harness(alert_harness, alertmanager.url)
    await go(h, "m1", "offline")
    await h.advance(61)
    await until(lambda: am_alert(alertmanager, "gw-1/m1") is not None, "the alert in Alertmanager")
    await h.stop()
    alertmanager.stop()
    alertmanager.start()  # forgets it
    await h.start()  # no change to publish: the engine's firing alerts are sent at start
    await until(lambda: am_alert(alertmanager, "gw-1/m1") is not None, "the alert after the restart")


async def test_a_label_change_ends_the_alert_under_its_old_labels(alertmanager: Alertmanager) -> None:
    out = AlertmanagerOutput(AlertmanagerSection(url=alertmanager.url, **FAST))
    now_ms = round(time.time() * 1000)
    out.put(alert_msg(severity="warning", fire_ts=now_ms - 1000, ts=now_ms - 1000))
    out.put(alert_msg(severity="major", change="updated", fire_ts=now_ms - 1000, ts=now_ms))
    async with asyncio.TaskGroup() as tg:
        task = tg.create_task(out.run(), name="test:alertmanager")
        await until(lambda: out.stats.pending == 0 and out.stats.sent == 2, "both sent")
        task.cancel()
    assert [a["labels"]["severity"] for a in alertmanager.alerts()] == ["major"]  # type: ignore[index]


# ---- the sample route in deploy/ --------------------------------------------------------------------

SAMPLE = REPO_ROOT / "deploy" / "alertmanager.yml"


def test_the_sample_config_loads_in_alertmanager(tmp_path: Path) -> None:
    am = Alertmanager(tmp_path / "sample", config=SAMPLE.read_text())
    am.start()  # Alertmanager exits on a config it refuses: start() would raise ServiceError
    try:
        assert am.running and am.alerts() == []
    finally:
        am.stop()


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        ({"alertname": "area_outage", "subject": "area/north-3", "subject_kind": "area"}, "dispatch-wecom"),
        ({"alertname": "gateway_offline", "subject": "gw-7", "subject_kind": "gateway"}, "dispatch-wecom"),
        ({"alertname": "arrears", "subject": "account/a-1", "subject_kind": "account"}, "billing-dingtalk"),
        ({"alertname": "hall_wait", "subject": "hall/main", "subject_kind": "hall"}, "hall-email"),
        ({"alertname": "device_offline", "subject": "gw-1/m1", "subject_kind": "device"}, "ops-email"),
    ],
)
def test_the_sample_route_sends_each_kind_of_alert_where_it_says(
    labels: dict[str, str], receiver: str
) -> None:
    amtool = find_binary("amtool", "prometheus-alertmanager")  # Alertmanager's own route tester
    argv = [amtool, "config", "routes", "test", f"--config.file={SAMPLE}", "severity=major"]
    out = subprocess.run(
        [*argv, *(f"{k}={v}" for k, v in labels.items())], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == receiver


async def test_what_is_due_at_shutdown_is_sent_by_close(alertmanager: Alertmanager) -> None:
    from ingest.alerts.outputs import Outputs

    outputs = Outputs(None, None, alertmanager=AlertmanagerSection(url=alertmanager.url, **FAST))
    assert outputs.alertmanager is not None  # no sender task runs in this test: only close() sends
    now_ms = round(time.time() * 1000)
    outputs.alertmanager.put(alert_msg(fire_ts=now_ms - 1000, ts=now_ms - 1000))
    await outputs.close()
    assert [a["labels"]["subject"] for a in alertmanager.alerts()] == ["gw-1/m1"]  # type: ignore[index]
    outputs.alertmanager.put(alert_msg("resolved", fire_ts=now_ms - 1000, ts=now_ms, end_ts=now_ms))
    await outputs.close()  # a resolution of the last moment is not left to the lease
    assert alertmanager.alerts() == [] and outputs.alertmanager.stats.sent == 2


async def test_a_label_outside_label_keys_changing_while_firing_keeps_one_alert(
    alertmanager: Alertmanager,
) -> None:
    """`inhibits` grows as an outage explains more meters: the same alert to Alertmanager, updated."""
    out = AlertmanagerOutput(AlertmanagerSection(url=alertmanager.url, **FAST))
    now_ms = round(time.time() * 1000)
    first = {"area": "area-1", "region": "urban", "inhibits": "gw-1/m1"}
    out.put(alert_msg(rule="area_outage", subject="area/area-1", labels=first, fire_ts=now_ms, ts=now_ms))
    await out.flush(10)
    more = {**first, "inhibits": "gw-1/m1,gw-1/m2"}
    out.put(alert_msg(rule="area_outage", subject="area/area-1", labels=more, fire_ts=now_ms, ts=now_ms + 1))
    await out.flush(10)
    (got,) = alertmanager.alerts()
    assert got["annotations"]["inhibits"] == "gw-1/m1,gw-1/m2"  # type: ignore[index]
    assert "inhibits" not in got["labels"] and out.stats.sent == 2  # type: ignore[operator]
