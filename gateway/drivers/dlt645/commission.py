"""`gridedge read/scan --protocol dlt645`: one item of one meter, or which meters answer on a line.

    gridedge read --protocol dlt645 --port PORT --address 000000000001 --item energy_import_kwh
    gridedge read --protocol dlt645 --port PORT --address 000000000001 --di 00010000 --raw
    gridedge scan --protocol dlt645 --port PORT                      (one meter: read its address)
    gridedge scan --protocol dlt645 --port PORT --addresses 000000000001-000000000032

Layer: gateway commissioning. Requests go through the Bus and the DL/T 645 driver's transactions.
The wildcard read-address (AA..AA) works only with one meter on the line: with several, every meter
answers at once and the replies collide, so a multi-meter line is scanned over an address range.
"""

from __future__ import annotations

import argparse
import logging
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from protocols.dlt645 import (
    MeterRefused,
    ReplyMatcher,
    Version,
    canonical_values,
    decode_values,
    lookup,
    parse_address_reply,
    read_address_request,
)
from protocols.errors import ProtocolError

from ...bus import Bus
from ...errors import BusError, DeviceError
from ...line import Timing
from ..base import DriverContext
from .config import Dlt645Device
from .driver import Dlt645Driver


def add_read_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("dlt645")
    g.add_argument("--item", help="catalogue/canonical name or DI in hex (e.g. energy_import_kwh, 00010000)")
    g.add_argument("--di", help="data identifier in hex (e.g. 00010000, or 9010 for 1997)")
    g.add_argument("--version", choices=("2007", "1997"), default="2007", dest="dlt_version")
    g.add_argument("--reply-timeout", type=float, default=1.0, help="seconds (default 1.0)")


def add_scan_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("dlt645")
    g.add_argument("--addresses", help="address range FIRST-LAST (12 digits each) to probe one by one")
    g.add_argument("--version", choices=("2007", "1997"), default="2007", dest="dlt_version")


_ADDRESS = re.compile(r"(?:[0-9]{2}|AA){6}")


def _driver(bus: Bus, address: str, version: str, timeout_s: float, retries: int) -> Dlt645Driver:
    config = Dlt645Device(
        kind="dlt645",
        id="cli",
        address="000000000000",  # a placeholder the model accepts; the real one is put in below
        version=version,  # type: ignore[arg-type]
        items=["energy_import_kwh"] if version == "2007" else ["9010"],
        reply_timeout_ms=max(int(timeout_s * 1000), 20),
        retries=retries,
    )
    # a gateway config refuses a wildcard address (it could answer for any meter of a multi-drop
    # line); an engineer reading the only meter of a line may use one (dlt645.md §1.4)
    config = config.model_copy(update={"id": address, "address": address})
    ctx = DriverContext("cli", lambda: int(time.time() * 1000), Path("."), logging.getLogger("gridedge.read"))
    return Dlt645Driver(config, bus, ctx)


def check_address(address: str | None) -> str:
    """The meter address of `--address`: 12 digits, or AA wildcard bytes for a one-meter line."""
    if not address:
        raise DeviceError("--address is required for --protocol dlt645 (12 digits, or AAAAAAAAAAAA)")
    address = address.upper()
    if not _ADDRESS.fullmatch(address):
        raise DeviceError(
            f"--address {address!r}: 12 digits as on the nameplate (e.g. 000000000001), or AA "
            "wildcard bytes (AAAAAAAAAAAA) to reach the only meter of a line"
        )
    return address


async def read(bus: Bus, args: argparse.Namespace) -> dict[str, Any]:
    address = check_address(args.address)
    key = args.item or args.di
    if not key:
        raise DeviceError("--item NAME or --di HEX is required for --protocol dlt645")
    version = Version(args.dlt_version)
    item = lookup(key, version)
    driver = _driver(bus, address, args.dlt_version, args.reply_timeout, retries=1)
    try:
        reply = await driver.read_item(item)
    except MeterRefused as exc:
        raise DeviceError(f"meter {address}: {exc}") from exc
    values = decode_values(item, reply.data)
    result: dict[str, Any] = {
        "protocol": "dlt645",
        "address": reply.address,  # the meter's own address, also when asked by wildcard
        "name": item.name,
        "di": item.di_hex,
        "value": values.get(item.name, values),
        "unit": item.unit,
        "values": values,
        "canonical": canonical_values(values),
    }
    if args.raw:  # the last exchange as it was on the wire (the last part of a multi-frame reply)
        result["request"] = bus.last_request.hex(" ")
        result["reply"] = bytes(bus.last_reply).hex(" ")
    return result


def _range(spec: str) -> list[str]:
    first, _, last = spec.partition("-")
    lo, hi = int(first), int(last or first)
    if not (len(first) == 12 and (not last or len(last) == 12) and 0 <= lo <= hi and hi - lo < 10_000):
        raise DeviceError("--addresses must be FIRST-LAST, 12 digits each, at most 10,000 addresses")
    return [f"{a:012d}" for a in range(lo, hi + 1)]


async def scan(
    bus: Bus, args: argparse.Namespace, progress: Callable[[int, int, str], None]
) -> list[dict[str, Any]]:
    if not args.addresses:
        progress(0, 1, "read address (one meter on the line)")
        request = read_address_request()
        timing = Timing(1.0, max(0.05, 3 * bus.line.char_time()), 0.05)
        try:
            frame = await bus.transact(request.encode(4), lambda: ReplyMatcher.for_request(request), timing)
            return [{"address": parse_address_reply(frame), "version": "2007"}]
        except (BusError, ProtocolError) as exc:
            raise DeviceError(
                f"no meter answered the wildcard read-address ({exc}); "
                "with several meters on the line, use --addresses"
            ) from exc
    addresses = _range(args.addresses)
    found = []
    for i, address in enumerate(addresses):
        progress(i, len(addresses), address)
        driver = _driver(bus, address, args.dlt_version, 0.3, retries=0)
        driver.probing = True
        started = time.monotonic()
        try:
            await driver.read_item(driver.items[0])
            answer = "ok"
        except MeterRefused as exc:
            answer = f"refused: {exc}"
        except (BusError, ProtocolError):
            continue
        found.append(
            {
                "address": address,
                "answer": answer,
                "latency_ms": round((time.monotonic() - started) * 1000, 1),
            }
        )
    progress(len(addresses), len(addresses), "done")
    return found
