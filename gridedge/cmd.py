"""`gridedge cmd`: sign a remote command, publish it, and print the gateway's results.

    gridedge cmd --private-key ~/.config/gridedge/ops.key --gw gw-demo-01 --dev 000000000001 --action trip
    GRIDEDGE_COMMAND_KEY=... gridedge cmd --gw gw-demo-01 --dev 000000000001 --action trip
    gridedge cmd --key-file /etc/gridedge/command.key --gw GW --dev DEV --action keep_power_on --json
    gridedge cmd ... --action read --param item=energy_import_kwh
    gridedge cmd --private-key ops.key --gw gw-demo-01 --action config_apply --config-file gateway.yaml
    gridedge cmd ... --gw GW --action config_apply --patch-file patch.yaml [--base-hash HASH]

The command is signed (protocols.signing) with the operator's Ed25519 private key (`--private-key`,
made by `gridedge keys generate`; refused when other users may read it) or, for gateways still
configured for it, with HMAC-SHA256 and the shared key (`--key-file` or $GRIDEDGE_COMMAND_KEY). It is
valid for `--ttl` seconds; the tool
waits up to `--wait` seconds for the final result (`done`, `failed` or `rejected`) on
`.../cmd/result` and exits 0 only for `done`. Composition root: an operator's tool, not a service.

`config_apply` (gateway.remote_config) goes to the gateway itself (device `gateway`): `--config-file`
sends the whole YAML file as JSON with its config hash; `--patch-file` sends a JSON merge patch
(RFC 7386, written in YAML or JSON) with `--base-hash`, the hash of the config it patches (default: the
`config_hash` of the gateway's retained status). `--deadline` is the trial; the tool waits for the
outcome (applied, unchanged, rolled back or refused) up to the deadline plus a minute.
"""

from __future__ import annotations

import argparse
import contextlib
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

from gateway import config_doc
from protocols import topics
from protocols.signing import Signer, new_command

from .keys import KeyFileError, load_signer

FINAL = ("done", "failed", "rejected")
WAIT_S = 30.0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "cmd", help="send a signed command to a device behind a gateway and wait for the result"
    )
    p.add_argument("--gw", required=True)
    p.add_argument("--dev", help="the device (default for config_apply: gateway, the gateway itself)")
    p.add_argument("--action", required=True, help="trip, close, allow_close, keep_power_on, ...")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE", help="JSON values allowed")
    keys = p.add_mutually_exclusive_group()
    keys.add_argument("--private-key", type=Path, help="sign with this Ed25519 private key (gridedge keys)")
    keys.add_argument("--key-file", help="sign with this HMAC key (default: $GRIDEDGE_COMMAND_KEY)")
    p.add_argument("--host", default="localhost")
    p.add_argument("--port", type=int, default=int(os.environ.get("GRIDEDGE_MQTT__PORT", "1883")))
    p.add_argument("--ttl", type=float, default=300, help="seconds the command stays valid (default 300)")
    p.add_argument("--wait", type=float, default=WAIT_S, help="seconds to wait for the result (default 30)")
    p.add_argument("--json", action="store_true", help="print the results as JSON lines")
    config = p.add_mutually_exclusive_group()
    config.add_argument("--config-file", type=Path, help="config_apply: the whole new config (YAML)")
    config.add_argument("--patch-file", type=Path, help="config_apply: a merge patch (RFC 7386) of it")
    p.add_argument("--base-hash", help="--patch-file: the config hash it patches (default: the status's)")
    p.add_argument("--deadline", type=float, help="config_apply: seconds the new config has to prove itself")
    p.set_defaults(handler=run)


def build_command(args: argparse.Namespace, key: bytes | Signer, now_ms: int) -> dict[str, Any]:
    params: dict[str, Any] = config_params(args)
    for item in args.param:
        name, _, value = item.partition("=")
        try:
            params[name] = json.loads(value)
        except ValueError:
            params[name] = value
    ttl_ms = int(args.ttl * 1000)
    return new_command(args.gw, args.dev, args.action, params, key=key, now_ms=now_ms, ttl_ms=ttl_ms)


def config_params(args: argparse.Namespace) -> dict[str, Any]:
    """config_apply's params from --config-file / --patch-file; DocumentError naming what is wrong."""
    params: dict[str, Any] = {}
    if args.config_file is not None:
        doc = config_doc.read(args.config_file)
        params = {"config": doc, "hash": config_doc.config_hash(doc)}
    elif args.patch_file is not None:
        params = {"patch": config_doc.read(args.patch_file), "base_hash": args.base_hash}
    if params and args.deadline is not None:
        params["deadline_s"] = args.deadline
    return params


def fill_in(args: argparse.Namespace) -> str:
    """Defaults that depend on the action; an error message, or "" when the arguments are complete."""
    if args.dev is None:
        if args.action != "config_apply":
            return "--dev is required (the device the command is for)"
        args.dev = "gateway"
    if args.action == "config_apply" and args.config_file is None and args.patch_file is None:
        return "config_apply needs --config-file or --patch-file"
    if args.patch_file is not None and args.base_hash is None:
        args.base_hash = retained_config_hash(args)
        if not args.base_hash:
            return f"no config_hash in {args.gw}'s retained status: give --base-hash"
    if args.action == "config_apply" and args.wait == WAIT_S:
        args.wait = (args.deadline or 120) + 60  # the trial, the restarts and the reconnections
    return ""


def retained_config_hash(args: argparse.Namespace) -> str:
    """The config hash of the gateway's retained status ("" if none within 5 s)."""
    got: list[str] = []
    seen = threading.Event()

    def on_message(client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        with contextlib.suppress(ValueError, AttributeError):
            got.append(str(json.loads(msg.payload).get("config_hash", "")))
        seen.set()

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"gridedge-cmd-{uuid.uuid4().hex[:8]}")
    client.on_message = on_message
    client.connect(args.host, args.port)
    client.loop_start()
    try:
        client.subscribe(topics.status_topic(args.gw), qos=1)
        seen.wait(5)
    finally:
        client.disconnect()
        client.loop_stop()
    return got[0] if got else ""


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
    try:
        problem = fill_in(args)
        command = build_command(args, key, int(time.time() * 1000))
    except (config_doc.DocumentError, OSError) as exc:
        problem = str(exc)
    if problem:
        print(f"gridedge cmd: {problem}", file=sys.stderr)
        return 2
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
