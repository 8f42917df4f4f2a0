"""`gridedge sniff` on a real pty: bursts separated by line silence, DL/T 645 and Modbus frames decoded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from protocols.dlt645 import lookup, read_reply, read_request
from protocols.modbus import ReadRequest, build_rtu_request
from protocols.sniff import decode_burst

pytestmark = pytest.mark.integration


def test_decode_burst_recognises_each_protocol_and_noise() -> None:
    item = lookup("energy_import_kwh")
    request = read_request("000000000001", item.di).encode(4)
    reply = read_reply("000000000001", item.di, bytes.fromhex("78563412")).encode(0)
    frames = decode_burst(b"\x00\xff" + request + reply)  # noise, our request and its reply in one burst
    # the noise before the request is reported (it used to vanish); the FE preamble is the frame's own
    assert [f.get("kind") for f in frames] == [None, "read request", "read reply"]
    assert frames[0] == {"protocol": "unknown", "noise": "00 ff"}
    assert frames[2]["canonical"] == {"energy_import_kwh": 123456.78}
    modbus = decode_burst(build_rtu_request(7, ReadRequest(3, 0, 2)))
    assert modbus[0]["protocol"] == "modbus" and modbus[0]["unit"] == 7
    assert decode_burst(b"\x01\x02\x03")[0]["protocol"] == "unknown"


def test_sniff_prints_what_passes_on_the_line(pty_pair) -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gridedge",
            "sniff",
            "--port",
            pty_pair.path,
            "--baud",
            "9600",
            "--parity",
            "N",
            "--duration",
            "4",
            "--json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    # said once the port is open (a fixed 1.5 s sleep was too short on a loaded 2-core machine)
    assert "listening on" in proc.stderr.readline()
    item = lookup("voltage_a_v")
    os.write(pty_pair.master_fd, read_request("000000000003", item.di).encode(4))
    time.sleep(0.3)
    os.write(pty_pair.master_fd, build_rtu_request(5, ReadRequest(4, 0, 10)))
    out, _ = proc.communicate(timeout=30)
    records = [json.loads(line) for line in out.splitlines()]
    assert [r["frames"][0]["protocol"] for r in records] == ["dlt645", "modbus"]
    assert records[0]["frames"][0]["address"] == "000000000003" and records[1]["gap_ms"] >= 200
