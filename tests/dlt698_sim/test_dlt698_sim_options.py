"""`gridedge sim dlt698` options and a site file's dlt698 group: the same parser, the same meters."""

from __future__ import annotations

import argparse

import pytest

from firmware_sim.clock import SimClock
from firmware_sim.devices import dlt698 as sim
from firmware_sim.devices.dlt698 import Dlt698Meter
from firmware_sim.site import SiteConfig, build_line
from protocols import config as conventions
from protocols.errors import ConfigError

SITE = """
lines:
  - name: new-meters
    baud: 2400
    parity: E
    devices:
      - kind: dlt698
        options:
          meter: ["123456789012", "000000000002"]
          seed: 4
          cost_control: remote
          apdu_size: 512
          secured: true
          mac_key: "00112233"
"""


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(exit_on_error=False)
    sim.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_a_site_file_builds_the_meters_with_their_options() -> None:
    site = conventions.load(SiteConfig, SITE, source="site.yaml", environ={})
    line = build_line(site.lines[0], SimClock(start=1_760_000_000.0))
    meters = line.devices
    assert [m.name for m in meters] == ["123456789012", "000000000002"]
    assert all(isinstance(m, Dlt698Meter) for m in meters)
    meter = meters[0]
    assert isinstance(meter, Dlt698Meter)
    assert (meter.physics.cost_control, meter.blocks.apdu_size, meter.secured) == ("remote", 512, True)
    assert meter.mac_key == bytes.fromhex("00112233") and line.wire.bits_per_char == 11


def test_defaults() -> None:
    [meter] = sim.build(parse("--meter", "123456789012"), 1_760_000_000.0)
    assert (meter.preamble, meter.blocks.apdu_size, meter.blocks.first_block, meter.secured) == (
        4,
        1024,
        1,
        False,
    )
    assert meter.physics.cost_control == "local"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--meter", "AAAAAAAAAAAA"], "must be decimal digits"),
        (["--meter", "12345"], "meter address .12345.: needs an even number"),
        (["--meter", "12", "--apdu-size", "10"], "APDU size 10 outside"),
        (["--meter", "12", "--mac-key", "zz"], "not hex"),
        (["--meter", "12", "--turnaround-ms", "9000"], "must be 0 <= MIN <= MAX <= 5000"),
    ],
)
def test_bad_options_are_named(argv: list[str], message: str) -> None:
    with pytest.raises(argparse.ArgumentError, match=message):
        parse(*argv)


def test_duplicate_meters_are_refused() -> None:
    with pytest.raises(ConfigError, match="duplicate meter addresses"):
        sim.build(parse("--meter", "000000000001", "--meter", "000000000001"), 0.0)
