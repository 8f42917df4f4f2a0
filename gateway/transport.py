"""Byte transports under a bus: a local serial device (pyserial-asyncio-fast) or a serial device
server reached over TCP (`socket://host:port` or `tcp://host:port`, raw bytes, RTU-over-TCP style).

Layer: I/O. The only place where pyserial / OS errors are mapped to gateway errors. A transport is
owned by exactly one Bus; nothing else opens the port.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import termios
import time
from urllib.parse import urlsplit

import serial
import serial_asyncio_fast

from .errors import PortUnavailable
from .line import LineSettings

_READ_CHUNK = 4096


class Transport:
    """Opened with `open()`; `read()` returns b"" on timeout and raises PortUnavailable on loss."""

    def __init__(self, url: str, line: LineSettings) -> None:
        self.url = url
        self.line = line
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    @property
    def is_open(self) -> bool:
        return self._writer is not None and not self._writer.is_closing()

    async def open(self) -> None:
        try:
            async with asyncio.timeout(10):
                self._reader, self._writer = await self._connect()
        except (OSError, serial.SerialException, TimeoutError, ValueError, termios.error) as exc:
            raise PortUnavailable(f"{self.url}: cannot open: {exc}") from exc

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        host_port = tcp_address(self.url)
        if host_port is not None:
            return await asyncio.open_connection(*host_port)
        # A pseudo-terminal has no UART: Linux refuses parity settings on it (EINVAL), and they would
        # mean nothing there. Wire timing on a pty is the simulator's job, so open it plain.
        parity = "N" if is_pty(self.url) else self.line.parity
        return await serial_asyncio_fast.open_serial_connection(
            url=self.url,
            baudrate=self.line.baud or 9600,
            bytesize=self.line.bytesize,
            parity=parity,
            stopbits=self.line.stopbits,
        )

    async def close(self) -> None:
        writer, self._writer, self._reader = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError, serial.SerialException, ConnectionError):
                await writer.wait_closed()

    async def write(self, data: bytes) -> None:
        if self._writer is None:
            raise PortUnavailable(f"{self.url}: not open")
        try:
            self._writer.write(data)
            await self._writer.drain()
        except (OSError, serial.SerialException, ConnectionError) as exc:
            raise PortUnavailable(f"{self.url}: write failed: {exc}") from exc

    async def read(self, timeout: float) -> bytes:
        """Whatever bytes arrive within `timeout` seconds (b"" if none)."""
        if self._reader is None:
            raise PortUnavailable(f"{self.url}: not open")
        try:
            # asyncio.timeout, not wait_for: Python 3.11's wait_for can swallow a cancellation that
            # arrives as the read completes, and a bus worker that ignores cancel never stops
            async with asyncio.timeout(max(timeout, 0.0)):
                data = await self._reader.read(_READ_CHUNK)
        except TimeoutError:
            return b""
        except (OSError, serial.SerialException, ConnectionError) as exc:
            raise PortUnavailable(f"{self.url}: read failed: {exc}") from exc
        if not data:
            raise PortUnavailable(f"{self.url}: connection closed by the other end")
        return data

    async def hold(self, seconds: float) -> None:
        """Leave the bytes arriving in the next `seconds` in the OS buffer: one read afterwards instead
        of one event-loop wake-up (and one read) per character while a frame of known size arrives."""
        transport = self._writer.transport if self._writer is not None else None
        if not isinstance(transport, asyncio.ReadTransport) or transport.is_closing():
            await asyncio.sleep(seconds)
            return
        transport.pause_reading()
        try:
            await asyncio.sleep(seconds)
        finally:
            if not transport.is_closing():
                transport.resume_reading()

    async def discard_input(self, until: float = 0.0, quiet_s: float = 0.0, limit: float = 0.0) -> int:
        """Read and drop bytes that arrive outside a transaction (late replies, noise) until the
        monotonic time `until`, then whatever is already buffered (without waiting); count them.

        A stray byte means the line was not quiet: the deadline moves to `quiet_s` after it, but never
        past `limit` (so a babbling line cannot hold the bus forever)."""
        dropped = 0
        while True:
            chunk = await self.read(until - time.monotonic())  # <= 0: a non-blocking look
            if not chunk:
                return dropped
            dropped += len(chunk)
            until = max(until, min(time.monotonic() + quiet_s, limit))


def tcp_address(url: str) -> tuple[str, int] | None:
    """(host, port) for socket:// and tcp:// URLs, None for a serial device path."""
    if "://" not in url:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("socket", "tcp") or not parts.hostname or parts.port is None:
        raise ValueError(f"{url!r}: expected a device path or socket://HOST:PORT / tcp://HOST:PORT")
    return parts.hostname, parts.port


def is_pty(path: str) -> bool:
    return os.path.realpath(path).startswith("/dev/pts/")
