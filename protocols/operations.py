"""The contract of the operations topics: billing input and remote cost control's auto-control.

Layer: pure contract (protocols), beside `messages` (what gateways publish and the alerts). Must not:
do I/O or read clocks. Like every contract model, each is decoded by `protocols.topics.decode_payload`
and documented in docs/mqtt-contract.md (generated).

    gridedge/v1/billing/{account}/{kind}              payment | tariff | account, from a billing system
    gridedge/v1/alerts/autocontrol/audit              every decision of auto-control, as it is taken
    gridedge/v1/alerts/autocontrol/pending/{id}       retained while an action awaits an operator
    gridedge/v1/alerts/autocontrol/approve|reject/{id}  an operator's decision (ACL: operators only)

Billing records come from another system (the CSV import and the billing system's adapter), so they
carry no `schema` and their `ts` (when the payment was made, ms) is optional; auto-control's own
records carry `schema` and `ts` like everything gridedge publishes. An operator's decision is `{"by":
"..."}` (a person's name, for the audit); anything else in it is refused.
"""

from __future__ import annotations

from typing import Final, Literal, TypeAlias

import msgspec

from .errors import ContractError
from .messages import MAX_PAYLOAD_BYTES, Int64, _contract_error, _Msg

BillingKind = Literal["payment", "tariff", "account"]
AUTOCONTROL: Final = "autocontrol"  # the reserved rule name under gridedge/v1/alerts/


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


AUTOCONTROL_MODELS: Final[dict[str, type[_Msg]]] = {
    "audit": AutoControlAudit,
    "pending": AutoControlPending,
    "approve": AutoControlDecision,
    "reject": AutoControlDecision,
}

Operation: TypeAlias = (
    Payment | TariffChange | AccountRecord | AutoControlAudit | AutoControlPending | AutoControlDecision
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
