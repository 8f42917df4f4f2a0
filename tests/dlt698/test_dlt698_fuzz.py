"""The DL/T 698.45 fuzz target (tests/dlt698/fuzz_target.py, run at scale by bench/fuzz.py) as
hypothesis properties: every seed decodes; mutated and repaired frames reach the decoders and raise
only protocol errors; garbage in any chunking leaves the splitter and matcher bounded and in sync."""

from __future__ import annotations

import contextlib
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.errors import ProtocolError
from tests.fuzz.targets import TARGETS

from . import fuzz_target

EXAMPLES = settings(max_examples=150, deadline=None)
TARGET = TARGETS["dlt698"]


@pytest.mark.parametrize("seed", fuzz_target.SEEDS, ids=range(len(fuzz_target.SEEDS)))
def test_every_seed_decodes(seed: bytes) -> None:
    assert TARGET.decode(seed) is True


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(fuzz_target.SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data) - 1)) if data else 0
        kind = draw(st.sampled_from(["set", "cut", "insert"]))
        if kind == "set" and data:
            data[at] = draw(st.integers(0, 255))
        elif kind == "cut":
            del data[at : at + draw(st.integers(1, 8))]
        else:
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
    if draw(st.integers(0, 3)):
        return fuzz_target.fixup(bytes(data), random.Random(0))
    return bytes(data)


@EXAMPLES
@given(mutated())
def test_mutated_frames_raise_only_protocol_errors(raw: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        assert TARGET.decode(raw) is True


@EXAMPLES
@given(
    st.one_of(st.binary(max_size=300), mutated()),
    st.lists(st.integers(1, 64), max_size=4),
    st.integers(0, 1000),
)
def test_splitter_and_matcher_stay_bounded_and_resync(garbage: bytes, cuts: list[int], pick: int) -> None:
    assert TARGET.split is not None
    TARGET.split(garbage, cuts, pick)


def test_fixup_repairs_length_and_crcs() -> None:
    from protocols.dlt698 import parse_frame

    raw = bytearray(fuzz_target.SEEDS[1])
    del raw[20:24]
    parse_frame(fuzz_target.fixup(bytes(raw), random.Random(0)))
