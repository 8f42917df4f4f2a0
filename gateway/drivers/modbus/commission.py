"""`gridedge read/scan --protocol modbus`: one point of one unit, or which unit ids answer on a line.

    gridedge read --protocol modbus --port PORT --unit N --map MODEL --point NAME
    gridedge read --protocol modbus --port PORT --unit N --table input --address 0x0E --type u32 \
        --word-order little
    gridedge scan --protocol modbus --port PORT [--units 1-247]

Layer: gateway commissioning. Requests go through the Bus and the Modbus driver's transaction logic
(timeouts from the line's wire time, busy back-off, exception replies named), never a second owner
of the port.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from protocols.modbus import (
    DATA_TYPES,
    ReadRequest,
    RegistersReply,
    Table,
    decode_point,
    load_map,
    raw_point,
)
from protocols.modbus.pdu import BitsReply

from ...bus import Bus
from ...commission.ranges import parse_ids
from ...errors import BusError, DeviceError
from ..base import DriverContext
from .config import ModbusDevice
from .driver import ModbusDriver


def add_read_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("modbus")
    g.add_argument("--unit", type=lambda s: int(s, 0), help="Modbus unit id 1..247")
    g.add_argument("--map", help="register map: a shipped model name or a YAML file")
    g.add_argument("--point", help="canonical point name in the map")
    g.add_argument("--table", choices=[t.value for t in Table], help="raw read: register table")
    g.add_argument("--type", choices=sorted(DATA_TYPES), help="raw read: value type")
    g.add_argument("--word-order", choices=("big", "little"), default="big")
    g.add_argument(
        "--framing", choices=("rtu", "tcp"), default=None, help="default: tcp for tcp://, else rtu"
    )
    g.add_argument("--timeout", type=float, default=0.5, help="reply timeout in seconds (default 0.5)")


def add_scan_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("modbus")
    g.add_argument("--units", default="1-247", help="unit ids to try, e.g. 1-32 or 1,5,9 (default 1-247)")
    g.add_argument("--scan-timeout", type=float, default=0.1, help="per-unit reply timeout (default 0.1 s)")


def _framing(args: argparse.Namespace) -> str:
    if getattr(args, "framing", None):
        return str(args.framing)
    return "tcp" if args.port.startswith("tcp://") else "rtu"


def _driver(bus: Bus, args: argparse.Namespace, unit: int, timeout_s: float, retries: int) -> ModbusDriver:
    config = ModbusDevice(
        kind="modbus",
        id=f"unit-{unit}",
        unit=unit,
        map=getattr(args, "map", None) or "gridedge-prepaid",
        framing=_framing(args),  # type: ignore[arg-type]
        reply_timeout_ms=max(int(timeout_s * 1000), 10),
        retries=retries,
    )
    ctx = DriverContext("cli", lambda: int(time.time() * 1000), Path("."), logging.getLogger("gridedge.read"))
    return ModbusDriver(config, bus, ctx)


async def read(bus: Bus, args: argparse.Namespace) -> dict[str, Any]:
    if args.unit is None:
        raise DeviceError("--unit is required for --protocol modbus")
    if args.point:
        point = load_map(args.map or "gridedge-prepaid").point(args.point)
    elif args.table and args.address is not None and args.type:
        point = raw_point(Table(args.table), int(args.address, 0), args.type, word_order=args.word_order)
    else:
        raise DeviceError("give --map MODEL --point NAME, or --table T --address A --type T for a raw read")
    driver = _driver(bus, args, args.unit, args.timeout, retries=1)
    request = ReadRequest(point.table.read_function, point.address, point.size)
    reply = await driver.transact(request)
    data: tuple[int, ...] | tuple[bool, ...] = ()
    if isinstance(reply, RegistersReply):
        data = reply.registers
    elif isinstance(reply, BitsReply):
        data = reply.bits
    value = decode_point(point, data[: point.size])
    result: dict[str, Any] = {
        "protocol": "modbus",
        "unit_id": args.unit,
        "name": point.name,
        "table": point.table.value,
        "address": point.address,
        "type": point.type,
        "value": value,
        "unit": point.unit,
    }
    if args.raw:  # as on the wire: an RTU frame with its CRC, or an MBAP frame on tcp://
        result["framing"] = _framing(args)
        result["request"] = bus.last_request.hex(" ")
        result["reply"] = bytes(bus.last_reply).hex(" ")
    return result


async def scan(
    bus: Bus, args: argparse.Namespace, progress: Callable[[int, int, str], None]
) -> list[dict[str, Any]]:
    units = parse_ids(args.units, 1, 247, "--units", "unit ids")
    found: list[dict[str, Any]] = []
    for i, unit in enumerate(units):
        progress(i, len(units), f"unit {unit}")
        driver = _driver(bus, args, unit, args.scan_timeout, retries=0)
        driver.probing = True  # one attempt, no busy back-off
        started = time.monotonic()
        try:
            await driver.transact(ReadRequest(3, 0, 1))
            answer = "registers"
        except DeviceError as exc:  # an exception reply still proves the unit is there
            answer = str(exc.__cause__ or exc).split(": ", 1)[-1]
        except BusError:
            continue
        found.append(
            {"unit": unit, "answer": answer, "latency_ms": round((time.monotonic() - started) * 1000, 1)}
        )
    progress(len(units), len(units), "done")
    return found
