"""`gridedge sim hall` end to end: a subprocess behind a real pty, polled with pyserial at 9600 8N1."""

from __future__ import annotations

import subprocess
import sys
import time

import serial

from protocols.hall import (
    DeviceKind,
    Event,
    Evt,
    Frame,
    ReplyMatcher,
    identify_request,
    parse_identify_reply,
    parse_poll_reply,
    poll_request,
)


def _exchange(port: serial.Serial, frame: Frame, deadline_s: float = 2.0) -> Frame:
    matcher = ReplyMatcher.for_request(frame)
    port.reset_input_buffer()
    port.write(frame.encode())
    sent = time.monotonic()
    received = b""
    while time.monotonic() - sent < deadline_s:
        chunk = port.read(port.in_waiting or 1)
        received += chunk
        reply = matcher.feed(chunk)
        if reply is not None:
            return reply
    raise AssertionError(f"no reply to {frame.encode().hex(' ')} within {deadline_s} s: {received.hex(' ')}")


def test_sim_hall_dispenser_issues_tickets_over_a_pty() -> None:
    argv = [
        sys.executable,
        "-m",
        "gridedge",
        "sim",
        "hall",
        "--port",
        "pty",
        "--counters",
        "2",
        "--speed",
        "60",
    ]
    argv += ["--hours", "00:00-24:00", "--arrivals-per-hour", "600", "--seed", "3"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        path = proc.stdout.readline().strip()
        assert path.startswith("/dev/"), (path, proc.poll())
        with serial.Serial(path, 9600, timeout=0.05) as port:
            identity = parse_identify_reply(_exchange(port, identify_request(1)))
            assert identity.kind == DeviceKind.DISPENSER and identity.counter == 0
            keypad = parse_identify_reply(_exchange(port, identify_request(3)))
            assert keypad.kind == DeviceKind.KEYPAD and keypad.counter == 2
            events: list[Event] = []
            ack, deadline = 0, time.monotonic() + 8.0
            while len(events) < 3 and time.monotonic() < deadline:
                event = parse_poll_reply(_exchange(port, poll_request(1, ack)))
                if event is None:
                    time.sleep(0.2)  # 600/h at speed 60: a ticket every 0.1 s on average
                    continue
                if not events or event.seq != events[-1].seq:
                    events.append(event)
                ack = event.seq
            assert [e.code for e in events] == [Evt.TICKET_ISSUED] * 3
            assert [e.ticket for e in events] == [1, 2, 3] and [e.seq for e in events] == [1, 2, 3]
            port.write(poll_request(70).encode())  # no device at 70: silence
            time.sleep(0.3)
            assert port.read(256) == b""
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""
