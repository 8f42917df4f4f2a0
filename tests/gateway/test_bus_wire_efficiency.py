"""Per-transaction overhead of the bus on a real pty: a DL/T 645 reply of known length is read in a few
reads (not one wake-up per character) and completes as soon as its last byte is in; stray bytes heard
during the inter-frame silence are dropped and restart the silence. The test plays the meter itself and
paces the reply at 2400 8E1 (11 bits per character)."""

from __future__ import annotations

import asyncio
import os
import time

from gateway.bus import Bus
from gateway.line import LineSettings, Timing
from gateway.transport import Transport
from protocols.dlt645 import Frame, lookup, read_reply, read_request
from protocols.dlt645 import ReplyMatcher as SizedReplyMatcher
from tests.conftest import PtyPair

LINE = LineSettings(2400, 8, "E", 1)
CHAR = LINE.char_time()
ADDRESS = "000000000001"
ITEM = lookup("energy_import_kwh")
REQUEST = read_request(ADDRESS, ITEM.di)
REPLY = read_reply(ADDRESS, ITEM.di, b"\x12\x34\x56\x00").encode(0)
TIMING = Timing(first_byte_s=0.6, inter_byte_s=0.05, gap_before_s=0.02)


class CountingTransport(Transport):
    """The real transport, counting the reads the bus makes."""

    reads = 0

    async def read(self, timeout: float) -> bytes:
        data = await super().read(timeout)
        if data:
            CountingTransport.reads += 1
        return data


def test_bytes_needed_never_overestimates_a_reply_fed_byte_by_byte() -> None:
    for raw in (REPLY, b"\xfe\xfe" + REPLY, b"\x68\x01\x02" + REPLY):  # preamble; a look-alike 68 first
        matcher = SizedReplyMatcher(REQUEST.address, REQUEST.function)
        assert matcher.bytes_needed() == 12  # nothing yet: at least a frame without data
        for i in range(len(raw) - 1):
            assert matcher.feed(raw[i : i + 1]) is None
            remaining = len(raw) - i - 1
            assert 1 <= matcher.bytes_needed() <= remaining
        assert matcher.bytes_needed() == 1
        assert isinstance(matcher.feed(raw[-1:]), Frame)


def test_bytes_needed_is_exact_once_the_length_field_is_in() -> None:
    matcher = SizedReplyMatcher(REQUEST.address, REQUEST.function)
    assert matcher.feed(REPLY[:10]) is None
    assert matcher.bytes_needed() == len(REPLY) - 10


async def _serve_meter(pair: PtyPair, reply: bytes, done: asyncio.Future[tuple[float, float]]) -> None:
    """Read one request, wait a 30 ms turnaround, release the reply byte by byte at the baud rate;
    `done` gets (request heard, last reply byte written)."""
    loop = asyncio.get_running_loop()
    got = bytearray()
    heard = asyncio.Event()

    def on_readable() -> None:
        got.extend(os.read(pair.master_fd, 4096))
        if len(got) >= len(REQUEST.encode(0)):
            heard.set()

    loop.add_reader(pair.master_fd, on_readable)
    try:
        await heard.wait()
    finally:
        loop.remove_reader(pair.master_fd)
    heard_at = time.monotonic()
    start = time.monotonic() + len(got) * CHAR + 0.030
    for i in range(len(reply)):
        await asyncio.sleep(max(start + (i + 1) * CHAR - time.monotonic(), 0))
        os.write(pair.master_fd, reply[i : i + 1])
    done.set_result((heard_at, time.monotonic()))


async def test_a_paced_reply_is_read_in_a_few_reads_and_ends_on_its_length(pty_pair: PtyPair) -> None:
    CountingTransport.reads = 0
    loop = asyncio.get_running_loop()
    meter: asyncio.Future[tuple[float, float]] = loop.create_future()
    async with Bus("t", pty_pair.path, LINE, transport_factory=CountingTransport) as bus:
        assert await bus.wait_connected(5)
        async with asyncio.TaskGroup() as tg:
            tg.create_task(_serve_meter(pty_pair, REPLY, meter), name="meter")
            reply = await bus.transact(
                REQUEST.encode(0), lambda: SizedReplyMatcher(REQUEST.address, REQUEST.function), TIMING
            )
            finished = time.monotonic()
    assert reply.address == ADDRESS and reply.is_reply
    assert CountingTransport.reads <= 6  # not one read per character (20 bytes)
    _, last_byte = await meter
    assert finished - last_byte < 0.5 * TIMING.inter_byte_s  # no inter-byte timeout waited out


async def test_strays_during_the_silence_are_dropped_and_restart_it(pty_pair: PtyPair) -> None:
    loop = asyncio.get_running_loop()
    async with Bus("t", pty_pair.path, LINE) as bus:
        assert await bus.wait_connected(5)
        noise_at = 0.0
        for noise in (b"", b"\x00\x55"):
            meter: asyncio.Future[tuple[float, float]] = loop.create_future()
            async with asyncio.TaskGroup() as tg:
                tg.create_task(_serve_meter(pty_pair, REPLY, meter), name="meter")
                reply = await bus.transact(
                    REQUEST.encode(0), lambda: SizedReplyMatcher(REQUEST.address, REQUEST.function), TIMING
                )
                assert reply.is_reply
                if noise:  # noise right after the reply: inside the silence before the next request
                    os.write(pty_pair.master_fd, noise)
                    noise_at = time.monotonic()
        meter = loop.create_future()
        async with asyncio.TaskGroup() as tg:
            tg.create_task(_serve_meter(pty_pair, REPLY, meter), name="meter")
            await bus.transact(
                REQUEST.encode(0), lambda: SizedReplyMatcher(REQUEST.address, REQUEST.function), TIMING
            )
        heard_at, _ = await meter
        assert bus.stats.stray_bytes == 2 and bus.stats.ok == 3
        assert heard_at - noise_at >= TIMING.gap_before_s  # a full silence after the noise
