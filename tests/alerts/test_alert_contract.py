"""Every alert state change the engine can produce, as published, decodes with the contract.

Unit level (no broker): the engine's Changes go through `ingest.alerts.outputs.encode`, the one way an
alert becomes a message, and are decoded exactly as a subscriber decodes them (`decode_payload`).
"""

from __future__ import annotations

import json

import pytest

from ingest.alerts.config import FlapSection
from ingest.alerts.engine import Change, Engine
from ingest.alerts.model import Alert, AlertState, Severity, Signal
from ingest.alerts.outputs import Outputs, encode
from protocols import messages as m
from protocols import topics
from protocols.errors import ContractError

from .clock import T0_S


def _decode(change: Change) -> m.Alert:
    a = change.alert
    where = topics.parse_topic(topics.alert_topic(a.rule, a.subject))
    message = topics.decode_payload(where, encode(change))
    assert isinstance(message, m.Alert)
    return message


def _sig(subject: str, active: bool, at: float, **kw: object) -> Signal:
    return Signal("device_offline", subject, active, at, **kw)  # type: ignore[arg-type]


def test_every_kind_of_change_decodes() -> None:
    now = T0_S
    e = Engine([], clock=lambda: now, flap=FlapSection(window_s=600, max_flips=2, hold_s=60))
    labels = {"gw": "gw-1", "dev": "m1", "area": "area-1"}
    changes = e.apply([_sig("gw-1/m1", True, now, value=3, labels=labels, message="offline")], now)
    changes += e.apply([_sig("gw-1/m1", True, now + 1, severity=Severity.MAJOR, labels=labels)], now + 1)
    changes += e.apply([_sig("gw-1/m1", False, now + 2, resolve_message="back after {duration}")], now + 2)
    once = Signal("dissatisfied_rating", "hall/h1/counter-2", True, now + 3, once=True, clear_s=60)
    changes += e.apply([once], now + 3)
    e.clock = lambda: now + 70
    changes += e.tick()
    for flip in range(3):  # flapping: the third firing is damped, its resolution carries `flaps`
        at = now + 100 + 10 * flip
        changes += e.apply([_sig("area/a1/phase-B", True, at)], at)
        changes += e.apply([_sig("area/a1/phase-B", False, at + 5)], at + 5)
    e.clock = lambda: now + 400
    changes += e.tick()

    decoded = [(c, _decode(c)) for c in changes]
    assert {c.kind for c, _ in decoded} == {"firing", "updated", "resolved"}
    by_kind = {(c.alert.subject, c.kind): msg for c, msg in decoded}
    fired = by_kind[("gw-1/m1", "firing")]
    assert (fired.change, fired.state, fired.start_ts, fired.fire_ts) == (
        "firing",
        "firing",
        T0_S * 1000,
        T0_S * 1000,
    )
    assert (fired.subject_kind, fired.gw, fired.dev, fired.labels) == ("device", "gw-1", "m1", labels)
    assert fired.value == 3.0 and fired.ts == round(T0_S * 1000)
    assert by_kind[("gw-1/m1", "updated")].severity == "major"
    resolved = by_kind[("gw-1/m1", "resolved")]
    assert resolved.end_ts is not None and resolved.end_ts - resolved.start_ts == 2000
    assert resolved.message == "back after 2 s"
    rating = by_kind[("hall/h1/counter-2", "resolved")]
    assert rating.subject_kind == "counter" and rating.gw == "" and rating.end_ts is not None
    damped = [msg for c, msg in decoded if c.alert.subject == "area/a1/phase-B" and msg.flaps > 0]
    assert damped and damped[0].subject_kind == "phase"


def test_the_old_payload_is_refused_and_a_time_in_seconds_is_caught() -> None:
    old = {"rule": "device_offline", "subject": "gw-1/m1", "state": "firing", "severity": "warning",
           "started_at": T0_S, "fired_at": T0_S, "ended_at": None, "duration_s": None, "value": None,
           "message": "", "labels": {}, "flaps": 0}  # fmt: skip
    where = topics.parse_topic(topics.alert_topic("device_offline", "gw-1/m1"))
    with pytest.raises(ContractError, match="unknown field"):
        topics.decode_payload(where, json.dumps(old).encode())
    a = Alert("device_offline", "gw-1/m1", AlertState.FIRING, Severity.WARNING, 1_000.0, fired_at=1_000.0)
    with pytest.raises(ContractError) as err:
        encode(Change("firing", a, T0_S))
    assert err.value.field == "$.start_ts"


async def test_outputs_count_what_the_contract_refuses() -> None:
    outputs = Outputs(None, None)
    good = Alert("device_offline", "gw-1/m1", AlertState.FIRING, Severity.WARNING, T0_S, fired_at=T0_S)
    bad = Alert("device_offline", "gw-1/m2", AlertState.FIRING, Severity.WARNING, 5.0, fired_at=T0_S)
    await outputs.emit([Change("firing", good, T0_S), Change("firing", bad, T0_S)])
    assert outputs.stats.contract_refused == 1
