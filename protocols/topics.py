"""MQTT topic builders and parsers for contract v1.

Layer: pure contract (protocols). See the topic table in docs/mqtt-contract.md.

    gridedge/v1/{gw}/status                 retained gateway birth / Last Will
    gridedge/v1/{gw}/{dev}/reading
    gridedge/v1/{gw}/{dev}/event
    gridedge/v1/{gw}/{dev}/health           retained
    gridedge/v1/{gw}/{dev}/cmd
    gridedge/v1/{gw}/{dev}/cmd/result
    gridedge/v1/alerts/{rule}/{subject}     retained while firing
    gridedge/v1/deadletter                  payloads the ingest refused, with the reason
    gridedge/v1/billing/[{account}/]{kind}  payments, tariff changes, accounts for the alert engine
    gridedge/v1/alerts/autocontrol/audit    auto-control's decisions
    gridedge/v1/alerts/autocontrol/pending/{id}         retained while awaiting an operator
    gridedge/v1/alerts/autocontrol/(approve|reject)/{id}  an operator's decision
    gridedge/v1/alerts/action/{verb}        an operator's action on an alert (ack, assign, arrived,
                                            note, close, callback; the alert is named in the payload)
    gridedge/v1/alerts/action/result        the alert engine's answer to each action
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from . import messages as m
from . import operations as ops
from .errors import ContractError
from .messages import check_id

PREFIX: Final = "gridedge/v1"


class TopicKind(enum.StrEnum):
    STATUS = "status"
    READING = "reading"
    EVENT = "event"
    HEALTH = "health"
    CMD = "cmd"
    CMD_RESULT = "cmd/result"
    ALERT = "alert"
    DEADLETTER = "deadletter"
    BILLING = "billing"
    AUTOCONTROL = "autocontrol"
    ALERT_ACTION = "alert_action"
    ALERT_ACTION_RESULT = "alert_action_result"


_DEVICE_KINDS: Final = {
    k.value: k for k in (TopicKind.READING, TopicKind.EVENT, TopicKind.HEALTH, TopicKind.CMD)
}


@dataclass(frozen=True, slots=True)
class Topic:
    kind: TopicKind
    gw: str = ""
    dev: str = ""
    rule: str = ""
    subject: str = ""


def status_topic(gw: str) -> str:
    return f"{PREFIX}/{gw}/status"


def device_topic(gw: str, dev: str, kind: TopicKind) -> str:
    if kind not in (*_DEVICE_KINDS.values(), TopicKind.CMD_RESULT):
        raise ValueError(f"{kind} is not a per-device topic")
    return f"{PREFIX}/{gw}/{dev}/{kind.value}"


def reading_topic(gw: str, dev: str) -> str:
    return device_topic(gw, dev, TopicKind.READING)


def event_topic(gw: str, dev: str) -> str:
    return device_topic(gw, dev, TopicKind.EVENT)


def health_topic(gw: str, dev: str) -> str:
    return device_topic(gw, dev, TopicKind.HEALTH)


def cmd_topic(gw: str, dev: str) -> str:
    return device_topic(gw, dev, TopicKind.CMD)


def cmd_result_topic(gw: str, dev: str) -> str:
    return device_topic(gw, dev, TopicKind.CMD_RESULT)


def alert_topic(rule: str, subject: str) -> str:
    return f"{PREFIX}/alerts/{rule}/{subject}"


def action_topic(verb: str) -> str:
    """Where an operator's action of `verb` on an alert goes (the alert is named in the payload)."""
    return f"{PREFIX}/alerts/{ops.ACTION}/{verb}"


# what the alert engine subscribes to: each verb, not `+` (its own answers on .../result are not for it)
ACTION_FILTERS: Final = tuple(action_topic(verb) for verb in ops.ACTION_VERBS)
ACTION_RESULT_TOPIC: Final = action_topic(ops.ACTION_RESULT)

DEADLETTER_TOPIC: Final = f"{PREFIX}/deadletter"


def billing_topic(kind: str) -> str:
    return f"{PREFIX}/billing/{kind}"


def gateway_filter(kind: TopicKind, gw: str = "+") -> str:
    """Subscription filter for one topic kind (all gateways by default)."""
    if kind is TopicKind.STATUS:
        return f"{PREFIX}/{gw}/status"
    if kind is TopicKind.ALERT:
        return f"{PREFIX}/alerts/#"
    return f"{PREFIX}/{gw}/+/{kind.value}"


def parse_topic(topic: str) -> Topic:
    """Parse a contract topic; raise ContractError('topic', why) for anything else."""
    parts = topic.split("/")
    if len(parts) < 3 or f"{parts[0]}/{parts[1]}" != PREFIX:
        raise ContractError("topic", f"{topic!r} is not under {PREFIX}/")
    rest = parts[2:]
    head = rest[0]
    if head == "alerts" and len(rest) > 1 and rest[1] == ops.AUTOCONTROL:
        return _autocontrol_topic(topic, rest[2:])
    if head == "alerts" and len(rest) > 1 and rest[1] == ops.ACTION:
        if rest[2:] == [ops.ACTION_RESULT]:
            return Topic(TopicKind.ALERT_ACTION_RESULT)
        if len(rest) != 3 or rest[2] not in ops.ACTION_VERBS:
            verbs = "|".join(ops.ACTION_VERBS)
            raise ContractError(
                "topic", f"{topic!r}: action topics are {PREFIX}/alerts/action/({verbs}|result)"
            )
        return Topic(TopicKind.ALERT_ACTION, rule=rest[2])
    if head == "alerts":
        if len(rest) < 3 or not rest[1] or not all(rest[2:]):
            raise ContractError("topic", f"{topic!r}: alert topics are {PREFIX}/alerts/RULE/SUBJECT")
        return Topic(TopicKind.ALERT, rule=rest[1], subject="/".join(rest[2:]))
    if head == "deadletter" and len(rest) == 1:
        return Topic(TopicKind.DEADLETTER)
    if head == "billing":
        if len(rest) not in (2, 3) or not all(rest[1:]):
            raise ContractError("topic", f"{topic!r}: billing topics are {PREFIX}/billing/[ACCOUNT/]KIND")
        return Topic(TopicKind.BILLING, subject="/".join(rest[1:]))
    _check_topic_id("gw", head, topic)
    if len(rest) == 2 and rest[1] == "status":
        return Topic(TopicKind.STATUS, gw=head)
    if len(rest) == 3 and rest[2] in _DEVICE_KINDS:
        _check_topic_id("dev", rest[1], topic)
        return Topic(_DEVICE_KINDS[rest[2]], gw=head, dev=rest[1])
    if len(rest) == 4 and rest[2:] == ["cmd", "result"]:
        _check_topic_id("dev", rest[1], topic)
        return Topic(TopicKind.CMD_RESULT, gw=head, dev=rest[1])
    raise ContractError("topic", f"{topic!r} matches no topic of contract v1")


def _autocontrol_topic(topic: str, rest: list[str]) -> Topic:
    """`rule` is what the message is (audit, pending, approve, reject), `subject` the action's id."""
    if rest == ["audit"]:
        return Topic(TopicKind.AUTOCONTROL, rule="audit")
    if len(rest) == 2 and rest[0] in ("pending", "approve", "reject") and rest[1]:
        return Topic(TopicKind.AUTOCONTROL, rule=rest[0], subject=rest[1])
    shape = f"{PREFIX}/alerts/autocontrol/(audit|pending/ID|approve/ID|reject/ID)"
    raise ContractError("topic", f"{topic!r}: auto-control topics are {shape}")


def _check_topic_id(name: str, value: str, topic: str) -> None:
    try:
        check_id(f"$.{name}", value)
    except ContractError as exc:
        raise ContractError("topic", f"{topic!r}: {name} {exc.reason}") from None


# The payload model each topic kind carries (billing and auto-control: by sub-topic, `protocols.operations`).
MODELS: Final[Mapping[TopicKind, type[m.Message]]] = MappingProxyType(
    {
        TopicKind.STATUS: m.Status,
        TopicKind.READING: m.Reading,
        TopicKind.EVENT: m.Event,
        TopicKind.HEALTH: m.Health,
        TopicKind.CMD: m.Command,
        TopicKind.CMD_RESULT: m.CommandResult,
        TopicKind.ALERT: m.Alert,
        TopicKind.DEADLETTER: m.DeadLetter,
    }
)


def decode_payload(where: Topic, payload: bytes, *, now_ms: int | None = None) -> m.Message | ops.Operation:
    """`payload` as the model its topic carries (every topic of the contract has one); ContractError
    when it is not one, or when its `gw` / `dev` disagree with the topic's."""
    if where.kind is TopicKind.BILLING:
        kind = where.subject.rsplit("/", 1)[-1]
        if kind not in ops.BILLING_MODELS:
            expected = ", ".join(ops.BILLING_MODELS)
            raise ContractError("topic", f"billing kind {kind!r}: expected one of {expected}")
        return ops.decode_operation(ops.BILLING_MODELS[kind], payload)
    if where.kind is TopicKind.AUTOCONTROL:
        return ops.decode_operation(ops.AUTOCONTROL_MODELS[where.rule], payload)
    if where.kind is TopicKind.ALERT_ACTION:
        action = ops.decode_operation(ops.AlertAction, payload)
        assert isinstance(action, ops.AlertAction)
        ops.check_action(where.rule, action)
        return action
    if where.kind is TopicKind.ALERT_ACTION_RESULT:
        return ops.decode_operation(ops.AlertActionResult, payload)
    return decode_message(where, payload, now_ms=now_ms)


def decode_message(where: Topic, payload: bytes, *, now_ms: int | None = None) -> m.Message:
    """`decode_payload` for the topics of `MODELS` (what gateways and the alert engine publish): a
    gateway speaks only for itself and its own devices, so `gw` / `dev` must agree with the topic."""
    model = MODELS.get(where.kind)
    if model is None:
        raise ContractError("topic", f"{where.kind.value} topics carry no contract model")
    message: m.Message = m.decode(model, payload, now_ms=now_ms)  # type: ignore[type-var]  # any of M
    if where.gw and getattr(message, "gw", "") != where.gw:
        raise ContractError(
            "$.gw", f"payload gateway {getattr(message, 'gw', '')!r} != topic gateway {where.gw!r}"
        )
    if where.dev and getattr(message, "dev", "") != where.dev:
        raise ContractError(
            "$.dev", f"payload device {getattr(message, 'dev', '')!r} != topic device {where.dev!r}"
        )
    return message
