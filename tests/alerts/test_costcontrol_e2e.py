"""Cost-control acceptance end to end: billing over MQTT, readings, the alerts role on a real broker and
InfluxDB in compressed time (the `alert_harness` fixture of tests/alerts/conftest.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ingest.alerts.costcontrol import rule as costcontrol
from protocols import messages as m
from protocols import topics

GW = "gw-cc"
DEV = "m1"
ACCOUNT = "A-1"
SUBJECT = f"account/{ACCOUNT}"
H = 3600.0
TOPOLOGY = {
    "gateways": {GW: {"site": "s1"}},
    "areas": {"area-1": {"region": "urban"}},
    "devices": {f"{GW}/{DEV}": {"area": "area-1", "phase": "A", "account": ACCOUNT}},
}


async def _billing(h: Any, kind: str, **data: Any) -> None:
    # gridedge/v1/billing/{kind} with the account in the payload: the form protocols.topics accepts
    await h.publish(topics.billing_topic(kind), json.dumps({"account": ACCOUNT, **data}).encode())


async def _reading(h: Any, seq: int, kwh: float, relay: str) -> None:
    values: dict[str, m.Scalar] = {"energy_import_kwh": kwh, "relay": relay, "relay_commanded": relay}
    msg = m.Reading(schema=1, gw=GW, dev=DEV, seq=seq, ts=h.ms(), values=values)
    await h.publish(topics.reading_topic(GW, DEV), msg)


def _state(h: Any, rule: str) -> str | None:
    alert = h.retained_alerts().get((rule, SUBJECT))
    return None if alert is None else str(alert["state"])


async def test_ladder_payment_and_reconnection(alert_harness: Any, tmp_path: Path) -> None:
    rules = {"costcontrol": {"ledger_path": str(tmp_path / "ledger.sqlite")}}
    h = await alert_harness(topology=TOPOLOGY, rules=rules, sets=[costcontrol.RULESET])
    await _billing(h, "account", tariff_cny_kwh=1.0, opening_balance_cny=60.0)
    await _reading(h, 1, 1000.0, "closed")
    for seq, kwh in [(2, 1015.0), (3, 1055.0), (4, 1065.0)]:  # 45 reminder, 5 warning, -5 arrears
        await h.advance(6 * H)
        await _reading(h, seq, kwh, "closed")
        await h.advance(1)
        retained = h.retained_alerts()
        low, arrears = retained.get(("balance_low", SUBJECT)), retained.get(("arrears", SUBJECT))
        if seq == 2:
            assert low is not None and low["severity"] == "info" and arrears is None
        elif seq == 3:
            assert low is not None and low["severity"] == "warning"
        else:
            assert arrears is not None and arrears["state"] == "firing" and low is None
    await _reading(h, 5, 1065.0, "open")  # tripped
    await h.advance(H)
    paid_at = h.now
    await _billing(h, "payment", id="P-1", amount_cny=100.0, ts=h.ms())
    await _billing(h, "payment", id="P-1", amount_cny=100.0, ts=h.ms())  # redelivered: applied once
    await h.advance(1)
    assert _state(h, "arrears") is None
    await h.advance(24 * H)
    assert _state(h, "reconnect_overdue") == "firing"
    await h.restart()  # mid-scenario: neither lost nor fired twice
    await h.advance(H)
    assert _state(h, "reconnect_overdue") == "firing"
    await _reading(h, 6, 1066.0, "closed")
    await h.advance(1)
    assert _state(h, "reconnect_overdue") is None

    rows = [r for r in h.influx_alerts() if r["subject"] == SUBJECT]
    overdue = [r for r in rows if r["rule"] == "reconnect_overdue"]
    assert [r["state"] for r in sorted(overdue, key=lambda r: r["time"])] == ["firing", "resolved"]
    assert {("arrears", "firing"), ("arrears", "resolved")} <= {(r["rule"], r["state"]) for r in rows}
    messages = [(t, p) for t, p, _ in await h.alert_messages() if p is not None]
    fired = [p for t, p in messages if t == topics.alert_topic("reconnect_overdue", SUBJECT)]
    assert [p["state"] for p in fired] == ["firing", "resolved"]
    assert fired[-1]["value"] == h.now - 1 - paid_at  # payment -> relay read back closed
