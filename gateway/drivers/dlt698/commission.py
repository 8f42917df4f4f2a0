"""`gridedge read/scan --protocol dlt698`: one object of one meter, or which meters answer on a line.

    gridedge read --protocol dlt698 --port PORT --address 000000000001 --oad 00100200
    gridedge read --protocol dlt698 --port PORT --address 000000000001 --item balance_cny --raw
    gridedge read --protocol dlt698 --port PORT --address AAAAAAAAAAAA --oad 40010200  (the only meter)
    gridedge scan --protocol dlt698 --port PORT                       (one meter: wildcard read of 40010200)
    gridedge scan --protocol dlt698 --port PORT --addresses 000000000001-000000000032

Layer: gateway commissioning. Requests go through the Bus and the DL/T 698.45 driver's transactions.
`--item`, `--addresses` and `--reply-timeout` are shared with DL/T 645 in the one `read`/`scan`
parser (added by whichever kind comes first); `--oad` is this kind's own. A wildcard address (AF type
1, SA all A) is answered by every meter on the line at once, so it works only with one meter there:
a multi-meter line is scanned over an address range.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from protocols.dlt698 import (
    Address,
    ErrorResponse,
    Frame,
    GetResponse,
    MeterRefused,
    Oad,
    ReplyMatcher,
    canonical_values,
    check_reply,
    get_request,
    object_values,
    piid,
    to_python,
)
from protocols.dlt698 import lookup as catalogue_entry
from protocols.errors import ProtocolError

from ...bus import Bus
from ...errors import BusError, DeviceError
from ...line import Timing
from ..base import DriverContext
from .config import Dlt698Device, object_oad
from .driver import Dlt698Driver

METER_ADDRESS = Oad(0x4001, 2)
_ADDRESS = re.compile(r"(?:[0-9]{2}){1,16}|(?:AA){1,16}")
MAX_RANGE = 10_000


def _add_once(p: argparse.ArgumentParser, group: Any, flag: str, **kw: Any) -> None:
    """A flag another kind may already have added to the shared parser (same meaning, one option)."""
    if flag not in p._option_string_actions:
        group.add_argument(flag, **kw)


def add_read_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("dlt698")
    g.add_argument("--oad", help="DL/T 698.45 object attribute, 8 hex digits (e.g. 00100200, 40010200)")
    _add_once(p, g, "--item", help="value name (e.g. energy_import_kwh, balance_cny) or code (DI / OAD)")
    _add_once(p, g, "--reply-timeout", type=float, default=1.0, help="seconds (default 1.0)")


def add_scan_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("dlt698")
    _add_once(p, g, "--addresses", help="address range FIRST-LAST (12 digits each) to probe one by one")


def check_address(address: str | None) -> Address:
    """The meter of `--address`: its digits, or all-A (AAAAAAAAAAAA) for the only meter of a line."""
    if not address:
        raise DeviceError("--address is required for --protocol dlt698 (the meter's digits, or AAAAAAAAAAAA)")
    text = address.upper()
    if not _ADDRESS.fullmatch(text):
        raise DeviceError(
            f"--address {address!r}: the meter's address as on the nameplate (an even number of digits, "
            "e.g. 000000000001), or AAAAAAAAAAAA to reach the only meter of a line"
        )
    return Address.wildcard(len(text)) if text.startswith("A") else Address(text)


def _driver(bus: Bus, address: Address, timeout_s: float, retries: int) -> Dlt698Driver:
    config = Dlt698Device(
        kind="dlt698",
        id="cli",
        address="000000000000",  # a placeholder the model accepts; the driver's address is set below
        objects=["40010200"],
        reply_timeout_ms=max(int(timeout_s * 1000), 20),
        retries=retries,
        backfill=False,
        clock_check_s=0,
    )
    ctx = DriverContext("cli", lambda: int(time.time() * 1000), Path("."), logging.getLogger("gridedge.read"))
    driver = Dlt698Driver(config, bus, ctx)
    # a gateway config refuses a wildcard (it could answer for any meter of a multi-drop line); an
    # engineer reading the only meter of a line may use one (dlt698.md §1)
    driver.address = address
    return driver


def _oad(args: argparse.Namespace) -> tuple[Oad, str | None]:
    """The OAD to read and the value name asked for (None for a raw OAD)."""
    key = args.oad or args.item
    if not key:
        raise DeviceError("--oad HEX or --item NAME is required for --protocol dlt698")
    try:
        return object_oad(key), None if re.fullmatch(r"[0-9A-Fa-f]{8}", key) else key
    except ValueError as exc:
        raise DeviceError(f"--{'oad' if args.oad else 'item'}: {exc}") from None


async def read(bus: Bus, args: argparse.Namespace) -> dict[str, Any]:
    address = check_address(args.address)
    oad, name = _oad(args)
    driver = _driver(bus, address, args.reply_timeout, retries=1)
    request = get_request(address, oad, driver.session.next_piid())
    try:
        reply = await driver.session.transact(request)
    except (MeterRefused, ErrorResponse) as exc:
        raise DeviceError(str(exc)) from exc
    assert isinstance(reply.apdu, GetResponse) and reply.apdu.result.data is not None
    data = reply.apdu.result.data
    values = object_values(oad, data)
    entry = catalogue_entry(oad)
    result: dict[str, Any] = {
        "protocol": "dlt698",
        "address": reply.address.sa,  # the meter's own address, also when asked by wildcard
        "oad": str(oad),
        "name": name or (entry.description if entry else str(oad)),
        "value": values.get(name, values) if name else (values or to_python(data)),
        "unit": entry.unit if entry and entry.kind.value == "number" else "",
        "values": {k: v.isoformat(sep=" ") if isinstance(v, dt.datetime) else v for k, v in values.items()},
        "canonical": canonical_values(oad, data),
        "data": to_python(data),
    }
    if args.raw:  # the exchange as it was on the wire
        result["request"] = bus.last_request.hex(" ")
        result["reply"] = bytes(bus.last_reply).hex(" ")
    return result


def _range(spec: str) -> list[str]:
    first, _, last = spec.partition("-")
    last = last or first
    ok = first.isdigit() and last.isdigit() and len(first) == len(last) and len(first) % 2 == 0
    if not ok or not 0 <= int(last) - int(first) < MAX_RANGE:
        raise DeviceError(
            f"--addresses {spec!r}: FIRST-LAST, digits of the same even length (e.g. "
            f"000000000001-000000000032), at most {MAX_RANGE:,} addresses"
        )
    return [f"{a:0{len(first)}d}" for a in range(int(first), int(last) + 1)]


async def scan(
    bus: Bus, args: argparse.Namespace, progress: Callable[[int, int, str], None]
) -> list[dict[str, Any]]:
    if not args.addresses:
        return [await _wildcard(bus, progress)]
    addresses = _range(args.addresses)
    found = []
    for i, text in enumerate(addresses):
        progress(i, len(addresses), text)
        driver = _driver(bus, Address(text), 0.3, retries=0)
        driver.probing = True
        started = time.monotonic()
        try:
            await driver.session.transact(
                get_request(driver.address, METER_ADDRESS, driver.session.next_piid())
            )
            answer = "ok"
        except (MeterRefused, ErrorResponse) as exc:
            answer = f"refused: {exc}"
        except (BusError, ProtocolError):
            continue
        found.append(
            {"address": text, "answer": answer, "latency_ms": round((time.monotonic() - started) * 1000, 1)}
        )
    progress(len(addresses), len(addresses), "done")
    return found


async def _wildcard(bus: Bus, progress: Callable[[int, int, str], None]) -> dict[str, Any]:
    progress(0, 1, "wildcard read of 40010200 (one meter on the line)")
    request = get_request(Address.wildcard(12), METER_ADDRESS, piid(1))
    timing = Timing(1.0, max(0.05, 3 * bus.line.char_time()), 0.05)
    try:
        frame: Frame = await bus.transact(
            request.encode(4), lambda: ReplyMatcher.for_request(request), timing
        )
        reply = check_reply(request, frame)
    except (BusError, ProtocolError) as exc:
        raise DeviceError(
            f"no meter answered the wildcard read of 40010200 ({exc}); with several meters on the line, "
            "use --addresses"
        ) from exc
    assert isinstance(reply.apdu, GetResponse)
    data = reply.apdu.result.data
    number = object_values(METER_ADDRESS, data).get("meter_address") if data is not None else None
    return {"address": reply.address.sa, "meter_address": number, "protocol": "dlt698"}
