"""`gridedge decode --protocol P [--json] HEX`: decode one captured frame, the tool a field engineer
pastes a capture into. Each protocol package provides `describe(bytes) -> dict`."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from typing import Any

from protocols import ProtocolError, kinds


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("decode", help="decode one captured frame (hex, spaces allowed)")
    p.add_argument("--protocol", required=True, choices=kinds.names())
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.add_argument("hex", nargs="+", metavar="HEX", help="frame bytes in hex, e.g. 'FE FE 68 ... 16'")
    p.set_defaults(handler=run)


def parse_hex(parts: list[str]) -> bytes:
    text = "".join(parts).replace(" ", "").replace(":", "").replace("-", "")
    if text.lower().startswith("0x"):
        text = text[2:]
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise ValueError(f"not hex: {' '.join(parts)!r}") from None


def run(args: argparse.Namespace) -> int:
    describe = importlib.import_module(f"protocols.{args.protocol}").describe
    try:
        data = parse_hex(args.hex)
    except ValueError as exc:
        print(f"gridedge decode: {exc}", file=sys.stderr)
        return 2
    try:
        result: dict[str, Any] = describe(data)
    except ProtocolError as exc:
        if args.json:
            print(json.dumps({"ok": False, "error": str(exc), "error_type": type(exc).__name__}))
        else:
            print(f"error: {exc}")
        return 1
    if args.json:
        print(json.dumps(result, ensure_ascii=False, default=str))
    else:
        print_description(result)
    return 0


def print_description(result: dict[str, Any], indent: str = "", first: str = "") -> None:
    """`result` as indented text; a list of dicts is a YAML-like list: `- ` opens each item, its
    other keys line up under the first (`first` is the marker of the item's first line)."""
    width = max((len(k) for k in result), default=0)
    for n, (key, value) in enumerate(result.items()):
        lead = indent + (first if n == 0 else " " * len(first))
        if isinstance(value, dict) and value:
            print(f"{lead}{key}:")
            print_description(value, indent + " " * len(first) + "  ")
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            print(f"{lead}{key}:")
            for item in value:
                print_description(item, indent + " " * len(first) + "  ", "- ")
        else:
            print(f"{lead}{key.ljust(width)}  {value}")
