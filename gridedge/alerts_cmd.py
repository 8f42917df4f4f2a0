"""`gridedge alerts`: an operator's action on an alert, for people without a dashboard.

    gridedge alerts ack area_outage area/area-a02 --note "T3 suspected"
    gridedge alerts assign area_outage area/area-a02 --crew crew-3
    gridedge alerts arrived area_outage area/area-a02 --crew crew-3
    gridedge alerts close area_outage area/area-a02 --cause "T3 fuse" --outcome "fuse replaced"
    gridedge alerts callback rating_followup hall/hall-main/counter-2/ticket-A101 --outcome "satisfied"

Publishes `protocols.operations.AlertAction` (QoS 1, MQTT 5) on `gridedge/v1/alerts/action/{verb}`
with the operator's MQTT credentials (`--username`, `--password-file` or $GRIDEDGE_MQTT__USERNAME /
$GRIDEDGE_MQTT__PASSWORD): the broker's ACL decides who may take which action (deploy/compose/
mosquitto/acl) and refuses the others, which this tool reports (exit 1). With `--wait` (default 5 s)
it then waits for the alert engine's answer (`gridedge/v1/alerts/action/result`) and prints it: taken,
with the alert's work state (exit 0), or refused with the reason (closing an alert whose condition still
holds, an unknown alert ...: exit 1). Composition root: an operator's tool, not a service.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import msgspec
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from protocols import operations as ops
from protocols import topics
from protocols.errors import ContractError

_VERB_FIELDS = {  # options each verb takes besides --note (the contract's ACTION_REQUIRED are required)
    "ack": (),
    "assign": ("crew",),
    "arrived": ("crew",),
    "note": (),
    "close": ("cause", "outcome"),
    "callback": ("outcome",),
}

_HELP = {
    "ack": "take the alert (work: acknowledged)",
    "assign": "assign it to a crew or a person (work: assigned)",
    "arrived": "the crew is on site now (work: on_site; stops the arrival clock)",
    "note": "add a note",
    "close": "the work is done: cause and the action taken (only once the alert has resolved)",
    "callback": "a dissatisfied customer was called back: the outcome (closes the follow-up)",
}


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("alerts", help="act on an alert: ack, assign, arrived, note, close, callback")
    verbs = p.add_subparsers(dest="verb", metavar="ACTION", required=True)
    for verb, extra in _VERB_FIELDS.items():
        v = verbs.add_parser(verb, help=_HELP[verb])
        v.add_argument("rule", help="the alert's rule, e.g. area_outage")
        v.add_argument("subject", help="the alert's subject, e.g. area/area-a02")
        for name in extra:
            required = name in ops.ACTION_REQUIRED[verb]
            v.add_argument(f"--{name}", required=required, default="")
        v.add_argument("--note", required="note" in ops.ACTION_REQUIRED[verb], default="")
        _common(v)
        v.set_defaults(handler=run)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--by", default=os.environ.get("GRIDEDGE_OPERATOR") or getpass.getuser(), help="who acts")
    p.add_argument("--host", default=os.environ.get("GRIDEDGE_MQTT__HOST", "localhost"))
    p.add_argument("--port", type=int, default=int(os.environ.get("GRIDEDGE_MQTT__PORT", "1883")))
    p.add_argument("--username", default=os.environ.get("GRIDEDGE_MQTT__USERNAME"))
    p.add_argument("--password-file", type=Path, help="default: $GRIDEDGE_MQTT__PASSWORD")
    p.add_argument("--tls-ca-file", type=Path, help="connect with TLS, trusting this CA")
    p.add_argument(
        "--wait", type=float, default=5.0, help="seconds to wait for the engine's answer (0: none)"
    )


def build_action(args: argparse.Namespace, now_ms: int) -> ops.AlertAction:
    """The action as the contract has it; ContractError naming what is missing."""
    fields = {name: getattr(args, name, "") or "" for name in ("note", "crew", "cause", "outcome")}
    action = ops.AlertAction(rule=args.rule, subject=args.subject, by=args.by, ts=now_ms, **fields)
    ops.check_action(args.verb, action)
    return action


def run(args: argparse.Namespace) -> int:
    try:
        action = build_action(args, int(time.time() * 1000))
    except ContractError as exc:
        print(f"gridedge alerts: {exc.field}: {exc.reason}", file=sys.stderr)
        return 2
    try:
        client = _connect(args)
    except (OSError, ConnectionError) as exc:
        print(f"gridedge alerts: {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    try:
        return _send(client, args, action)
    finally:
        client.disconnect()
        client.loop_stop()


class _Session:
    """What the paho thread reports: the connection's outcome, PUBACK reason codes, the engine's answers."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.connected: bool | None = None
        self.reason = ""
        self.acks: dict[int, Any] = {}
        self.subscribed = False
        self.answers: list[dict[str, Any]] = []


def _connect(args: argparse.Namespace) -> mqtt.Client:
    s = _Session()
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=f"gridedge-alerts-{uuid.uuid4().hex[:8]}", protocol=mqtt.MQTTv5
    )
    client.user_data_set(s)
    if args.username:
        secret = (
            args.password_file.read_text().strip()
            if args.password_file
            else os.environ.get("GRIDEDGE_MQTT__PASSWORD")
        )
        client.username_pw_set(args.username, secret)
    if args.tls_ca_file is not None:
        client.tls_set(ca_certs=str(args.tls_ca_file))
    client.on_connect = _on_connect
    client.on_publish = _on_publish
    client.on_subscribe = _on_subscribe
    client.on_message = _on_message
    client.connect(args.host, args.port)
    client.loop_start()
    with s.cond:
        s.cond.wait_for(lambda: s.connected is not None, 10)
    if not s.connected:
        client.loop_stop()
        raise ConnectionError(f"the broker refused the connection: {s.reason or 'no answer'}")
    return client


def _send(client: mqtt.Client, args: argparse.Namespace, action: ops.AlertAction) -> int:
    s: _Session = client.user_data_get()
    if args.wait > 0:
        client.subscribe(topics.ACTION_RESULT_TOPIC, qos=1)
        with s.cond:
            s.cond.wait_for(lambda: s.subscribed, 10)
    info = client.publish(topics.action_topic(args.verb), msgspec.json.encode(action), qos=1)
    with s.cond:
        s.cond.wait_for(lambda: info.mid in s.acks, 10)
        reason = s.acks.get(info.mid)
    if reason is None or getattr(reason, "is_failure", False):
        why = (
            "no acknowledgement"
            if reason is None
            else f"{reason} (not allowed for {args.username or 'you'}?)"
        )
        print(
            f"gridedge alerts: the broker refused {args.verb} on {action.rule} {action.subject}: {why}",
            file=sys.stderr,
        )
        return 1
    print(f"{args.verb} on {action.rule} {action.subject} sent by {action.by}", flush=True)
    if args.wait <= 0:
        return 0
    mine = (args.verb, action.rule, action.subject, action.by, action.ts)

    def answered() -> dict[str, Any] | None:
        keys = ("action", "rule", "subject", "by", "action_ts")
        return next((a for a in s.answers if tuple(a.get(k) for k in keys) == mine), None)

    with s.cond:
        answer = s.cond.wait_for(answered, args.wait)
    if answer is None:
        print(
            f"gridedge alerts: no answer from the alert engine within {args.wait:g} s (is it running?)",
            file=sys.stderr,
        )
        return 1
    if not answer.get("accepted"):
        print(
            f"gridedge alerts: the alert engine refused {args.verb}: {answer.get('reason', '')}",
            file=sys.stderr,
        )
        return 1
    print(f"taken: work {answer.get('work', '')}", flush=True)
    return 0


def _on_connect(client: mqtt.Client, s: _Session, flags: object, rc: Any, props: object) -> None:
    with s.cond:
        s.connected, s.reason = not rc.is_failure, str(rc)
        s.cond.notify_all()


def _on_publish(client: mqtt.Client, s: _Session, mid: int, rc: Any, props: object) -> None:
    with s.cond:
        s.acks[mid] = rc
        s.cond.notify_all()


def _on_subscribe(client: mqtt.Client, s: _Session, mid: int, codes: object, props: object) -> None:
    with s.cond:
        s.subscribed = True
        s.cond.notify_all()


def _on_message(client: mqtt.Client, s: _Session, msg: mqtt.MQTTMessage) -> None:
    try:
        answer = json.loads(msg.payload)
    except ValueError:
        return  # not an answer of the contract: not ours to judge
    if isinstance(answer, dict):
        with s.cond:
            s.answers.append(answer)
            s.cond.notify_all()
