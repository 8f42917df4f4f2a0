"""The MQTT message contract, version 1: payload models, strict decoding, fast JSON.

Layer: pure contract (protocols). No I/O and no clock: callers pass `now_ms` where a check needs one.
Must not: import asyncio, MQTT or database clients.

Every payload carries `schema` (version), `ts` (acquisition time, UTC epoch milliseconds), `gw`, `dev`
(empty for gateway-wide messages) and a per-gateway monotonically increasing `seq`. Decoding is done
by msgspec (measured in bench/contract_json.py: several times faster than pydantic), then the
semantic checks msgspec cannot express (vocabulary, identifiers, time bounds) run here. Every failure
is a `ContractError` naming the JSON path of the offending field.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Collection
from typing import Annotated, Any, Final, Literal, TypeAlias, TypeVar

import msgspec

from .errors import ContractError
from .vocabulary import VOCABULARY, ValueType

SCHEMA_VERSION: Final = 1
MAX_PAYLOAD_BYTES: Final = 256 * 1024
# Acquisition timestamps before this (2000-01-01) are absurd: a meter clock or a gateway without RTC.
MIN_TS_MS: Final = 946_684_800_000
# Acquisition timestamps more than this ahead of the receiver's clock are absurd.
MAX_FUTURE_MS: Final = 24 * 3600 * 1000

_ID_RE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")

# Integers InfluxDB (int64) and every consumer can hold: a 400-digit number is a contract error, not an
# OverflowError deep inside a receiver.
Int64: TypeAlias = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]
Scalar: TypeAlias = bool | Int64 | float | str
Quality: TypeAlias = Literal["good", "stale", "error"]
Source: TypeAlias = Literal["live", "frozen", "backfilled"]
HealthState: TypeAlias = Literal["online", "degraded", "quarantined", "probing", "offline"]
CommandStatus: TypeAlias = Literal["accepted", "rejected", "done", "failed"]
AlertState: TypeAlias = Literal["pending", "firing", "resolved"]
AlertChange: TypeAlias = Literal["firing", "updated", "resolved"]
WorkState: TypeAlias = Literal["open", "acknowledged", "assigned", "on_site", "closed"]
Severity: TypeAlias = Literal["info", "warning", "major", "critical"]


class _Msg(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    pass


class Sample(_Msg):
    """One acquisition of one device: its own seq and timestamp (a reading may carry several)."""

    seq: Int64
    ts: Int64
    values: dict[str, Scalar]
    quality: dict[str, Quality] = {}
    source: Source = "live"


class Reading(_Msg):
    """One poll of one device. `quality` lists only values that are not good; a failed value is
    absent from `values` and marked `error` (never re-sent with a fresh timestamp). `more` carries
    further samples of the same device (a spool replay), each with its own seq and ts."""

    schema: Int64
    gw: str
    dev: str
    seq: Int64
    ts: Int64
    values: dict[str, Scalar]
    quality: dict[str, Quality] = {}
    source: Source = "live"
    protocol: str = ""
    more: list[Sample] = []

    def samples(self) -> list[Sample]:
        first = Sample(seq=self.seq, ts=self.ts, values=self.values, quality=self.quality, source=self.source)
        return [first, *self.more]


class EventKind(enum.StrEnum):
    POWER_DOWN = "power_down"
    POWER_UP = "power_up"
    RELAY_CHANGE = "relay_change"
    CLOCK_SET = "clock_set"
    TICKET_ISSUED = "ticket_issued"
    TICKET_CALLED = "ticket_called"
    TICKET_RECALLED = "ticket_recalled"
    TICKET_SUSPENDED = "ticket_suspended"
    SERVICE_STARTED = "service_started"
    SERVICE_FINISHED = "service_finished"
    TICKET_ABANDONED = "ticket_abandoned"
    TICKET_TRANSFERRED = "ticket_transferred"
    RATING = "rating"
    RATING_TIMEOUT = "rating_timeout"
    COUNTER_STATE = "counter_state"
    STAFF_LOGIN = "staff_login"
    STAFF_LOGOUT = "staff_logout"
    # a DL/T 698.45 read as plaintext + RN: the meter's ESAM MAC over its answer, passed on unverified
    SECURED_READ = "secured_read"


# Data keys each event kind must carry (more are allowed).
EVENT_REQUIRED: Final[dict[EventKind, tuple[str, ...]]] = {
    EventKind.POWER_DOWN: (),
    EventKind.POWER_UP: (),
    EventKind.RELAY_CHANGE: ("relay",),
    EventKind.CLOCK_SET: ("skew_s",),
    EventKind.TICKET_ISSUED: ("hall", "ticket", "business"),
    EventKind.TICKET_CALLED: ("hall", "ticket", "counter", "staff"),
    EventKind.TICKET_RECALLED: ("hall", "ticket", "counter", "recall"),
    EventKind.TICKET_SUSPENDED: ("hall", "ticket", "counter"),
    EventKind.SERVICE_STARTED: ("hall", "ticket", "counter", "staff", "wait_s"),
    EventKind.SERVICE_FINISHED: ("hall", "ticket", "counter", "staff", "wait_s", "service_s"),
    EventKind.TICKET_ABANDONED: ("hall", "ticket", "reason"),
    EventKind.TICKET_TRANSFERRED: ("hall", "ticket", "business"),
    EventKind.RATING: ("hall", "ticket", "counter", "staff", "level", "label"),
    EventKind.RATING_TIMEOUT: ("hall", "ticket", "counter"),
    EventKind.COUNTER_STATE: ("hall", "counter", "state"),
    EventKind.STAFF_LOGIN: ("hall", "counter", "staff"),
    EventKind.STAFF_LOGOUT: ("hall", "counter"),
    EventKind.SECURED_READ: ("oad", "rn", "apdu", "mac", "mac_verified"),
}


class Event(_Msg):
    schema: Int64
    gw: str
    dev: str
    seq: Int64
    ts: Int64
    event: EventKind
    data: dict[str, Scalar | None] = {}
    source: Source = "live"


class Health(_Msg):
    """Per-device health (retained)."""

    schema: Int64
    gw: str
    dev: str
    seq: Int64
    ts: Int64
    state: HealthState
    last_success_ts: Int64 | None = None
    latency_ms: float | None = None
    polls: Int64 = 0
    failures: Int64 = 0
    errors: dict[str, Int64] = {}


class BusStatus(_Msg):
    name: str
    port: str
    state: Literal["open", "reconnecting", "closed"]
    devices: Int64 = 0


class Status(_Msg):
    """Gateway birth/death message (retained; the Last Will carries state=offline). `version`: the
    gateway's software version; `config_hash`: SHA-256 (hex) of the canonical JSON of the config file it
    runs (gateway.config_doc; empty when not known), so a fleet's versions and configs are one
    subscription to `gridedge/v1/+/status` away."""

    schema: Int64
    gw: str
    seq: Int64
    ts: Int64
    state: Literal["online", "offline"]
    dev: str = ""
    version: str = ""
    buses: list[BusStatus] = []
    spool_depth: Int64 = 0
    spool_dropped: Int64 = 0
    uptime_s: float = 0.0
    publish_lag_s: float = 0.0
    config_hash: str = ""


class Command(_Msg):
    """A signed command (see protocols.signing). Times are epoch milliseconds. `alg`: the signature's
    algorithm, `hmac-sha256` (the default, a shared key) or `ed25519` (an operator's private key, named
    by its key id `kid`); `sig`: hex, over every other field, `alg` and `kid` included. A command to the
    gateway itself goes to the device `gateway`: `config_apply` with `params` `config` (the whole
    config document) with its `hash`, or `patch` (a JSON merge patch, RFC 7386, of the running one)
    with `hash` (of the result) or `base_hash` (of the config it patches), and optional `deadline_s`
    (the trial, default 120 s). See gateway.remote_config. `update` (Ed25519-signed only) with `params`
    `url` (http, https or file) of a release artifact and `signature` (its `.sig` document), optional
    `sha256`. See gateway.update."""

    id: str
    gw: str
    dev: str
    action: str
    params: dict[str, Any]
    issued_at: Int64
    expires_at: Int64
    nonce: str
    sig: str
    schema: Int64 = SCHEMA_VERSION
    alg: Literal["hmac-sha256", "ed25519"] = "hmac-sha256"
    kid: str = ""


class CommandResult(_Msg):
    schema: Int64
    gw: str
    dev: str
    seq: Int64
    ts: Int64
    id: str
    status: CommandStatus
    reason: str = ""
    answer: dict[str, Any] = {}
    state: dict[str, Scalar | None] = {}


class Alert(_Msg):
    """One state change of an alert of the ingest's alert engine, built by `ingest.alerts.outputs` only.
    `change`: `firing` (it fired), `updated` (a firing alert's severity, message, labels or start
    changed; re-published), `resolved` (the final record: published once, not retained, then the
    retained topic is cleared). `ts`: when the change happened; `start_ts`: when the condition began;
    `fire_ts`: when it fired; `end_ts` (resolved): when the condition went away, so `end_ts - start_ts`
    is its duration. `subject_kind`: gateway, device, area, phase, hall, counter or account; `gw` /
    `dev` are set for gateway and device subjects. `labels` place the subject (gw, dev, site, area,
    phase, hall, counter, staff, account ...). `flaps`: firing <-> resolved changes in the engine's
    damping window once it damps this subject (0 otherwise). `work`: where the people's work on it
    stands, from the operators' actions (`gridedge/v1/alerts/action/{verb}`): `open` (nobody took it
    yet), `acknowledged`, `assigned` (to `assignee`), `on_site` (the crew arrived at `arrived_ts`),
    `closed`; an action on it re-publishes it (`updated` while it fires, else its `resolved` record)."""

    schema: Int64
    ts: Int64
    rule: str
    subject: str
    severity: Severity
    state: AlertState
    change: AlertChange
    start_ts: Int64
    message: str
    subject_kind: str = ""
    fire_ts: Int64 | None = None
    end_ts: Int64 | None = None
    value: float | None = None
    gw: str = ""
    dev: str = ""
    labels: dict[str, str] = {}
    flaps: Annotated[int, msgspec.Meta(ge=0)] = 0
    work: WorkState = "open"
    assignee: str = ""
    arrived_ts: Int64 | None = None


class DeadLetter(_Msg):
    schema: Int64
    ts: Int64
    topic: str
    field: str
    reason: str
    payload: str


Message: TypeAlias = Reading | Event | Health | Status | Command | CommandResult | Alert | DeadLetter
M = TypeVar("M", Reading, Event, Health, Status, Command, CommandResult, Alert, DeadLetter)

_ENCODER: Final = msgspec.json.Encoder()
_DECODERS: dict[type[Any], msgspec.json.Decoder[Any]] = {}
_AT_RE: Final = re.compile(r"^(?P<reason>.*?)(?: - at `(?P<path>[^`]*)`)?$", re.S)
_MISSING_RE: Final = re.compile(r"missing required field `(?P<name>[^`]+)`")


def encode(message: Message) -> bytes:
    """Encode a message to compact JSON."""
    return _ENCODER.encode(message)


def to_builtins(message: Message) -> dict[str, Any]:
    result: dict[str, Any] = msgspec.to_builtins(message)
    return result


def decode(type_: type[M], payload: bytes | str, *, now_ms: int | None = None) -> M:
    """Decode and validate `payload` as `type_`; raise ContractError naming the field and the reason.

    `now_ms` (the receiver's clock) enables the future-timestamp check.
    """
    size = len(payload)
    if size > MAX_PAYLOAD_BYTES:
        raise ContractError("$", f"payload of {size} bytes exceeds the {MAX_PAYLOAD_BYTES}-byte limit")
    decoder = _DECODERS.get(type_)
    if decoder is None:
        decoder = _DECODERS[type_] = msgspec.json.Decoder(type_)
    try:
        message: M = decoder.decode(payload)
    except msgspec.ValidationError as exc:
        raise _contract_error(str(exc)) from None
    except msgspec.DecodeError as exc:
        raise ContractError("$", f"not valid JSON: {exc}") from None
    except UnicodeDecodeError as exc:  # msgspec raises it for invalid UTF-8 inside a JSON string
        raise ContractError("$", f"not valid UTF-8: {exc}") from None
    validate(message, now_ms=now_ms)
    return message


def _contract_error(text: str) -> ContractError:
    match = _AT_RE.match(text)
    reason = match.group("reason") if match else text
    path = (match.group("path") if match else None) or "$"
    missing = _MISSING_RE.search(reason)
    if missing:
        path = f"{path}.{missing.group('name')}"
        reason = "required field is missing"
    return ContractError(path, reason)


def validate(message: Message, *, now_ms: int | None = None) -> None:
    """Semantic checks msgspec cannot express. Raises ContractError."""
    schema = getattr(message, "schema", SCHEMA_VERSION)
    if schema != SCHEMA_VERSION:
        reason = f"unsupported schema version {schema} (this build speaks {SCHEMA_VERSION})"
        raise ContractError("$.schema", reason)
    gw = getattr(message, "gw", "")
    if gw or not isinstance(message, _GATEWAY_OPTIONAL):
        check_id("$.gw", gw)
    dev = getattr(message, "dev", "")
    if dev:
        check_id("$.dev", dev)
    if isinstance(message, Reading):
        _validate_reading(message, now_ms)
    elif isinstance(message, Event):
        _check_ts("$.ts", message.ts, now_ms)
        _validate_event(message)
    elif isinstance(message, Alert):
        _validate_alert(message, now_ms)
    elif isinstance(message, _TIMESTAMPED):
        _check_ts("$.ts", message.ts, now_ms)
    if isinstance(message, _SEQUENCED) and message.seq < 0:
        raise ContractError("$.seq", "must be >= 0")


# tuples, not `A | B` unions: isinstance against a union builds the union object on every call
_GATEWAY_OPTIONAL: Final = (Alert, DeadLetter)
_TIMESTAMPED: Final = (Health, Status, CommandResult, Alert)
_SEQUENCED: Final = (Health, Status, CommandResult, Reading, Event)


def check_id(path: str, value: str) -> None:
    if value in _valid_ids:  # hot path: a receiver sees the same few thousand ids over and over
        return
    if not _ID_RE.fullmatch(value):
        raise ContractError(path, f"{value!r} is not a valid identifier (1-64 of A-Z a-z 0-9 _ . : -)")
    if value in RESERVED_GATEWAY_IDS:
        if path == "$.gw":
            raise ContractError(path, f"{value!r} is reserved and cannot name a gateway")
        return  # valid as a device id, never remembered: its check depends on where it appears
    if len(_valid_ids) >= _VALID_IDS_LIMIT:
        _valid_ids.clear()
    _valid_ids.add(value)


_VALID_IDS_LIMIT: Final = 65_536
_valid_ids: set[str] = set()


def _check_ts(path: str, ts: int, now_ms: int | None) -> None:
    if ts < MIN_TS_MS:
        raise ContractError(path, f"timestamp {ts} is before 2000-01-01 (milliseconds expected)")
    if now_ms is not None and ts > now_ms + MAX_FUTURE_MS:
        raise ContractError(path, f"timestamp {ts} is more than 24 h ahead of the receiver's clock")


def _validate_reading(message: Reading, now_ms: int | None) -> None:
    # hot path of the ingest: no per-value string building unless a value is wrong
    _validate_sample("$", message.ts, message.values, message.quality, now_ms)
    for index, sample in enumerate(message.more):
        prefix = f"$.more[{index}]"
        if sample.seq < 0:
            raise ContractError(f"{prefix}.seq", "must be >= 0")
        _validate_sample(prefix, sample.ts, sample.values, sample.quality, now_ms)


def _validate_sample(
    prefix: str, ts: int, values: dict[str, Scalar], quality: dict[str, Quality], now_ms: int | None
) -> None:
    if ts < MIN_TS_MS or (now_ms is not None and ts > now_ms + MAX_FUTURE_MS):
        _check_ts(f"{prefix}.ts", ts, now_ms)
    if not (values.keys() <= _FLOAT_NAMES and finite_floats(values.values())):
        types = _VALUE_TYPES
        for name, value in values.items():
            kind = types.get(name)
            if kind is ValueType.FLOAT and type(value) is float and math.isfinite(value):
                continue
            check_value(f"{prefix}.values.{name}", name, value)
    if quality and not quality.keys() <= VOCABULARY.keys():
        for name in quality:
            if name not in VOCABULARY:
                raise ContractError(f"{prefix}.quality.{name}", f"unknown canonical name {name!r}")


def finite_floats(values: Collection[object]) -> bool:
    """True when there is at least one value, every value is a float (not an int, bool or str) and
    none is NaN or infinite; in C, without a Python-level loop. A NaN or an infinity makes the sum
    non-finite; a sum of finite values that overflows only makes this say False (callers then check
    value by value)."""
    return set(map(type, values)) == _ONLY_FLOAT and math.isfinite(sum(values))  # type: ignore[arg-type]


_ONLY_FLOAT: Final = {float}


_VALUE_TYPES: Final = {name: entry.type for name, entry in VOCABULARY.items()}
_FLOAT_NAMES: Final = frozenset(name for name, kind in _VALUE_TYPES.items() if kind is ValueType.FLOAT)


def check_value(path: str, name: str, value: Scalar) -> None:
    """Check one canonical value against the vocabulary's type."""
    entry = VOCABULARY.get(name)
    if entry is None:
        raise ContractError(path, f"unknown canonical name {name!r}")
    kind = entry.type
    if kind is ValueType.RELAY:
        if value not in ("closed", "open"):
            raise ContractError(path, f"relay state must be 'closed' or 'open', got {value!r}")
    elif kind is ValueType.BOOL:
        if not isinstance(value, bool):
            raise ContractError(path, f"expected a boolean, got {value!r}")
    elif isinstance(value, bool) or not isinstance(value, int | float):
        raise ContractError(path, f"expected a number, got {value!r}")
    elif kind is ValueType.INT and not isinstance(value, int):
        raise ContractError(path, f"expected an integer, got {value!r}")
    elif isinstance(value, float) and not math.isfinite(value):
        raise ContractError(path, f"expected a finite number, got {value!r}")


def _validate_alert(message: Alert, now_ms: int | None) -> None:
    # every time of an alert is in milliseconds: a time in seconds (the old payload's started_at) is
    # refused here by the 2000-01-01 bound instead of being read as January 1970
    _check_ts("$.ts", message.ts, now_ms)
    _check_ts("$.start_ts", message.start_ts, now_ms)
    if message.fire_ts is not None:
        _check_ts("$.fire_ts", message.fire_ts, now_ms)
    if message.end_ts is not None:
        _check_ts("$.end_ts", message.end_ts, now_ms)
    if message.arrived_ts is not None:
        _check_ts("$.arrived_ts", message.arrived_ts, now_ms)


def _validate_event(message: Event) -> None:
    for key in EVENT_REQUIRED[message.event]:
        if key not in message.data:
            raise ContractError(f"$.data.{key}", f"required for event {message.event.value!r}")


RESERVED_GATEWAY_IDS: Final = frozenset({"alerts", "deadletter", "billing"})
