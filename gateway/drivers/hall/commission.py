"""`gridedge read/scan --protocol hall`: identify or poll one hall device, or find the hall devices on a line.

    gridedge read --protocol hall --port PORT --hall-address 3 [--hall-read identify|poll] [--raw]
    gridedge scan --protocol hall --port PORT [--hall-addresses 1-63]

Layer: gateway commissioning. Requests go through the Bus (one owner of the port) with the hall
protocol's timing. A POLL here never acknowledges anything (ACK_SEQ 00), so commissioning a live hall
does not take events away from its gateway: the device sends the same event again to the next POLL.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

from protocols.errors import ProtocolError
from protocols.hall import (
    DeviceKind,
    Frame,
    ReplyMatcher,
    identify_request,
    parse_identify_reply,
    parse_poll_reply,
    poll_request,
)

from ...bus import Bus
from ...commission.ranges import parse_ids
from ...errors import BusError, DeviceError
from ...line import Timing

KINDS = {DeviceKind.DISPENSER: "dispenser", DeviceKind.KEYPAD: "keypad", DeviceKind.RATING_PAD: "rating pad"}


def add_read_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("hall")
    g.add_argument("--hall-address", type=lambda s: int(s, 0), help="hall device address 1..254")
    g.add_argument(
        "--hall-read", choices=("identify", "poll"), default="identify", help="IDENTIFY (default) or POLL"
    )


def add_scan_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("hall")
    g.add_argument(
        "--hall-addresses", default="1-63", help="addresses to IDENTIFY, e.g. 1-63 or 1,2,33 (default 1-63)"
    )


async def _exchange(bus: Bus, request: Frame, timeout_s: float) -> Frame:
    line = bus.line
    timing = Timing(timeout_s, max(0.02, 3 * line.char_time()), max(3.5 * line.char_time(), 0.002), retries=0)
    return await bus.transact(request.encode(), lambda: ReplyMatcher.for_request(request), timing)


async def read(bus: Bus, args: argparse.Namespace) -> dict[str, Any]:
    address = args.hall_address
    if address is None or not 1 <= address <= 254:
        raise DeviceError("--hall-address 1..254 is required for --protocol hall")
    timeout = getattr(args, "timeout", None) or 0.2
    request = identify_request(address) if args.hall_read == "identify" else poll_request(address, 0)
    reply = await _exchange(bus, request, timeout)
    result: dict[str, Any] = {"protocol": "hall", "address": address}
    try:
        if args.hall_read == "identify":
            ident = parse_identify_reply(reply)
            result |= {
                "name": "identity",
                "value": f"{KINDS[ident.kind]} fw {ident.firmware} counter {ident.counter}",
            }
            result |= {"kind": KINDS[ident.kind], "firmware": ident.firmware, "counter": ident.counter}
        else:
            event = parse_poll_reply(reply)
            result |= {"name": "event", "value": "none pending" if event is None else _event(event)}
    except ProtocolError as exc:
        raise DeviceError(f"hall device {address:02X}: {exc}") from exc
    if args.raw:
        result |= {"request": request.encode().hex(" "), "reply": reply.encode().hex(" ")}
    return result


def _event(event: Any) -> str:
    fields = {
        k: getattr(event, k)
        for k in ("business", "ticket", "staff", "level")
        if getattr(event, k) is not None
    }
    extra = " ".join(f"{k}={int(v)}" for k, v in fields.items())
    return f"SEQ {event.seq} {event.name} {extra}".strip()


async def scan(
    bus: Bus, args: argparse.Namespace, progress: Callable[[int, int, str], None]
) -> list[dict[str, Any]]:
    addresses = parse_ids(args.hall_addresses, 1, 254, "--hall-addresses", "addresses")
    timeout = getattr(args, "scan_timeout", None) or 0.1
    found: list[dict[str, Any]] = []
    for i, address in enumerate(addresses):
        progress(i, len(addresses), f"address {address}")
        started = time.monotonic()
        try:
            reply = await _exchange(bus, identify_request(address), timeout)
        except BusError:
            continue
        row: dict[str, Any] = {
            "address": address,
            "latency_ms": round((time.monotonic() - started) * 1000, 1),
        }
        try:
            ident = parse_identify_reply(reply)
            row |= {"kind": KINDS[ident.kind], "firmware": ident.firmware, "counter": ident.counter}
        except ProtocolError as exc:  # it answered: it is there, but not as the protocol says
            row |= {"kind": "?", "answer": str(exc)}
        found.append(row)
    progress(len(addresses), len(addresses), "done")
    return found


def propose(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`gridedge commission`: one hall device from the scan's rows (the devices of a hall line are one
    gateway device): the dispenser's address and, per counter, the keypad and rating pad that said
    they belong to it. A keypad or pad whose counter is not 1..31, or a second dispenser, is not
    guessed at: it stays out of the proposal (`gridedge scan --protocol hall` lists it)."""
    dispensers = [row["address"] for row in found if row.get("kind") == "dispenser"]
    if not dispensers:
        return []
    counters: dict[int, dict[str, int]] = {}
    roles = {"keypad": "keypad", "rating pad": "rating_pad"}
    for row in found:
        counter, role = row.get("counter"), roles.get(str(row.get("kind")))
        if role and isinstance(counter, int) and 1 <= counter <= 31:
            counters.setdefault(counter, {"counter": counter})[role] = row["address"]
    lacking = [
        f"counter {c}: no {name} answered"
        for c in sorted(counters)
        for role, name in (("keypad", "keypad"), ("rating_pad", "rating pad"))
        if role not in counters[c]
    ]
    answer = "; ".join([f"dispenser {dispensers[0]}, {len(counters)} counter(s)", *lacking])
    return [
        {"dispenser": dispensers[0], "counters": [counters[c] for c in sorted(counters)], "answer": answer}
    ]
