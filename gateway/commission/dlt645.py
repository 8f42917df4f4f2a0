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
    read_request,
)
from protocols.errors import ProtocolError

from ..bus import Bus
from ..drivers.base import DriverContext
from ..drivers.dlt645 import Dlt645Driver
from ..drivers.dlt645_config import Dlt645Device
from ..errors import BusError, DeviceError
from ..line import LineSettings, Timing


def default_line() -> LineSettings:
    return LineSettings(2400, 8, "E", 1)


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


def _driver(bus: Bus, address: str, version: str, timeout_s: float, retries: int) -> Dlt645Driver:
    config = Dlt645Device(
        kind="dlt645",
        id=address,
        address=address,
        version=version,  # type: ignore[arg-type]
        items=["energy_import_kwh"] if version == "2007" else ["9010"],
        reply_timeout_ms=max(int(timeout_s * 1000), 20),
        retries=retries,
    )
    ctx = DriverContext("cli", lambda: int(time.time() * 1000), Path("."), logging.getLogger("gridedge.read"))
    return Dlt645Driver(config, bus, ctx)


async def read(bus: Bus, args: argparse.Namespace) -> dict[str, Any]:
    key = args.item or args.di
    if not args.address or not key:
        raise DeviceError("--address (12 digits) and --item or --di are required for --protocol dlt645")
    version = Version(args.dlt_version)
    item = lookup(key, version)
    driver = _driver(bus, args.address, args.dlt_version, args.reply_timeout, retries=1)
    try:
        reply = await driver.read_item(item)
    except MeterRefused as exc:
        raise DeviceError(f"meter {args.address}: {exc}") from exc
    values = decode_values(item, reply.data)
    result: dict[str, Any] = {
        "protocol": "dlt645",
        "address": args.address,
        "name": item.name,
        "di": item.di_hex,
        "value": values.get(item.name, values),
        "unit": item.unit,
        "values": values,
        "canonical": canonical_values(values),
    }
    if args.raw:
        result["request"] = read_request(args.address, item.di, version).encode(4).hex(" ")
        result["reply"] = reply.data.hex(" ")
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
