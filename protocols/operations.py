"""The contract of the operations topics: billing input and remote cost control's auto-control.

Layer: pure contract (protocols), beside `messages` (what gateways publish and the alerts). Must not:
do I/O or read clocks. Like every contract model, each is decoded by `protocols.topics.decode_payload`
and documented in docs/mqtt-contract.md (generated).

    gridedge/v1/billing/{account}/{kind}              payment | tariff | account, from a billing system
    gridedge/v1/alerts/autocontrol/audit              every decision of auto-control, as it is taken
    gridedge/v1/alerts/autocontrol/pending/{id}       retained while an action awaits an operator
    gridedge/v1/alerts/autocontrol/approve|reject/{id}  an operator's decision (ACL: operators only)
    gridedge/v1/alerts/action/{verb}                  an operator's action on an alert (ACL per verb)
    gridedge/v1/alerts/action/result                  the alert engine's answer to each action

Billing records come from another system (the CSV import and the billing system's adapter), so they
carry no `schema` and their `ts` (when the payment was made, ms) is optional; auto-control's own
records carry `schema` and `ts` like everything gridedge publishes. An operator's decision is `{"by":
"..."}` (a person's name, for the audit); anything else in it is refused.

An operator's action on an alert (`AlertAction`) names the alert in its payload (`rule`, `subject`:
subjects contain `/`, so they cannot be a topic level before a verb) and the verb in its topic, one
topic per verb so that the broker's ACL can grant them separately (a field crew may report `arrived`
and `note` but not `close`). What each verb needs beyond `by` is checked by `check_action`. The alert
engine answers each action it receives on `.../action/result` (`AlertActionResult`: taken, or refused and
why), so a tool or a work-order system knows what became of it.
"""

from __future__ import annotations

from typing import Annotated, Final, Literal, TypeAlias, get_args

import msgspec

from .errors import ContractError
from .messages import MAX_PAYLOAD_BYTES, MIN_TS_MS, Int64, _contract_error, _Msg

BillingKind = Literal["payment", "tariff", "account"]
AUTOCONTROL: Final = "autocontrol"  # the reserved rule name under gridedge/v1/alerts/
ACTION: Final = "action"  # likewise: operators' actions on alerts, gridedge/v1/alerts/action/{verb}
ActionVerb = Literal["ack", "assign", "arrived", "note", "close", "callback"]
ACTION_VERBS: Final[tuple[str, ...]] = get_args(ActionVerb)


class Payment(_Msg):
    """A payment into a prepaid account: applied once per `id`."""

    id: str
    amount_cny: float
    ts: Int64 | None = None
    account: str = ""  # only on gridedge/v1/billing/{kind}, where the topic does not name it


class TariffChange(_Msg):
    """A tariff change of an account, dated `ts` (default: when it is received)."""

    tariff_cny_kwh: float
    tariffs: list[float] = []
    id: str = ""
    ts: Int64 | None = None
    account: str = ""  # only on gridedge/v1/billing/{kind}, where the topic does not name it


class AccountRecord(_Msg):
    """An account as the billing system knows it; its tariff and opening balance count only when it
    creates the account."""

    meter: str = ""
    customer_class: str = ""
    keep_power: bool | None = None
    mode: Literal["remote", "local"] | None = None
    tariff_cny_kwh: float | None = None
    tariffs: list[float] | None = None
    opening_balance_cny: float | None = None
    ts: Int64 | None = None
    account: str = ""  # only on gridedge/v1/billing/{kind}, where the topic does not name it


BILLING_MODELS: Final[dict[str, type[_Msg]]] = {
    "payment": Payment,
    "tariff": TariffChange,
    "account": AccountRecord,
}


class AutoControlAudit(_Msg):
    """One decision of auto-control on one action (`id`): `awaiting_approval`, `approved`, `rejected`,
    `outside_hours`, `rate_limited`, `sent` (with the signed `command` id and its `expires_at`),
    `result` (the gateway's `status` / `reason`), or why the action was dropped (`keep_power`,
    `no_meter`, `expired`, `superseded`). `created_ts`: when the alert asked for the action."""

    schema: Int64
    ts: Int64
    decision: str
    id: str
    action: str = ""
    account: str = ""
    gw: str = ""
    dev: str = ""
    created_ts: Int64 | None = None
    by: str = ""
    command: str = ""
    expires_at: Int64 | None = None
    status: str = ""
    reason: str = ""


class AutoControlPending(_Msg):
    """An action that waits for an operator's approval (retained; cleared once decided or dropped)."""

    schema: Int64
    ts: Int64
    id: str
    action: str
    account: str
    gw: str
    dev: str
    created_ts: Int64
    state: Literal["awaiting_approval"] = "awaiting_approval"


class AutoControlDecision(_Msg):
    """An operator's approve / reject of a pending action (the topic says which and of what)."""

    by: str = ""


_Name = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
_Text = Annotated[str, msgspec.Meta(max_length=2000)]


class AlertAction(_Msg):
    """An operator's action on the alert `rule` / `subject` (its current one, else its last resolved
    one); the topic's verb says which: `ack` (taken), `assign` (to `crew`: a crew or a person),
    `arrived` (the crew is on site; `ts` is when it arrived), `note`, `close` (the work is done: `cause`
    and `outcome`, the action taken; refused while the alert's condition still holds), `callback` (a
    dissatisfied customer called back: `outcome`; closes the rating's follow-up). `by`: who acted;
    `ts`: when (ms; default: when the alert engine receives it). Each action is recorded in InfluxDB
    (`alert_action`) and moves the alert's `work` state."""

    rule: _Name
    subject: _Name
    by: _Name
    ts: Int64 | None = None
    note: _Text = ""
    crew: _Text = ""
    cause: _Text = ""
    outcome: _Text = ""


class AlertActionResult(_Msg):
    """The alert engine's answer to one operator's action (`action`: the verb; `rule`, `subject`, `by` and
    `action_ts` repeat the action's, so the sender can match it): `accepted`, with the alert's `work`
    state after it, or refused with the `reason` (its condition still holds, no such alert, already
    closed ...). Not retained."""

    schema: Int64
    ts: Int64
    action: str
    rule: str
    subject: str
    by: str
    accepted: bool
    action_ts: Int64 | None = None
    work: str = ""
    reason: str = ""


ACTION_RESULT: Final = "result"  # gridedge/v1/alerts/action/result: not a verb


# what each verb needs besides rule, subject and by
ACTION_REQUIRED: Final[dict[str, tuple[str, ...]]] = {
    "ack": (),
    "assign": ("crew",),
    "arrived": (),
    "note": ("note",),
    "close": ("cause", "outcome"),
    "callback": ("outcome",),
}


def check_action(verb: str, action: AlertAction) -> None:
    """ContractError naming the field an action of `verb` lacks (or the verb, when unknown)."""
    required = ACTION_REQUIRED.get(verb)
    if required is None:
        raise ContractError("topic", f"action {verb!r}: expected one of {', '.join(ACTION_VERBS)}")
    for name in required:
        if not str(getattr(action, name)).strip():
            raise ContractError(f"$.{name}", f"required for action {verb!r}")
    if action.ts is not None and action.ts < MIN_TS_MS:
        raise ContractError("$.ts", f"timestamp {action.ts} is before 2000-01-01 (milliseconds expected)")


AUTOCONTROL_MODELS: Final[dict[str, type[_Msg]]] = {
    "audit": AutoControlAudit,
    "pending": AutoControlPending,
    "approve": AutoControlDecision,
    "reject": AutoControlDecision,
}

Operation: TypeAlias = (
    Payment
    | TariffChange
    | AccountRecord
    | AutoControlAudit
    | AutoControlPending
    | AutoControlDecision
    | AlertAction
    | AlertActionResult
)

_DECODERS: dict[type, msgspec.json.Decoder[object]] = {}


def decode_operation(model: type[_Msg], payload: bytes | str) -> Operation:
    """`payload` as `model`; ContractError naming the field and the reason (as `messages.decode`)."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise ContractError("$", f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD_BYTES} bytes")
    decoder = _DECODERS.get(model)
    if decoder is None:
        decoder = _DECODERS[model] = msgspec.json.Decoder(model)
    try:
        message = decoder.decode(payload)
    except msgspec.ValidationError as exc:
        raise _contract_error(str(exc)) from None
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise ContractError("$", f"not valid JSON: {exc}") from None
    operation: Operation = message  # type: ignore[assignment]  # `model` is one of Operation's members
    return operation


def encode_operation(message: Operation) -> bytes:
    return msgspec.json.encode(message)
