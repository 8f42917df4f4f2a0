"""Pure parts of the ingest: line-protocol escaping, the message -> point schema, the topology file."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.config import load_config
from ingest.lineproto import field_set, point, series
from ingest.schema import lines_for
from ingest.topology import Topology
from protocols import messages as m
from protocols.errors import ConfigError

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_escaping_follows_the_line_protocol_reference() -> None:
    assert series("meter", {"dev": "a b", "gw": "g,1", "x": ""}) == r"meter,dev=a\ b,gw=g\,1"
    assert (
        field_set({"s": 'say "hi"\\', "n": 3, "f": 1.5, "b": True}) == r's="say \"hi\"\\",n=3i,f=1.5,b=true'
    )
    assert point("m", {}, {"v": 1.0}, 1763800000000) == "m v=1.0 1763800000000"
    with pytest.raises(ValueError, match="'v'"):
        field_set({"v": float("nan")})
    with pytest.raises(ValueError, match="at least one field"):
        point("m", {}, {}, 1)


@settings(max_examples=200)
@given(st.text(min_size=1, max_size=30), st.text(min_size=1, max_size=30))
def test_a_hostile_value_never_splits_a_line(key: str, value: str) -> None:
    line = point("m", {"t": value}, {key: value}, 1)
    assert "\n" not in line and line.endswith(" 1")


def test_readings_with_replayed_samples_become_one_point_each_with_their_own_timestamps() -> None:
    topo = Topology.load(EXAMPLES / "topology.yaml")
    r = m.Reading(
        schema=1,
        gw="gw-demo-01",
        dev="000000000001",
        seq=5,
        ts=1763800000000,
        values={"voltage_a_v": 230},
        protocol="dlt645",
        more=[m.Sample(seq=6, ts=1763800060000, values={"voltage_a_v": 231.5, "relay": "open"})],
    )
    lines = lines_for(r, topo)
    assert lines == [
        "meter,account=A-0001,area=area-a01,dev=000000000001,gw=gw-demo-01,phase=A,protocol=dlt645,site=demo-site"
        " voltage_a_v=230.0 1763800000000",
        "meter,account=A-0001,area=area-a01,dev=000000000001,gw=gw-demo-01,phase=A,protocol=dlt645,site=demo-site"
        ' voltage_a_v=231.5,relay="open" 1763800060000',
    ]


def test_health_status_and_rating_points() -> None:
    h = m.Health(
        schema=1,
        gw="g",
        dev="d",
        seq=1,
        ts=2_000_000_000_000,
        state="degraded",
        latency_ms=12,
        polls=10,
        failures=2,
        errors={"ResponseTimeout": 2},
    )
    assert lines_for(h, Topology.empty()) == [
        'device_health,dev=d,gw=g online=false,state="degraded",polls=10i,failures=2i,errors=2i,'
        "latency_ms=12.0 2000000000000"
    ]
    e = m.Event(
        schema=1,
        gw="g",
        dev="pad-1",
        seq=2,
        ts=2_000_000_000_000,
        event=m.EventKind.RATING,
        data={
            "hall": "h1",
            "ticket": "A001",
            "counter": "3",
            "staff": "s7",
            "level": 1,
            "label": "very_satisfied",
        },
    )
    (line,) = lines_for(e, Topology.empty())
    assert line.startswith('rating,counter=3,gw=g,hall=h1,staff=s7 score=1.0,level="very_satisfied",seq=2i')


def test_topology_errors_name_the_field(tmp_path: Path) -> None:
    bad = tmp_path / "t.yaml"
    bad.write_text("areas: {a1: {}}\ndevices:\n  gw-1/m1: {area: nowhere}\n")
    with pytest.raises(ConfigError, match="unknown area 'nowhere'"):
        Topology.load(bad)
    bad.write_text("devices:\n  no-slash: {}\n")
    with pytest.raises(ConfigError, match="GATEWAY/DEVICE"):
        Topology.load(bad)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://influx:8086", "must be http://HOST[:PORT][/PATH] or https://"),
        ("influx:8086", "must be http://HOST[:PORT][/PATH] or https://"),
        ("http://influx:99999", "the port must be a number from 0 to 65535"),
    ],
)
def test_a_wrong_influx_url_is_a_config_error_naming_file_line_and_field(
    tmp_path: Path, url: str, reason: str
) -> None:
    # `gridedge ingest check` must refuse it, not `ingest run` crash on it with a traceback
    path = tmp_path / "ingest.yaml"
    path.write_text(f"mqtt:\n  host: 127.0.0.1\ninflux:\n  url: {url}\n  database: gridedge\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    [problem] = info.value.problems
    assert problem.startswith(f"{path}:4: influx.url: ") and url in problem and reason in problem
    # the alerts' webhook URL is the same kind of field, checked the same way
    path.write_text(f"alerts:\n  webhook:\n    url: {url}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    [problem] = info.value.problems
    assert problem.startswith(f"{path}:3: alerts.webhook.url: ") and reason in problem
