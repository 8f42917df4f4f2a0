"""Fuzz properties of the device codecs (DL/T 645, Modbus RTU/MBAP and register maps, hall frames).

What tests/{dlt645,modbus,hall}/test_*_properties.py already cover (random bytes into the DL/T 645
matcher/splitter/describe and the Modbus parsers/matcher, round trips) is not repeated. Added here:
  - mutated valid frames, repaired so they pass length and checksum, through every decoder of the
    codec (frame, reply/request parsers, value decoding, register maps, describe): the layer's own
    error or a result, nothing else;
  - the splitters' buffer stays below the largest frame a header can announce after every feed, and
    a valid frame after arbitrary garbage (in arbitrary chunks) is found (tests/fuzz/targets.py);
  - the hall codec, which had no arbitrary-bytes property at all;
  - register-map points and map files: any registers, any YAML text.
"""

from __future__ import annotations

import contextlib
import random
from importlib import resources

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.errors import ConfigError, ProtocolError
from protocols.modbus import builtin_maps, decode_point, parse_map
from tests.fuzz.targets import MODBUS_MAPS, TARGETS, Target

EXAMPLES = settings(max_examples=120, deadline=None)
DEVICE_CODECS = ["dlt645", "modbus", "hall"]


@st.composite
def mutated(draw: st.DrawFn, target: Target) -> bytes:
    """A seed frame with a few byte edits, a cut or an insertion, repaired by the codec's fixup
    (most of the time) so that it reaches the decoders behind the checksum."""
    data = bytearray(draw(st.sampled_from(list(target.seeds))))
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(["set", "cut", "insert"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "set" and data:
            data[at] = draw(st.integers(0, 255))
        elif kind == "cut":
            end = len(data) if draw(st.booleans()) else at + draw(st.integers(1, 8))
            del data[at:end]
        else:
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
    if draw(st.integers(0, 3)):
        return target.fixup(bytes(data), random.Random(draw(st.integers(0, 2**16))))
    return bytes(data)


def inputs(name: str) -> st.SearchStrategy[bytes]:
    return st.one_of(st.binary(max_size=300), mutated(TARGETS[name]))


def _decode_or_reject(target: Target, raw: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        assert target.decode(raw) is True


@EXAMPLES
@given(inputs("dlt645"))
def test_dlt645_decoders_raise_only_protocol_errors(raw: bytes) -> None:
    _decode_or_reject(TARGETS["dlt645"], raw)


@EXAMPLES
@given(inputs("modbus"))
def test_modbus_decoders_and_maps_raise_only_protocol_errors(raw: bytes) -> None:
    _decode_or_reject(TARGETS["modbus"], raw)


@EXAMPLES
@given(inputs("hall"))
def test_hall_decoders_raise_only_protocol_errors(raw: bytes) -> None:
    _decode_or_reject(TARGETS["hall"], raw)


@pytest.mark.parametrize("name", DEVICE_CODECS)
def test_every_seed_decodes(name: str) -> None:
    target = TARGETS[name]
    assert all(target.decode(raw) for raw in target.seeds)


@st.composite
def garbage(draw: st.DrawFn, name: str) -> bytes:
    """Noise: random bytes and pieces of (mutated) frames, so that look-alike headers are common."""
    parts = draw(st.lists(st.one_of(st.binary(max_size=40), mutated(TARGETS[name])), max_size=6))
    return b"".join(parts)


def _split_property(name: str) -> None:
    split = TARGETS[name].split
    assert split is not None

    @EXAMPLES
    @given(garbage(name), st.lists(st.integers(1, 64), max_size=4), st.integers(0, 2**16))
    def check(noise: bytes, cuts: list[int], pick: int) -> None:
        split(noise, cuts, pick)

    check()


def test_dlt645_splitters_stay_bounded_and_resync() -> None:
    _split_property("dlt645")


def test_modbus_splitters_stay_bounded_and_resync() -> None:
    _split_property("modbus")


def test_hall_splitters_stay_bounded_and_resync() -> None:
    _split_property("hall")


@pytest.mark.parametrize("name", DEVICE_CODECS)
def test_long_garbage_in_one_chunk_is_dropped_not_kept(name: str) -> None:
    """A megabyte of look-alike headers in one feed: the buffer ends under the bound all the same."""
    target = TARGETS[name]
    assert target.split is not None
    head = b"".join(seed[:12] for seed in target.seeds[:20])
    target.split(head * (1_000_000 // len(head)), [], 3)


POINTS = [p for regmap in MODBUS_MAPS for p in regmap.points]


@EXAMPLES
@given(st.sampled_from(POINTS), st.data())
def test_map_points_decode_any_registers(point: object, data: st.DataObject) -> None:
    size = point.size  # type: ignore[attr-defined]
    words = data.draw(st.lists(st.integers(0, 0xFFFF), min_size=size, max_size=size))
    with contextlib.suppress(ProtocolError):
        decode_point(point, words)  # type: ignore[arg-type]
    wrong = data.draw(st.lists(st.integers(0, 0xFFFF), max_size=size + 2))
    with contextlib.suppress(ProtocolError):
        decode_point(point, wrong)  # type: ignore[arg-type]


@st.composite
def map_texts(draw: st.DrawFn) -> str:
    name = draw(st.sampled_from(builtin_maps()))
    text = resources.files("protocols.modbus.maps").joinpath(f"{name}.yaml").read_text(encoding="utf-8")
    lines = text.splitlines()
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(lines) - 1))
        edit = draw(st.sampled_from(["drop", "dup", "replace", "indent"]))
        if edit == "drop":
            del lines[at]
        elif edit == "dup":
            lines.insert(at, lines[at])
        elif edit == "indent":
            lines[at] = " " + lines[at]
        else:
            key, _, _ = lines[at].partition(":")
            lines[at] = (
                f"{key}: {draw(st.sampled_from(['', '-1', '1e9', 'null', '[]', '{}', 'x', '0x10000']))}"
            )
        if not lines:
            break
    return "\n".join(lines)


@settings(max_examples=60, deadline=None)
@given(st.one_of(map_texts(), st.text(max_size=200)))
def test_map_loader_raises_only_config_errors(text: str) -> None:
    with contextlib.suppress(ConfigError):
        parse_map(text, source="fuzz.yaml")
