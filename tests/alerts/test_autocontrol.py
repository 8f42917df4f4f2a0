"""Automatic trip / reconnect through the real broker and InfluxDB (the `alert_harness`): signed commands
on the cmd topic, keep-power, working hours, approval, rate limit, reconnection, off by default."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ingest.alerts.autocontrol import APPROVE, AUDIT_TOPIC, PENDING, REJECT
from ingest.alerts.costcontrol import rule as costcontrol
from protocols import messages as m
from protocols import topics
from protocols.signing import verify

from .conftest import _Client

GW = "gw-ac"
KEY = b"test-command-key-0123456789"
# Monday 2025-11-24 10:00 at UTC+8 (a working day, inside 08:00-17:00)
MONDAY_10 = datetime(2025, 11, 24, 2, 0, tzinfo=UTC).timestamp()
# the same Monday 20:00 local: outside the hours
MONDAY_20 = datetime(2025, 11, 24, 12, 0, tzinfo=UTC).timestamp()
CMD_FILTER = "gridedge/v1/+/+/cmd"


def _topology(n: int) -> dict[str, Any]:
    return {
        "gateways": {GW: {"site": "s1"}},
        "areas": {"area-1": {"region": "urban"}},
        "devices": {f"{GW}/m{i}": {"area": "area-1", "account": f"A-{i}"} for i in range(1, n + 1)},
    }


class Watch:
    """Collects commands and audit records (a second MQTT client on the same broker)."""

    def __init__(self, port: int) -> None:
        self.marker = "gridedge-test/ac-marker"
        self.client = _Client(port, [CMD_FILTER, AUDIT_TOPIC, f"{PENDING}+", self.marker])

    async def messages(self) -> list[Any]:
        """What arrived, each checked against the contract: every command, audit record and pending
        action auto-control publishes decodes with `decode_payload` (an empty payload clears a retained
        topic and carries nothing)."""
        got = await asyncio.to_thread(self.client.until_marker, self.marker)
        for x in got:
            if x.payload and x.topic != self.marker:
                topics.decode_payload(topics.parse_topic(x.topic), x.payload)
        return got

    async def commands(self) -> list[dict[str, Any]]:
        return [json.loads(x.payload) for x in await self.messages() if x.topic.endswith("/cmd")]

    async def audit(self) -> list[dict[str, Any]]:
        return [json.loads(x.payload) for x in await self.messages() if x.topic == AUDIT_TOPIC]

    async def decisions(self) -> list[tuple[str, str]]:
        return [(a["account"], a["decision"]) for a in await self.audit()]


async def _start(alert_harness: Any, tmp_path: Path, n: int = 1, start: float = MONDAY_10, **ac: Any) -> Any:
    key_file = tmp_path / "command.key"
    key_file.write_bytes(KEY + b"\n")
    autocontrol = {"enabled": True, "approval": False, "key_file": str(key_file), **ac}
    h = await alert_harness(
        topology=_topology(n),
        rules={"costcontrol": {"ledger_path": str(tmp_path / "ledger.sqlite")}},
        sets=[costcontrol.RULESET],
        start=start,
        alerts={"autocontrol": autocontrol},
    )
    h.ac = Watch(h.mosquitto.port)
    return h


async def _billing(h: Any, kind: str, account: str, **data: Any) -> None:
    await h.publish(topics.billing_topic(kind), json.dumps({"account": account, **data}).encode())


async def _reading(h: Any, i: int, seq: int, kwh: float, later_s: float = 0.0) -> None:
    values: dict[str, m.Scalar] = {"energy_import_kwh": kwh}
    msg = m.Reading(schema=1, gw=GW, dev=f"m{i}", seq=seq, ts=h.ms(later_s), values=values)
    await h.publish(topics.reading_topic(GW, f"m{i}"), msg)


async def _into_arrears(h: Any, i: int, keep_power: bool = False) -> None:
    """Account A-{i}: 5 CNY at 1 CNY/kWh, then 10 kWh used: -5 CNY, arrears fires at once."""
    await _billing(h, "account", f"A-{i}", tariff_cny_kwh=1.0, opening_balance_cny=5.0, keep_power=keep_power)
    await _reading(h, i, 1, 1000.0)
    await _reading(h, i, 2, 1010.0, 60)
    assert h.engine.firing("arrears", f"account/A-{i}") is not None


def _check(cmd: dict[str, Any], h: Any, dev: str, action: str, ttl_s: float = 300.0) -> None:
    assert verify(cmd, [KEY]), "signature does not verify"
    assert not verify(cmd, [b"another key"])
    decoded = m.decode(m.Command, json.dumps(cmd).encode())  # the contract shape, exactly
    assert (decoded.gw, decoded.dev, decoded.action, decoded.params) == (GW, dev, action, {})
    assert decoded.issued_at == h.ms()
    assert decoded.expires_at - decoded.issued_at == round(ttl_s * 1000)
    assert len(decoded.nonce) >= 16 and decoded.id


def _influx_audit(h: Any) -> list[dict[str, Any]]:
    rows = []
    for series in h.influxdb.query("SELECT * FROM autocontrol"):
        rows += [dict(zip(series["columns"], v, strict=True)) for v in series["values"]]
    return sorted(rows, key=lambda r: r["time"])


async def test_arrears_trip_result_and_payment_reconnect(alert_harness: Any, tmp_path: Path) -> None:
    h = await _start(alert_harness, tmp_path, command_ttl_s=120)
    await _into_arrears(h, 1)
    [trip] = await h.ac.commands()
    _check(trip, h, "m1", "trip", ttl_s=120)
    assert await h.ac.decisions() == [("A-1", "sent")]

    await h.advance(5)
    result = m.CommandResult(schema=1, gw=GW, dev="m1", seq=1, ts=h.ms(), id=trip["id"], status="done",
                             state={"relay": "open"})  # fmt: skip
    await h.publish(topics.cmd_result_topic(GW, "m1"), result)
    audit = await h.ac.audit()
    assert [(a["decision"], a.get("status"), a.get("command")) for a in audit][-1] == (
        "result",
        "done",
        trip["id"],
    )

    await h.advance(600)
    await _billing(h, "payment", "A-1", id="P-1", amount_cny=100.0, ts=h.ms())
    commands = await h.ac.commands()
    assert [c["action"] for c in commands] == ["trip", "allow_close"]
    _check(commands[1], h, "m1", "allow_close", ttl_s=120)
    assert [d for _, d in await h.ac.decisions()] == ["sent", "result", "sent"]

    await h.advance(1)  # the audit reached InfluxDB too
    rows = _influx_audit(h)
    assert [(r["decision"], r["action"], r["account"]) for r in rows] == [
        ("sent", "trip", "A-1"), ("result", "trip", "A-1"), ("sent", "allow_close", "A-1"),
    ]  # fmt: skip
    assert all(KEY.decode() not in json.dumps(r) for r in rows)


async def test_keep_power_account_is_never_tripped(alert_harness: Any, tmp_path: Path) -> None:
    h = await _start(alert_harness, tmp_path, n=2, reconnect_action="close")
    await _into_arrears(h, 1, keep_power=True)
    await _into_arrears(h, 2)
    commands = await h.ac.commands()
    assert [(c["dev"], c["action"]) for c in commands] == [("m2", "trip")]
    assert await h.ac.decisions() == [("A-1", "keep_power"), ("A-2", "sent")]
    await _billing(h, "payment", "A-1", id="P-1", amount_cny=100.0, ts=h.ms())
    await _billing(h, "payment", "A-2", id="P-2", amount_cny=100.0, ts=h.ms())
    assert [(c["dev"], c["action"]) for c in await h.ac.commands()] == [("m2", "trip"), ("m2", "close")]
    assert (await h.ac.decisions())[2:] == [("A-1", "keep_power"), ("A-2", "sent")]


async def test_outside_hours_is_deferred_to_the_next_working_morning(
    alert_harness: Any, tmp_path: Path
) -> None:
    h = await _start(alert_harness, tmp_path, start=MONDAY_20, holidays=["2025-11-25"])
    await _into_arrears(h, 1)
    assert await h.ac.commands() == []
    assert await h.ac.decisions() == [("A-1", "outside_hours")]
    await h.advance(12 * 3600)  # Tuesday 08:00, but a holiday
    await h.advance(11 * 3600)  # Tuesday 19:00
    assert await h.ac.commands() == []
    assert await h.ac.decisions() == [("A-1", "outside_hours")]  # audited once, not every tick
    await h.advance(13 * 3600 + 60)  # Wednesday 08:01
    [trip] = await h.ac.commands()
    _check(trip, h, "m1", "trip")
    assert await h.ac.decisions() == [("A-1", "outside_hours"), ("A-1", "sent")]


async def test_approval_holds_the_trip_until_an_operator_approves(alert_harness: Any, tmp_path: Path) -> None:
    h = await _start(alert_harness, tmp_path, n=2, approval=True)
    await _into_arrears(h, 1)
    await _into_arrears(h, 2)
    assert await h.ac.commands() == []
    audit = await h.ac.audit()
    assert [(a["account"], a["decision"]) for a in audit] == [
        ("A-1", "awaiting_approval"), ("A-2", "awaiting_approval"),
    ]  # fmt: skip
    ids = {a["account"]: a["id"] for a in audit}
    pending = {x.topic: json.loads(x.payload) for x in await h.ac.messages() if x.topic.startswith(PENDING)}
    assert pending[PENDING + ids["A-1"]]["action"] == "trip"

    await h.restart()  # the held actions survive a restart
    await h.publish(APPROVE + ids["A-1"], json.dumps({"by": "operator-7"}).encode())
    await h.publish(REJECT + ids["A-2"], b"")
    [trip] = await h.ac.commands()
    _check(trip, h, "m1", "trip")
    decisions = [(a["account"], a["decision"], a.get("by")) for a in await h.ac.audit()][2:]
    assert decisions == [("A-1", "approved", "operator-7"), ("A-1", "sent", None), ("A-2", "rejected", None)]
    # the pending topics were cleared: a late dashboard sees none
    late = _Client(h.mosquitto.port, [f"{PENDING}+", "gridedge-test/late"])
    try:
        assert [x for x in late.until_marker("gridedge-test/late") if x.payload] == []
    finally:
        late.close()
    await h.publish(APPROVE + ids["A-2"], b"")  # too late: ignored
    assert len(await h.ac.commands()) == 1


async def test_rate_limit_defers_the_excess(alert_harness: Any, tmp_path: Path) -> None:
    h = await _start(alert_harness, tmp_path, n=3, max_per_minute=2, max_per_hour=3)
    for i in (1, 2, 3):
        await _into_arrears(h, i)
    assert [c["dev"] for c in await h.ac.commands()] == ["m1", "m2"]
    assert await h.ac.decisions() == [("A-1", "sent"), ("A-2", "sent"), ("A-3", "rate_limited")]
    await h.advance(61)
    assert [c["dev"] for c in await h.ac.commands()] == ["m1", "m2", "m3"]
    assert (await h.ac.decisions())[3:] == [("A-3", "sent")]
    await _billing(h, "payment", "A-1", id="P-1", amount_cny=100.0, ts=h.ms())
    await h.advance(120)  # per hour: 3 sent in the last hour, the reconnection waits
    assert len(await h.ac.commands()) == 3
    assert (await h.ac.decisions())[4:] == [("A-1", "rate_limited")]
    await h.advance(3600)
    assert [c["action"] for c in await h.ac.commands()][3:] == ["allow_close"]


async def test_disabled_by_default_publishes_nothing(alert_harness: Any, tmp_path: Path) -> None:
    h = await alert_harness(
        topology=_topology(1),
        rules={"costcontrol": {"ledger_path": str(tmp_path / "ledger.sqlite")}},
        sets=[costcontrol.RULESET],
        start=MONDAY_10,
    )
    h.ac = Watch(h.mosquitto.port)
    assert h.role.autocontrol is None and not h.cfg.alerts.autocontrol.enabled
    await _into_arrears(h, 1)
    await _billing(h, "payment", "A-1", id="P-1", amount_cny=100.0, ts=h.ms())
    await h.advance(60)
    assert await h.ac.messages() == []
