"""A Modbus TCP (MBAP) server in front of simulated Modbus devices, dispatching by unit id.

Layer: simulator I/O. Used by `gridedge sim modbus --port tcp://HOST:PORT`. TCP needs no wire-time
pacing, so this does not go through firmware_sim.line; each request ticks the addressed device to
`clock()` and asks it for the reply PDU. Unit 0 is a broadcast (writes applied by every device, no
reply); an unknown unit id gets exception 0x0B GATEWAY_TARGET_DEVICE_FAILED_TO_RESPOND, as a
serial-to-TCP gateway would answer (MODBUS Messaging on TCP/IP Implementation Guide, 4.4.2.2).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol, runtime_checkable

from protocols.errors import FrameError
from protocols.modbus import ExceptionCode, MbapFrame, MbapSplitter, build_mbap

log = logging.getLogger(__name__)


@runtime_checkable
class PduDevice(Protocol):
    unit: int

    def tick(self, now: float) -> None: ...

    def handle_pdu(self, unit: int, pdu: bytes, now: float) -> bytes | None: ...


async def serve_modbus_tcp(
    devices: Iterable[Any],
    host: str,
    port: int,
    ready: Callable[[str], None] | None = None,
    *,
    clock: Callable[[], float] = time.time,
) -> None:
    """Serve until cancelled. `ready` gets "tcp://HOST:PORT" once listening (port 0 = a free port)."""
    by_unit = _by_unit(devices)
    connections: set[asyncio.Task[Any]] = set()

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        connections.add(task)
        try:
            await _serve_connection(reader, writer, by_unit, clock)
        except (ConnectionError, FrameError) as exc:
            log.debug("modbus tcp client dropped: %s", exc)
        finally:
            connections.discard(task)
            writer.close()

    server = await asyncio.start_server(client, host, port)
    try:
        bound = server.sockets[0].getsockname()
        if ready is not None:
            ready(f"tcp://{bound[0]}:{bound[1]}")
        await server.serve_forever()
    finally:
        server.close()
        for task in list(connections):
            task.cancel()
        await asyncio.gather(*connections, return_exceptions=True)
        with contextlib.suppress(Exception):
            await server.wait_closed()


def _by_unit(devices: Iterable[Any]) -> dict[int, PduDevice]:
    by_unit: dict[int, PduDevice] = {}
    for dev in devices:
        if not isinstance(dev, PduDevice):
            raise TypeError(f"{dev!r} is not a Modbus device (no unit / handle_pdu)")
        by_unit[dev.unit] = dev
    return by_unit


async def _serve_connection(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    by_unit: dict[int, PduDevice],
    clock: Callable[[], float],
) -> None:
    splitter = MbapSplitter()
    while True:
        data = await reader.read(4096)
        if not data:
            return
        for frame in splitter.feed(data):
            reply = dispatch(frame, by_unit, clock())
            if reply is not None:
                writer.write(reply)
        await writer.drain()


def dispatch(frame: MbapFrame, by_unit: dict[int, PduDevice], now: float) -> bytes | None:
    """The MBAP reply to one request frame, or None (broadcast)."""
    if frame.unit == 0:
        for dev in by_unit.values():
            dev.tick(now)
            dev.handle_pdu(0, frame.pdu, now)
        return None
    target = by_unit.get(frame.unit)
    if target is None:
        gateway_reply = bytes((frame.pdu[0] | 0x80, ExceptionCode.GATEWAY_TARGET_DEVICE_FAILED_TO_RESPOND))
        return build_mbap(frame.transaction_id, frame.unit, gateway_reply)
    target.tick(now)
    pdu = target.handle_pdu(frame.unit, frame.pdu, now)
    return None if pdu is None else build_mbap(frame.transaction_id, frame.unit, pdu)
