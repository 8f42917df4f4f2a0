"""`gridedge read/scan --protocol dlt698` through a real Bus on a paced pty line (arguments parsed by the
real CLI parser, so the shared `--item` / `--addresses` flags are exercised), and the one-line sniff
summary of NormalList and ACTION frames."""

from __future__ import annotations

import argparse

import pytest

from gateway.bus import Bus
from gateway.commission.common import line_for
from gateway.drivers.dlt698 import commission
from gateway.errors import DeviceError
from gridedge.cli import build_parser
from protocols.dlt698 import find_frames, summary
from tests.dlt698_gateway.meter import Meter698
from tests.gateway.helpers import sim_line

pytestmark = pytest.mark.integration

A1, A2 = "000000000001", "000000000002"


def args(command: str, port: str, *extra: str) -> argparse.Namespace:
    return build_parser().parse_args([command, "--protocol", "dlt698", "--port", port, *extra])


async def test_read_by_oad_and_by_name_with_raw_bytes() -> None:
    async with sim_line([Meter698(A1)], baud=2400, parity="E") as (path, _):
        a = args("read", path, "--address", A1, "--oad", "00100200", "--raw")
        async with Bus("cli", path, line_for(a)) as bus:
            got = await commission.read(bus, a)
            assert got["address"] == A1 and got["oad"] == "00100200"
            assert got["values"]["energy_import_kwh"] == 1234.56 and got["unit"] == "kWh"
            # E1's request (dlt698.md §6) for meter 000000000001, PIID 1, after four FE
            assert got["request"].startswith("fe fe fe fe 68 17 00 43 05 01 00 00 00 00 00 00")
            assert got["request"].endswith("05 01 01 00 10 02 00 00 " + got["request"][-8:])
            assert got["reply"].split()[:4] == ["68", "34", "00", "c3"]
            b = args("read", path, "--address", A1, "--item", "balance_cny")
            assert (await commission.read(bus, b))["value"] == 56.78


async def test_wildcard_read_and_scan_of_a_one_meter_line() -> None:
    async with sim_line([Meter698(A2)], baud=2400, parity="E") as (path, _):
        a = args("read", path, "--address", "AAAAAAAAAAAA", "--oad", "40010200")
        async with Bus("cli", path, line_for(a)) as bus:
            got = await commission.read(bus, a)
            assert got["address"] == A2 and got["value"] == {"meter_address": A2}
            found = await commission.scan(bus, args("scan", path), lambda *_: None)
    assert found == [{"address": A2, "meter_address": A2, "protocol": "dlt698"}]


async def test_scan_of_a_multi_drop_line_by_address_range() -> None:
    meters = [Meter698(A1), Meter698("000000000003")]
    async with sim_line(meters, baud=2400, parity="E") as (path, _):
        s = args("scan", path, "--addresses", "000000000001-000000000004")
        async with Bus("cli", path, line_for(s)) as bus:
            found = await commission.scan(bus, s, lambda *_: None)
            assert [f["address"] for f in found] == [A1, "000000000003"]
            with pytest.raises(DeviceError, match="use --addresses"):  # both answer the wildcard at once
                await commission.scan(bus, args("scan", path), lambda *_: None)


def test_bad_addresses_and_objects_are_named() -> None:
    with pytest.raises(DeviceError, match="--address"):
        commission.check_address("12345")
    with pytest.raises(DeviceError, match="--item: 'no_such'"):
        commission._oad(argparse.Namespace(oad=None, item="no_such"))
    with pytest.raises(DeviceError, match="--addresses"):
        commission._range("1-000000000002")


def test_sniff_summary_shows_each_object_of_a_list_and_action_results() -> None:
    listed = bytes.fromhex(
        "68 3B 00 C3 05 12 90 78 56 34 12 00 01 EA 85 02 02 02 20 00 02 00 01 01 03 12 09 6D 12 09 6D 12 09"
        " 6D 20 01 02 00 01 01 03 05 00 00 03 E8 05 00 00 03 E8 05 00 00 03 E8 00 00 10 86 16"
    )
    line = summary(find_frames(listed)[0][2])
    assert "GetListResponse" in line and "voltage_a_v=241.3" in line and "current_c_a=1.0" in line
    action = bytes.fromhex(
        "68 1A 00 C3 05 12 90 78 56 34 12 00 1A 5D 87 01 03 80 00 81 00 00 00 00 00 5D CD 16"
    )
    assert summary(find_frames(action)[0][2]).endswith("80008100 success")
