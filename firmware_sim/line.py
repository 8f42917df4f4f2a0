"""A virtual RS-485 line: simulated devices behind a real pseudo-terminal or a TCP "serial device
server", with honest wire timing.

Layer: simulator I/O. A pty delivers bytes instantly; real wire time exists only because this line
paces it: a request is "heard" by the devices only once its airtime (len x bits-per-char / baud) has
passed since its first byte, the reply starts after the device's turnaround, and its bytes are
released at the baud rate. Requests are delimited by line silence (3.5 characters, like Modbus RTU,
at least 2 ms). Several devices answering at once (a wildcard on a multi-drop line) collide into
garbage, as on a real bus. Echo (half-duplex adapters reading back their own request), noise bursts
and per-reply faults are injected here so that every protocol gets them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
import tty
from collections.abc import Callable
from dataclasses import dataclass, field

from .device import SimDevice
from .faults import Faults

log = logging.getLogger(__name__)

Writer = Callable[[bytes], None]


@dataclass(frozen=True, slots=True)
class Wire:
    baud: int = 2400
    bits_per_char: int = 11  # 8E1 (DL/T 645); 10 for 8N1

    @property
    def char_time(self) -> float:
        return self.bits_per_char / self.baud if self.baud else 0.0

    def airtime(self, nbytes: int) -> float:
        return nbytes * self.char_time


@dataclass
class LineStats:
    requests: int = 0
    replies: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    turnarounds: list[float] = field(default_factory=list)


class Line:
    """Hosts devices on one line. `await line.serve_pty(ready)` or `await line.serve_tcp(...)`."""

    def __init__(
        self,
        devices: list[SimDevice],
        wire: Wire,
        *,
        clock: Callable[[], float] = time.time,
        echo: bool = False,
        faults: Faults | None = None,
        tick_s: float = 0.2,
    ) -> None:
        self.devices = list(devices)
        self.wire = wire
        self.clock = clock
        self.echo = echo
        self.faults = faults or Faults()
        self.stats = LineStats()
        self.tick_s = tick_s
        self._gap = max(3.5 * wire.char_time, 0.002)
        self._writers: list[Writer] = []
        self._write_lock = asyncio.Lock()

    def device(self, name: str) -> SimDevice:
        for dev in self.devices:
            if dev.name == name:
                return dev
        raise KeyError(f"no device {name!r} on this line")

    # ---- serving --------------------------------------------------------------------------------

    async def serve_pty(self, ready: Callable[[str], None], link: str | None = None) -> None:
        """Create a raw pty, report its path (or the symlink `link` to it), serve until cancelled."""
        master, slave = os.openpty()
        tty.setraw(slave)
        path = os.ttyname(slave)
        if link:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(link)
            os.symlink(path, link)
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        read_fd = os.dup(master)
        os.set_blocking(read_fd, False)
        read_transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(read_fd, "rb", buffering=0)
        )

        def write(data: bytes) -> None:
            os.write(master, data)

        try:
            ready(link or path)
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._ticker(), name="line:ticker")
                tg.create_task(self._serve_stream(reader, write), name=f"line:pty:{path}")
        finally:
            read_transport.close()
            for fd in (master, slave):
                with contextlib.suppress(OSError):
                    os.close(fd)
            if link:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(link)

    async def serve_tcp(self, host: str, port: int, ready: Callable[[str], None]) -> None:
        """A raw TCP serial server (one client at a time talks to the line)."""

        async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                await self._serve_stream(reader, writer.write)
            except ConnectionError:
                pass
            finally:
                writer.close()

        server = await asyncio.start_server(client, host, port)
        bound = server.sockets[0].getsockname()
        async with server:
            ready(f"tcp://{bound[0]}:{bound[1]}")
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._ticker(), name="line:ticker")
                tg.create_task(server.serve_forever(), name=f"line:tcp:{bound[1]}")

    async def _ticker(self) -> None:
        while True:
            now = self.clock()
            for dev in self.devices:
                dev.tick(now)
            await asyncio.sleep(self.tick_s)

    async def _serve_stream(self, reader: asyncio.StreamReader, write: Writer) -> None:
        self._writers.append(write)
        try:
            buf = bytearray()
            first_at = 0.0
            while True:
                try:
                    async with asyncio.timeout(self._gap if buf else None):
                        chunk = await reader.read(4096)
                except TimeoutError:
                    await self._handle(bytes(buf), first_at, write)
                    buf.clear()
                    continue
                if not chunk:
                    return
                if not buf:
                    first_at = time.monotonic()
                buf += chunk
        finally:
            self._writers.remove(write)

    async def inject_noise(self, nbytes: int) -> None:
        """A noise burst on the line, heard by whoever is listening."""
        data = self.faults.noise(nbytes)
        for write in list(self._writers):
            await self._paced_write(write, data, time.monotonic())

    # ---- one request ----------------------------------------------------------------------------

    async def _handle(self, request: bytes, first_at: float, write: Writer) -> None:
        self.stats.requests += 1
        self.stats.bytes_in += len(request)
        now = self.clock()
        request_end = first_at + self.wire.airtime(len(request))
        if self.echo:
            self.faults.counts.echoed += 1
            await self._paced_write(write, request, first_at)
        answers = []
        for dev in self.devices:
            dev.tick(now)
            reply = dev.respond(request, now)
            if reply is not None:
                answers.append((dev, reply))
        if not answers:
            return
        dev, reply = answers[0]
        raw = reply.data
        if len(answers) > 1:
            self.faults.counts.collisions += 1
            raw = _collide([r.data for _, r in answers])
        data, extra = self.faults.apply(dev.name, raw)
        if data is None:
            return
        turnaround = max(r.turnaround_s for _, r in answers) + extra
        self.stats.turnarounds.append(turnaround)
        del self.stats.turnarounds[:-1000]
        await self._paced_write(write, data, request_end + turnaround)
        self.stats.replies += 1
        self.stats.bytes_out += len(data)

    async def _paced_write(self, write: Writer, data: bytes, start: float) -> None:
        """Release each byte when its last bit would have arrived: byte i at start + (i+1) x char."""
        async with self._write_lock:
            char = self.wire.char_time
            sent = 0
            while sent < len(data):
                now = time.monotonic()
                if now < start:
                    await asyncio.sleep(start - now)
                    continue
                due = len(data) if char == 0 else min(len(data), int((now - start) / char))
                if due > sent:
                    write(data[sent:due])
                    sent = due
                if sent < len(data):
                    next_due = start + (sent + 1) * char
                    await asyncio.sleep(max(next_due - time.monotonic(), 0.001))


def _collide(replies: list[bytes]) -> bytes:
    """Two transmitters at once: the receiver sees the OR of the dominant bits, a garbled frame."""
    length = max(len(r) for r in replies)
    out = bytearray(length)
    for r in replies:
        for i, b in enumerate(r):
            out[i] |= b
    return bytes(out)
