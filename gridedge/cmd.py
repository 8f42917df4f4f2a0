"""`gridedge cmd`: sign a remote command, publish it, and print the gateway's results.

    gridedge cmd --private-key ~/.config/gridedge/ops.key --gw gw-demo-01 --dev 000000000001 --action trip
    GRIDEDGE_COMMAND_KEY=... gridedge cmd --gw gw-demo-01 --dev 000000000001 --action trip
    gridedge cmd --key-file /etc/gridedge/command.key --gw GW --dev DEV --action keep_power_on --json
    gridedge cmd ... --action read --param item=energy_import_kwh

The command is signed (protocols.signing) with the operator's Ed25519 private key (`--private-key`,
made by `gridedge keys generate`; refused when other users may read it) or, for gateways still
configured for it, with HMAC-SHA256 and the shared key (`--key-file` or $GRIDEDGE_COMMAND_KEY). It is
valid for `--ttl` seconds; the tool
waits up to `--wait` seconds for the final result (`done`, `failed` or `rejected`) on
`.../cmd/result` and exits 0 only for `done`. Composition root: an operator's tool, not a service.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from protocols import topics
from protocols.signing import Signer, new_command

from .keys import KeyFileError, load_signer

FINAL = ("done", "failed", "rejected")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "cmd", help="send a signed command to a device behind a gateway and wait for the result"
    )
    p.add_argument("--gw", required=True)
    p.add_argument("--dev", required=True)
    p.add_argument("--action", required=True, help="trip, close, allow_close, keep_power_on, ...")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE", help="JSON values allowed")
    keys = p.add_mutually_exclusive_group()
    keys.add_argument("--private-key", type=Path, help="sign with this Ed25519 private key (gridedge keys)")
    keys.add_argument("--key-file", help="sign with this HMAC key (default: $GRIDEDGE_COMMAND_KEY)")
    p.add_argument("--host", default="localhost")
    p.add_argument("--port", type=int, default=int(os.environ.get("GRIDEDGE_MQTT__PORT", "1883")))
    p.add_argument("--ttl", type=float, default=300, help="seconds the command stays valid (default 300)")
    p.add_argument("--wait", type=float, default=30, help="seconds to wait for the result (default 30)")
    p.add_argument("--json", action="store_true", help="print the results as JSON lines")
    p.set_defaults(handler=run)


def build_command(args: argparse.Namespace, key: bytes | Signer, now_ms: int) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for item in args.param:
        name, _, value = item.partition("=")
        try:
            params[name] = json.loads(value)
        except ValueError:
            params[name] = value
    ttl_ms = int(args.ttl * 1000)
    return new_command(args.gw, args.dev, args.action, params, key=key, now_ms=now_ms, ttl_ms=ttl_ms)


def signing_key(args: argparse.Namespace) -> bytes | Signer:
    """The Ed25519 signer of `--private-key`, else the HMAC key; KeyFileError naming what is wrong."""
    if args.private_key is not None:
        return load_signer(args.private_key)
    key_text = (
        Path(args.key_file).read_text().strip() if args.key_file else os.environ.get("GRIDEDGE_COMMAND_KEY")
    )
    if not key_text:
        raise KeyFileError("no key: give --private-key or --key-file, or set GRIDEDGE_COMMAND_KEY")
    return key_text.splitlines()[0].encode()


def run(args: argparse.Namespace) -> int:
    try:
        key = signing_key(args)
    except KeyFileError as exc:
        print(f"gridedge cmd: {exc}", file=sys.stderr)
        return 2
    command = build_command(args, key, int(time.time() * 1000))
    results: list[dict[str, Any]] = []
    final = threading.Event()
    subscribed = threading.Event()

    def on_message(client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        result = json.loads(msg.payload)
        if result.get("id") != command["id"]:
            return
        results.append(result)
        print(json.dumps(result, ensure_ascii=False) if args.json else _describe(result), flush=True)
        if result.get("status") in FINAL:
            final.set()

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"gridedge-cmd-{uuid.uuid4().hex[:8]}")
    client.on_message = on_message
    client.on_subscribe = lambda *a: subscribed.set()
    try:
        client.connect(args.host, args.port)
    except OSError as exc:
        print(f"gridedge cmd: cannot reach the broker at {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    client.loop_start()
    try:
        client.subscribe(topics.cmd_result_topic(args.gw, args.dev), qos=1)
        subscribed.wait(5)
        client.publish(topics.cmd_topic(args.gw, args.dev), json.dumps(command), qos=1).wait_for_publish(10)
        if not final.wait(args.wait):
            print(
                f"gridedge cmd: no final result within {args.wait:.0f} s (is the gateway online?)",
                file=sys.stderr,
            )
            return 1
    finally:
        client.disconnect()
        client.loop_stop()
    return 0 if results[-1].get("status") == "done" else 1


def _describe(result: dict[str, Any]) -> str:
    parts = [f"{result.get('status', '?'):9}", result.get("reason", "")]
    if result.get("state"):
        parts.append("state " + ", ".join(f"{k}={v}" for k, v in result["state"].items()))
    return "  ".join(p for p in parts if p)
