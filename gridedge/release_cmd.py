"""`gridedge release`: sign a release artifact, and send a signed update to a gateway.

    gridedge release sign dist/gridedge-0.2.0-linux_aarch64.tar.gz --private-key ~/.config/gridedge/ops.key
    gridedge release update --gw gw-01 --url https://repo.example/gridedge-0.2.0-linux_aarch64.tar.gz \
        --signature dist/gridedge-0.2.0-linux_aarch64.tar.gz.sig --private-key ~/.config/gridedge/ops.key

`sign` writes `ARTIFACT.sig` beside the artifact: JSON naming the artifact, its version, size and
SHA-256, Ed25519-signed (gateway.release). `update` sends the `update` command to the gateway's own
device (`gridedge/v1/{gw}/gateway/cmd`), signed with the same kind of key, and waits for its final
result: `done` once the new release is running and healthy, `failed` when it was rolled back,
`rejected` when the gateway refused it (a bad signature, a tampered artifact). Only Ed25519: a
gateway refuses code or an update command signed with a shared HMAC key.

Composition root: an operator's tool, not a service. Must not: print or log a private key.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from gateway.commands import GATEWAY_DEV
from gateway.release import UpdateError, sign_artifact

from . import cmd
from .keys import KeyFileError, load_signer


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("release", help="sign a release artifact; send a signed update to a gateway")
    actions = p.add_subparsers(dest="release_action", metavar="ACTION", required=True)
    sign = actions.add_parser("sign", help="write ARTIFACT.sig (Ed25519) beside a release artifact")
    sign.add_argument("artifact", type=Path, help="gridedge-<version>-<platform>.tar.gz or a wheel")
    sign.add_argument("--private-key", required=True, type=Path, help="an Ed25519 key (gridedge keys)")
    sign.set_defaults(handler=run_sign)
    upd = actions.add_parser("update", help="send a signed update command and wait for its result")
    upd.add_argument("--gw", required=True)
    upd.add_argument("--url", required=True, help="where the gateway fetches the artifact (http/https/file)")
    upd.add_argument("--signature", required=True, type=Path, help="the artifact's .sig file")
    upd.add_argument("--private-key", required=True, type=Path, help="an Ed25519 key (gridedge keys)")
    upd.add_argument("--host", default="localhost")
    upd.add_argument("--port", type=int, default=int(os.environ.get("GRIDEDGE_MQTT__PORT", "1883")))
    upd.add_argument("--ttl", type=float, default=600, help="seconds the command stays valid")
    upd.add_argument("--wait", type=float, default=900, help="seconds to wait (install + trial)")
    upd.add_argument("--json", action="store_true", help="print the results as JSON lines")
    upd.set_defaults(handler=run_update)


def run_sign(args: argparse.Namespace) -> int:
    try:
        signer = load_signer(args.private_key)
        doc = sign_artifact(args.artifact, signer)
    except (KeyFileError, UpdateError) as exc:
        print(f"gridedge release: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"gridedge release: {args.artifact}: {exc.strerror}", file=sys.stderr)
        return 1
    out = args.artifact.with_name(args.artifact.name + ".sig")
    out.write_text(json.dumps(doc, sort_keys=True) + "\n")
    print(f"{out}: {doc['artifact']} {doc['version']} sha256 {doc['sha256']} signed by key {doc['kid']}")
    return 0


def run_update(args: argparse.Namespace) -> int:
    try:
        signature = json.loads(args.signature.read_text())
    except (OSError, ValueError) as exc:
        print(f"gridedge release: {args.signature}: cannot read the signature: {exc}", file=sys.stderr)
        return 2
    params = {"url": args.url, "signature": signature, "sha256": signature.get("sha256", "")}
    # through `gridedge cmd`'s own parser, so its every option has its default
    parser = argparse.ArgumentParser(prog="gridedge")
    cmd.register(parser.add_subparsers(dest="command"))
    words = ["cmd", "--gw", args.gw, "--dev", GATEWAY_DEV, "--action", "update"]
    words += [f"--param={k}={json.dumps(v)}" for k, v in params.items()]
    words += ["--private-key", str(args.private_key), "--host", args.host, "--port", str(args.port)]
    words += ["--ttl", str(args.ttl), "--wait", str(args.wait)] + (["--json"] if args.json else [])
    return cmd.run(parser.parse_args(words))
