"""`gridedge sim dlt645` end to end: a subprocess behind a real pty, read with pyserial at 2400 8E1."""

from __future__ import annotations

import subprocess
import sys
import time

import serial

from protocols.dlt645 import ReplyMatcher, lookup, parse_read_reply, read_request

CHAR_S = 11 / 2400  # 8E1: start + 8 data + parity + stop


def _exchange(port: serial.Serial, frame, deadline_s: float = 3.0):
    matcher = ReplyMatcher.for_request(frame)
    raw = frame.encode(preamble=4)
    port.reset_input_buffer()
    port.write(raw)
    sent = time.monotonic()
    received = b""
    while time.monotonic() - sent < deadline_s:
        chunk = port.read(port.in_waiting or 1)
        received += chunk
        reply = matcher.feed(chunk)
        if reply is not None:
            return reply, time.monotonic() - sent, len(raw), len(received)
    raise AssertionError(f"no reply to {raw.hex(' ')} within {deadline_s} s, got {received.hex(' ')}")


def test_sim_cli_paces_replies_on_a_pty() -> None:
    argv = [sys.executable, "-m", "gridedge", "sim", "dlt645", "--port", "pty"]
    argv += ["--meter", "000000000001", "--meter", "000000000002", "--baud", "2400"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        path = proc.stdout.readline().strip()
        assert path.startswith("/dev/"), (path, proc.poll())
        with serial.Serial(
            path, 2400, parity=serial.PARITY_EVEN, stopbits=1, bytesize=8, timeout=0.05
        ) as port:
            item = lookup("energy_import_block")
            for address in ("000000000002", "000000000001"):
                frame, elapsed, sent, got = _exchange(port, read_request(address, item.di))
                values = parse_read_reply(frame, di=item.di).values()
                assert frame.address == address and values["energy_import_kwh"] > 0
                # the line releases the reply at 2400 baud after the request's own airtime and >= 20 ms
                assert elapsed >= got * CHAR_S
                assert elapsed >= (sent + got) * CHAR_S + 0.020 - 0.005
                assert elapsed < (sent + got) * CHAR_S + 0.100 + 0.5
            other = read_request("000000000003", item.di)
            port.write(other.encode())
            time.sleep(0.3)
            assert port.read(256) == b""  # no such meter: silence
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""
