"""The operators' action contract (topics, payload checks) and the work-state rules, without I/O."""

from __future__ import annotations

import msgspec
import pytest

from ingest.alerts.actions import Action, action_of, decode, judge
from ingest.alerts.model import Alert, AlertState, Inbound, Severity
from ingest.alerts.work import WorkDesk
from ingest.config import IngestConfig
from ingest.report.settings import context
from ingest.topology import Topology
from protocols import operations as ops
from protocols import topics
from protocols.config import load
from protocols.errors import ContractError


def _payload(**fields: object) -> bytes:
    return msgspec.json.encode({"rule": "area_outage", "subject": "area/a1", "by": "wang", **fields})


def test_action_topics_parse_and_decode_with_decode_payload() -> None:
    where = topics.parse_topic("gridedge/v1/alerts/action/close")
    assert (where.kind, where.rule) == (topics.TopicKind.ALERT_ACTION, "close")
    got = topics.decode_payload(where, _payload(cause="fuse", outcome="replaced"))
    assert isinstance(got, ops.AlertAction) and got.cause == "fuse"
    # the alert topics beside them are unchanged (a subject may still contain '/')
    alert = topics.parse_topic("gridedge/v1/alerts/area_outage/area/a1")
    assert (alert.kind, alert.rule, alert.subject) == (topics.TopicKind.ALERT, "area_outage", "area/a1")


@pytest.mark.parametrize(
    ("topic", "payload", "field"),
    [
        ("gridedge/v1/alerts/action/close", _payload(cause="fuse"), "$.outcome"),
        ("gridedge/v1/alerts/action/assign", _payload(), "$.crew"),
        ("gridedge/v1/alerts/action/callback", _payload(outcome="  "), "$.outcome"),
        ("gridedge/v1/alerts/action/ack", _payload(by=""), "$.by"),
        ("gridedge/v1/alerts/action/ack", _payload(colour="red"), "$"),
        ("gridedge/v1/alerts/action/ack", _payload(ts=1_700_000_000), "$.ts"),
    ],
)
def test_bad_actions_are_refused_naming_the_field(topic: str, payload: bytes, field: str) -> None:
    with pytest.raises(ContractError) as exc:
        decode(topic, payload)
    assert exc.value.field == field


@pytest.mark.parametrize("topic", ["gridedge/v1/alerts/action/escalate", "gridedge/v1/alerts/action/ack/x"])
def test_unknown_verbs_are_refused(topic: str) -> None:
    with pytest.raises(ContractError) as exc:
        topics.parse_topic(topic)
    assert exc.value.field == "topic" and "action topics are" in exc.value.reason


def test_the_engine_sees_the_action_typed_again() -> None:
    inbound = decode("gridedge/v1/alerts/action/arrived", _payload(crew="crew-3", ts=1_763_800_000_500))
    assert action_of(inbound) == Action(
        "arrived", "area_outage", "area/a1", "wang", 1_763_800_000.5, crew="crew-3"
    )


def _alert(state: AlertState = AlertState.FIRING) -> Alert:
    return Alert("area_outage", "area/a1", state, Severity.CRITICAL, started_at=1_763_800_000.0)


def _act(verb: str, **kw: str) -> Action:
    return Action(verb, "area_outage", "area/a1", "wang", **kw)  # type: ignore[arg-type]


def work(a: Alert) -> str:
    return a.work


def test_work_moves_forward_only_and_close_waits_for_the_condition_to_end() -> None:
    a = _alert()
    assert judge(a, _act("assign", crew="crew-3"), 10.0) is None and work(a) == "assigned"
    assert judge(a, _act("ack"), 11.0) is None and work(a) == "assigned"  # a late ack does not go back
    assert judge(a, _act("arrived"), 12.0) is None and (work(a), a.arrived_at) == ("on_site", 12.0)
    assert judge(a, _act("arrived", crew="crew-9"), 13.0) is None and a.arrived_at == 12.0  # first crew
    reason = judge(a, _act("close", cause="x", outcome="y"), 14.0)
    assert reason is not None and "still holds" in reason and work(a) == "on_site"
    a.state = AlertState.RESOLVED
    assert judge(a, _act("close", cause="x", outcome="y"), 15.0) is None and work(a) == "closed"
    assert judge(a, _act("ack"), 16.0) == "its work is already closed"
    assert judge(a, _act("note", note="report filed"), 17.0) is None


def test_a_callback_is_for_ratings() -> None:
    assert judge(_alert(), _act("callback", outcome="ok"), 1.0) is not None
    follow = Alert("rating_followup", "hall/h/counter-1/ticket-1", AlertState.PENDING, Severity.MAJOR, 0.0)
    call = Action("callback", "rating_followup", follow.subject, "li", outcome="satisfied")
    assert judge(follow, call, 1.0) is None and work(follow) == "closed"  # before its deadline: allowed


def test_the_report_counts_callbacks_against_the_followup_rules_deadline() -> None:
    doc = '{"alerts": {"rules": {"followup": {"callback_deadline_s": 7200}}}}'
    cfg = load(IngestConfig, doc, source="test", environ={})
    assert context(cfg, Topology.empty(), 0.0).callback_deadline_s == 7200.0


class _Engine:
    """The two engine calls the desk makes, over one alert."""

    def __init__(self, alert: Alert | None, now: float) -> None:
        self.alert, self.now, self.amended = alert, now, 0

    def clock(self) -> float:
        return self.now

    def get(self, rule: str, subject: str) -> Alert | None:
        return self.alert if self.alert is not None and self.alert.key == (rule, subject) else None

    def amend(self, rule: str, subject: str, now: float) -> None:
        self.amended += 1


def _inbound(verb: str, ts_s: float | None = None, **fields: str) -> Inbound:
    ts = {} if ts_s is None else {"ts": round(ts_s * 1000)}
    return decode(topics.action_topic(verb), _payload(**ts, **fields))


def test_the_desk_records_taken_actions_and_counts_the_others() -> None:
    now = 1_763_800_000.0
    engine = _Engine(_alert(), now)
    desk = WorkDesk(engine)
    assert desk.act(_inbound("ack", note="on it")) == [] and engine.amended == 1
    assert desk.take_lines() == [
        'alert_action,action=ack,rule=area_outage,subject=area/a1 by="wang",note="on it",crew="",cause="",'
        f'outcome="",work_state="acknowledged" {round(now * 1000)}'
    ]
    desk.act(_inbound("arrived", ts_s=now + 3600))  # an hour ahead of the engine's clock
    desk.act(_inbound("close", cause="c", outcome="o"))  # still firing
    assert (desk.stats.actions, desk.stats.refused, engine.amended, desk.take_lines()) == (1, 2, 1, [])
    where = topics.parse_topic(topics.ACTION_RESULT_TOPIC)
    answers = [topics.decode_payload(where, body) for body in desk.take_results()]
    assert [(a.action, a.accepted, a.work, a.reason) for a in answers] == [  # type: ignore[union-attr]
        ("ack", True, "acknowledged", ""),
        ("arrived", False, "", "its time is in the future"),
        ("close", False, "", "its condition still holds (firing): acknowledge it; close it once resolved"),
    ]
    assert answers[1].action_ts == round((now + 3600) * 1000)  # type: ignore[union-attr]
    other = WorkDesk(_Engine(None, now))
    other.act(_inbound("ack"))
    assert other.stats.unknown == 1 and other.take_lines() == []
    assert b"no such alert" in other.take_results()[0]
    shared = WorkDesk(_Engine(None, now), partitioned=True)  # another partition holds it and answers
    shared.act(_inbound("ack"))
    assert shared.stats.unknown == 1 and shared.take_results() == []
    assert desk.act(Inbound("gridedge/v1/gw/m1/reading", "gw", "m1", {})) == []  # not an action
