"""Field tools on bad input and on the cases a field engineer meets (issue 20 item 6): a wildcard read
of the only meter of a line, `--raw` showing the bytes as they were on the wire (MBAP on tcp://), the
simulator saying what its TCP port serves, and no traceback for any bad argument."""

from __future__ import annotations

import contextlib
import io
import json
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest

from gridedge.cli import main
from tests.conftest import PtyPair

pytestmark = pytest.mark.integration


def _sim(*argv: str) -> Iterator[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "gridedge", "sim", *argv], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    yield proc.stdout.readline().strip()
    proc.terminate()
    proc.wait(10)


def gridedge(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gridedge", *argv], capture_output=True, text=True, timeout=60, check=False
    )


@pytest.fixture
def one_meter() -> Iterator[str]:
    yield from _sim("dlt645", "--port", "pty", "--meter", "000000000042")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_wildcard_read_of_the_only_meter_on_a_line(one_meter: str) -> None:
    got = gridedge(
        "read", "--protocol", "dlt645", "--port", one_meter, "--address", "AAAAAAAAAAAA",
        "--item", "energy_import_kwh", "--raw", "--json",
    )  # fmt: skip
    assert got.returncode == 0, got.stderr
    answer = json.loads(got.stdout)
    assert answer["address"] == "000000000042" and answer["value"] > 0  # the meter's own address
    request, reply = bytes.fromhex(answer["request"]), bytes.fromhex(answer["reply"])
    assert request[:4] == b"\xfe" * 4 and request[5:11] == b"\xaa" * 6  # as sent: preamble, wildcard
    assert reply.rstrip(b"")[-1] == 0x16 and bytes.fromhex("42 00 00 00 00 00") in reply  # whole frame


def test_modbus_raw_on_tcp_prints_the_mbap_frames_as_sent() -> None:
    port = _free_port()
    sim = _sim("modbus", "--port", f"tcp://127.0.0.1:{port}", "--unit", "3")
    assert next(sim)
    try:
        got = gridedge(
            "read", "--protocol", "modbus", "--port", f"tcp://127.0.0.1:{port}", "--unit", "3",
            "--point", "voltage_a_v", "--raw", "--json",
        )  # fmt: skip
    finally:
        next(sim, None)
    assert got.returncode == 0, got.stderr
    answer = json.loads(got.stdout)
    request, reply = bytes.fromhex(answer["request"]), bytes.fromhex(answer["reply"])
    assert answer["framing"] == "tcp"
    assert request[2:4] == b"\x00\x00" and request[6] == 3  # MBAP: protocol id 0, unit 3; no CRC
    assert int.from_bytes(request[4:6], "big") == len(request) - 6
    assert reply[:2] == request[:2] and reply[6:8] == bytes([3, request[7]])  # same transaction, unit, fn


def test_sim_help_says_what_each_port_scheme_serves() -> None:
    text = gridedge("sim", "modbus", "--help").stdout
    flat = " ".join(text.split())
    assert "serves Modbus TCP" in flat and "socket://HOST:PORT (a serial device server" in flat
    assert (
        "serial server" not in gridedge("sim", "hall", "--help").stdout.split("--port")[1].split("--baud")[0]
    )


PTY = "<a pty>"
BAD_ARGV = [
    ["read", "--protocol", "dlt645", "--port", PTY, "--address", "12345", "--item", "energy_import_kwh"],
    ["read", "--protocol", "dlt645", "--port", PTY, "--address", "AAAAAAAAAAAA", "--item", "no_such"],
    ["read", "--protocol", "dlt645", "--port", PTY, "--address", "000000000001"],
    ["read", "--protocol", "dlt645", "--port", PTY, "--item", "energy_import_kwh"],
    ["read", "--protocol", "dlt645", "--port", "/dev/nonexistent", "--address", "000000000001", "--di", "01"],
    ["read", "--protocol", "dlt645", "--port", "tcp://nohost", "--address", "000000000001", "--di", "01"],
    ["read", "--protocol", "modbus", "--port", PTY, "--unit", "3", "--map", "no-such-map", "--point", "x"],
    ["read", "--protocol", "modbus", "--port", PTY, "--unit", "3"],
    ["read", "--protocol", "modbus", "--port", PTY, "--unit", "3", "--table", "holding",
     "--address", "zz", "--type", "u16"],
    ["read", "--protocol", "hall", "--port", PTY],
    ["scan", "--protocol", "dlt645", "--port", PTY, "--addresses", "1-2"],
    ["scan", "--protocol", "modbus", "--port", PTY, "--units", "0-999"],
    ["scan", "--protocol", "hall", "--port", PTY, "--hall-addresses", "x"],
    ["decode", "--protocol", "dlt645", "zz"],
    ["decode", "--protocol", "hall", "68 01"],
]  # fmt: skip


@pytest.mark.parametrize("argv", BAD_ARGV, ids=lambda a: " ".join(a[:3] + a[5:]))
def test_every_bad_argument_gets_one_line_and_no_traceback(argv: list[str], pty_pair: PtyPair) -> None:
    argv = [pty_pair.path if a == PTY else a for a in argv]  # a port that opens, so the arguments are read
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse's own refusals
            code = exc.code if isinstance(exc.code, int) else 1
    text = (err.getvalue() + out.getvalue()).strip()
    assert code != 0, text
    assert "Traceback" not in text and text, text
    assert len([line for line in text.splitlines() if line.strip()]) == 1, text
