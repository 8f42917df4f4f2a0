"""Generate docs/mqtt-contract.md from the code in protocols/ (topics, payload models, vocabulary).

`python tools/gen_contract_docs.py` rewrites the file; `--check` fails when it is out of date (run by
`make test`), so the document a dashboard author reads is always the contract the code enforces.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path

import msgspec

from protocols import messages, operations, topics
from protocols.vocabulary import VOCABULARY

TARGET = Path(__file__).resolve().parent.parent / "docs" / "mqtt-contract.md"

MODELS: list[tuple[str, type, str]] = [
    ("reading", messages.Reading, "gridedge/v1/{gw}/{dev}/reading"),
    ("sample (inside reading.more)", messages.Sample, ""),
    ("event", messages.Event, "gridedge/v1/{gw}/{dev}/event"),
    ("health", messages.Health, "gridedge/v1/{gw}/{dev}/health (retained)"),
    ("status", messages.Status, "gridedge/v1/{gw}/status (retained, Last Will)"),
    ("bus status (inside status.buses)", messages.BusStatus, ""),
    ("command", messages.Command, "gridedge/v1/{gw}/{dev}/cmd"),
    ("command result", messages.CommandResult, "gridedge/v1/{gw}/{dev}/cmd/result"),
    ("alert", messages.Alert, "gridedge/v1/alerts/{rule}/{subject} (retained while firing)"),
    ("dead letter", messages.DeadLetter, "gridedge/v1/deadletter"),
    ("billing: payment", operations.Payment, "gridedge/v1/billing/{account}/payment"),
    ("billing: tariff change", operations.TariffChange, "gridedge/v1/billing/{account}/tariff"),
    ("billing: account", operations.AccountRecord, "gridedge/v1/billing/{account}/account"),
    ("auto-control audit", operations.AutoControlAudit, "gridedge/v1/alerts/autocontrol/audit"),
    (
        "auto-control pending action",
        operations.AutoControlPending,
        "gridedge/v1/alerts/autocontrol/pending/{id} (retained while pending)",
    ),
    (
        "auto-control decision",
        operations.AutoControlDecision,
        "gridedge/v1/alerts/autocontrol/(approve|reject)/{id} (operators)",
    ),
    (
        "alert action",
        operations.AlertAction,
        "gridedge/v1/alerts/action/(ack|assign|arrived|note|close|callback) (operators, per verb)",
    ),
    ("alert action result", operations.AlertActionResult, "gridedge/v1/alerts/action/result (the engine)"),
]

# What changed in the contract, newest first: what a consumer written against an earlier text must do.
CHANGES: list[tuple[str, list[str]]] = [
    (
        "software updates (issue 24)",
        [
            "Action `update` to the gateway itself (device `gateway`), accepted only when the command is "
            "signed with Ed25519. Params: `url` (http, https or file) of a release artifact, `signature` "
            "(the artifact's `.sig` JSON: `artifact`, `version`, `size`, `sha256`, Ed25519 `alg`, `kid`, "
            "`sig`), optional `sha256` (must equal the signed one).",
            "Its results: `accepted`, then `done` (the new release passed its trial and runs: `state` "
            "`version` the new one, `previous` the old one) or `failed` (rolled back: the reason says why, "
            "`state.version` the one running), or `rejected` with `unknown_key`, `bad_signature`, "
            "`alg_not_accepted` (HMAC), `hash_mismatch`, `malformed`, `no_key` or `same`. The retained "
            "status's `version` shows the release running.",
        ],
    ),
    (
        "remote configuration (issue 24)",
        [
            "The status gains `config_hash`: SHA-256 (hex) of the canonical JSON of the config file the "
            "gateway runs (the YAML parsed to JSON data, keys sorted, separators `,` `:`, UTF-8; "
            "environment overrides not included). Optional: earlier consumers need no change. With "
            "`version` (the software version, already there) a fleet's state is one subscription away.",
            "Commands to the gateway itself go to the device `gateway` (`gridedge/v1/{gw}/gateway/cmd`, "
            "results on `.../gateway/cmd/result`); a gateway refuses a config with a device of that id. "
            "Action `config_apply`, params: `config` (the whole document) with its `hash`, or `patch` (a "
            "JSON merge patch, RFC 7386, of the running document) with `hash` (of the result) or "
            "`base_hash` (of the config it patches); optional `deadline_s` (5-3600, default 120).",
            "Its results: `accepted` (on trial), then `done` (answer `outcome` `applied` or `unchanged`) "
            "or `failed` (`outcome` `rolled_back`, the reason names the broker or the silent buses), or "
            "`rejected` with `busy`, `bad_params`, `hash_mismatch`, `invalid_config`, `wrong_gateway`, "
            "`state_moved`, `reserved_device` or `locks_out`. Answers carry `hash` and `previous_hash`; "
            "every result's `state` the running `config_hash` and `version`.",
        ],
    ),
    (
        "operator actions on alerts (issue 23)",
        [
            "New topics `gridedge/v1/alerts/action/{verb}` (`ack`, `assign`, `arrived`, `note`, `close`, "
            "`callback`) carrying `alert action`: the alert's `rule` and `subject`, `by`, optional `ts` and "
            "the verb's own fields (`assign`: `crew`; `note`: `note`; `close`: `cause` and `outcome`; "
            "`callback`: `outcome`). `gridedge/v1/alerts/action/...` is reserved: no alert rule is named "
            "`action`. A consumer of `gridedge/v1/alerts/#` gets these too: decode by topic.",
            "The alert engine answers each action on `gridedge/v1/alerts/action/result` (`alert action "
            "result`: `accepted` with the alert's `work` state, or the `reason` of the refusal; `rule`, "
            "`subject`, `by` and `action_ts` repeat the action's for matching).",
            "The alert gains `work` (`open`, `acknowledged`, `assigned`, `on_site`, `closed`; default "
            "`open`), `assignee` and `arrived_ts` (ms). All optional: earlier consumers need no change. An "
            "action re-publishes its alert: `updated` (retained) while it fires, else its `resolved` "
            "record again (not retained) with the new work state.",
            "New alert rule `rating_followup` (hall/{hall}/counter-{n}/ticket-{ticket}): a dissatisfied "
            "rating's callback not made by its deadline.",
        ],
    ),
    (
        "event secured_read (issue 21)",
        [
            "New event kind `secured_read` (DL/T 698.45 meters configured with `secured_objects`): data "
            "`oad`, `rn`, `apdu` (the meter's plaintext answer, hex) and `mac` (its ESAM MAC over RN and "
            "that answer, hex) for a master station holding the key to check; `mac_verified` is always "
            "false (the gateway has no ESAM). The values themselves are in the reading as usual.",
        ],
    ),
    (
        "billing and auto-control (issue 19)",
        [
            "Billing records and auto-control's messages are in the contract (`protocols/operations.py`) "
            "and decode with `protocols.topics.decode_payload` like every other topic.",
            "Auto-control's audit record: `at` (seconds) is now `ts` (ms), `created_at` (seconds) is "
            "`created_ts` (ms), and `schema` is added; the pending action likewise (`state` stays).",
            "An operator's approve / reject carries only `by`; other fields are refused.",
            "`gridedge/v1/alerts/autocontrol/...` is reserved: no alert rule is named `autocontrol`.",
        ],
    ),
    (
        "command (issue 24)",
        [
            "New optional `alg`: `hmac-sha256` (the default: a command without `alg` is HMAC-signed as "
            "before) or `ed25519`; any other value is refused.",
            "New optional `kid`: the key id of the Ed25519 public key that verifies `sig` (16 hex digits, "
            "derived from the key); required with `alg: ed25519`, refused on an HMAC command.",
            "With `alg: ed25519`, `sig` is the 64-byte Ed25519 signature in hex (128 digits). Both "
            "algorithms sign the same bytes, which include `alg` and `kid`. Existing HMAC senders need "
            "no change.",
            "New refusal reasons in the command result: `alg_not_accepted` (an algorithm the gateway "
            "has no key for) and `unknown_key` (a `kid` the gateway does not list).",
        ],
    ),
    (
        "alert (issue 19)",
        [
            "The alert engine now publishes this model; before, it sent a payload of its own that no "
            "consumer could decode with the contract (`started_at`, `fired_at`, `ended_at` in seconds, "
            "`duration_s`, `labels`, `flaps`, no `schema` / `ts` / `start_ts`).",
            "New required `change` (`firing`, `updated`, `resolved`), also in the webhook body, which is "
            "now the same JSON as the MQTT message (was: the old payload plus `kind`).",
            "New `fire_ts` (when it fired, ms), `labels` (object of strings: gw, dev, site, area, phase, "
            "hall, counter, staff, account ...) and `flaps` (>= 0).",
            "`start_ts`, `fire_ts` and `end_ts` are checked like `ts` (milliseconds, not before 2000): a "
            "time in seconds is refused.",
            "Removed `seq` and `details`, which nothing ever sent; `labels` replaces `details`.",
            "Duration: `end_ts - start_ts` (the old `duration_s`, now in milliseconds).",
        ],
    ),
]


def _type_name(t: msgspec.inspect.Type) -> str:
    if isinstance(t, msgspec.inspect.UnionType):
        return " \\| ".join(_type_name(x) for x in t.types)
    if isinstance(t, msgspec.inspect.LiteralType):
        return " \\| ".join(f"`{v}`" for v in t.values)
    if isinstance(t, msgspec.inspect.EnumType):
        return "event kind (below)"
    if isinstance(t, msgspec.inspect.DictType):
        return f"object of {_type_name(t.value_type)}"
    if isinstance(t, msgspec.inspect.ListType):
        return f"array of {_type_name(t.item_type)}"
    if isinstance(t, msgspec.inspect.StructType):
        return t.cls.__name__
    return type(t).__name__.removesuffix("Type").lower()


def _model_table(cls: type) -> list[str]:
    info = msgspec.inspect.type_info(cls)
    assert isinstance(info, msgspec.inspect.StructType)
    rows = ["| field | type | required |", "|---|---|---|"]
    for f in info.fields:
        value = f.default
        if value is msgspec.NODEFAULT and callable(f.default_factory):
            value = f.default_factory()
        default = "" if f.required else f"no (default `{value!r}`)"
        rows.append(f"| `{f.name}` | {_type_name(f.type)} | {'yes' if f.required else default} |")
    return rows


def render() -> str:
    out = [
        "# MQTT contract v1",
        "",
        "Generated by `tools/gen_contract_docs.py` from `protocols/` (checked by `make test`; do not edit).",
        "",
        f"Schema version: `{messages.SCHEMA_VERSION}`. Timestamps are UTC epoch **milliseconds**. "
        f"Payloads are JSON, at most {messages.MAX_PAYLOAD_BYTES} bytes. Identifiers (`gw`, `dev`) are 1-64 "
        "characters of `A-Z a-z 0-9 _ . : -`; "
        f"{', '.join(sorted(messages.RESERVED_GATEWAY_IDS))} cannot name a gateway. QoS 1 everywhere.",
        "",
        "## Topics",
        "",
        "```",
        textwrap.dedent((topics.__doc__ or "").split("\n\n", 2)[2]).strip(),
        "```",
        "",
        "## Payloads",
    ]
    for title, cls, topic in MODELS:
        out += ["", f"### {title}", ""]
        if topic:
            out += [f"Topic: `{topic}`", ""]
        doc = (cls.__doc__ or "").strip()
        if doc:
            out += [" ".join(doc.split()), ""]
        out += _model_table(cls)
    out += ["", "## Changes"]
    for title, items in CHANGES:
        out += ["", f"### {title}", "", *(f"- {item}" for item in items)]
    out += ["", "## Event kinds and their required `data` keys", "", "| event | required data |", "|---|---|"]
    for kind, keys in messages.EVENT_REQUIRED.items():
        out.append(f"| `{kind.value}` | {', '.join(f'`{k}`' for k in keys) or '-'} |")
    out += ["", "## Canonical values", "", "| name | unit | type | meaning |", "|---|---|---|---|"]
    for c in VOCABULARY.values():
        out.append(f"| `{c.name}` | {c.unit or '-'} | {c.type.value} | {c.description} |")
    out += [
        "",
        "## Commands",
        "",
        "`sig` signs the UTF-8 JSON of every other field (`alg` and `kid` included) with keys sorted and "
        'separators `(",", ":")` (`protocols.signing`). `alg` names the algorithm: `hmac-sha256` (the '
        "default when absent): hex HMAC-SHA256 keyed by a command key the gateway shares; `ed25519`: hex "
        "Ed25519 signature by an operator's private key, verified with the gateway's public key whose key "
        "id is `kid`. A gateway refuses an algorithm it has no key for (`alg_not_accepted`), an unknown "
        "`kid` (`unknown_key`), and an unsigned or bad signature (`bad_signature`).",
        "",
    ]
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    text = render()
    if args.check:
        if not TARGET.exists() or TARGET.read_text() != text:
            print(f"{TARGET} is out of date: run python tools/gen_contract_docs.py", file=sys.stderr)
            return 1
        return 0
    TARGET.parent.mkdir(exist_ok=True)
    TARGET.write_text(text)
    print(f"wrote {TARGET}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
