"""Hypothesis strategies for DL/T 698.45 values, APDUs and frames (shared by the property tests and
the cross-checks against the `dlt698` library)."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from protocols.dlt698 import (
    ActionRequest,
    ActionResponse,
    Address,
    AddressType,
    BitString,
    Comdcb,
    Csd,
    Data,
    DataType,
    Date,
    DateTime,
    DateTimeS,
    ErrorApdu,
    Frame,
    GetListRequest,
    GetListResponse,
    GetNextRequest,
    GetNextResponse,
    GetRecordRequest,
    GetRecordResponse,
    GetRequest,
    GetResponse,
    GetResult,
    Ms,
    Oad,
    Omd,
    RecordResult,
    Region,
    Road,
    Rsd,
    ScalerUnit,
    SetListRequest,
    SetRequest,
    SetResponse,
    Sid,
    SidMac,
    Ti,
    Time,
    Tsa,
)
from protocols.dlt698.tags import INTEGERS

T = DataType
u8 = st.integers(0, 255)
u16 = st.integers(0, 0xFFFF)
oads = st.builds(Oad, u16, u8, u8)
omds = st.builds(Omd, u16, u8, u8)
date_time_s = st.builds(DateTimeS, u16, u8, u8, u8, u8, u8)
date_times = st.builds(DateTime, u16, u8, u8, u8, u8, u8, u8, u16)
bit_strings = st.integers(0, 40).flatmap(
    lambda n: st.binary(min_size=(n + 7) // 8, max_size=(n + 7) // 8).map(lambda b: BitString(n, b))
)
octets = st.binary(max_size=140)  # crosses the 128-byte boundary of the length encoding
tsas = st.binary(min_size=2, max_size=17).map(Tsa)


def _int(t: DataType) -> st.SearchStrategy[Data]:
    size, signed = INTEGERS[t]
    bits = 8 * size
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    return st.integers(lo, hi).map(lambda v: Data(t, v))


SIMPLE: dict[DataType, st.SearchStrategy[Any]] = {
    T.NULL: st.none(),
    T.BOOL: st.booleans(),
    T.BIT_STRING: bit_strings,
    T.OCTET_STRING: octets,
    T.VISIBLE_STRING: st.text(st.characters(max_codepoint=255), max_size=40),
    T.UTF8_STRING: st.text(max_size=20),
    T.FLOAT32: st.floats(width=32, allow_nan=False),
    T.FLOAT64: st.floats(allow_nan=False),
    T.DATE_TIME: date_times,
    T.DATE: st.builds(Date, u16, u8, u8, u8),
    T.TIME: st.builds(Time, u8, u8, u8),
    T.DATE_TIME_S: date_time_s,
    T.OAD: oads,
    T.ROAD: st.builds(Road, oads, st.lists(oads, max_size=4).map(tuple)),
    T.OMD: omds,
    T.TI: st.builds(Ti, u8, u16),
    T.TSA: tsas,
    T.MAC: st.binary(max_size=8),
    T.RN: st.binary(max_size=16),
    T.SCALER_UNIT: st.builds(ScalerUnit, st.integers(-128, 127), u8),
    T.SID: st.builds(Sid, st.integers(0, 2**32 - 1), st.binary(max_size=6)),
    T.SID_MAC: st.builds(
        SidMac, st.builds(Sid, st.integers(0, 2**32 - 1), st.binary(max_size=6)), st.binary(max_size=6)
    ),
    T.COMDCB: st.builds(Comdcb, u8, u8, u8, u8, u8),
    T.CSD: st.one_of(oads, st.builds(Road, oads, st.lists(oads, max_size=3).map(tuple))).map(Csd),
}
leaf_data = st.one_of(
    *(_int(t) for t in INTEGERS),
    *(s.map(lambda v, t=t: Data(t, v)) for t, s in SIMPLE.items()),
)


def _containers(children: st.SearchStrategy[Data]) -> st.SearchStrategy[Data]:
    items = st.lists(children, max_size=5).map(tuple)
    return st.one_of(items.map(lambda v: Data(T.ARRAY, v)), items.map(lambda v: Data(T.STRUCTURE, v)))


data = st.recursive(leaf_data, _containers, max_leaves=12)
simple_values = st.one_of(
    _int(T.LONG_UNSIGNED), _int(T.DOUBLE_LONG), date_time_s.map(lambda v: Data(T.DATE_TIME_S, v))
)
regions = st.builds(Region, st.integers(0, 3), simple_values, simple_values)
meter_sets = st.one_of(
    st.sampled_from([Ms(0), Ms(1)]),
    st.lists(u8, max_size=3).map(lambda v: Ms(2, tuple(v))),
    st.lists(tsas, max_size=3).map(lambda v: Ms(3, tuple(v))),
    st.lists(u16, max_size=3).map(lambda v: Ms(4, tuple(v))),
    st.tuples(st.integers(5, 7), st.lists(regions, max_size=2)).map(lambda v: Ms(v[0], tuple(v[1]))),
)
selector2 = st.builds(
    lambda o, a, b, c: Rsd(2, o, (a, b, c)), oads, simple_values, simple_values, simple_values
)
rsds = st.one_of(
    st.just(Rsd(0)),
    st.builds(lambda o, v: Rsd(1, o, (v,)), oads, simple_values),
    selector2,
    st.lists(selector2, max_size=3).map(lambda v: Rsd(3, ranges=tuple(v))),
    st.builds(lambda s, t, m: Rsd(s, times=(t,), ms=m), st.sampled_from([4, 5]), date_time_s, meter_sets),
    st.builds(
        lambda s, a, b, ti, m: Rsd(s, times=(a, b), ti=ti, ms=m),
        st.sampled_from([6, 7, 8]),
        date_time_s,
        date_time_s,
        st.builds(Ti, u8, u16),
        meter_sets,
    ),
    u8.map(lambda n: Rsd(9, n=n)),
    st.builds(lambda n, m: Rsd(10, n=n, ms=m), u8, meter_sets),
)
rcsds = st.lists(SIMPLE[T.CSD], max_size=4).map(tuple)
piids = u8
get_results = st.one_of(
    st.builds(GetResult, oads, data), st.builds(lambda o, d: GetResult(o, None, d), oads, u8)
)


@st.composite
def record_results(draw: st.DrawFn) -> RecordResult:
    rcsd = draw(rcsds)
    if draw(st.booleans()):
        return RecordResult(draw(oads), rcsd, None, draw(u8))
    rows = draw(st.lists(st.tuples(*[leaf_data] * len(rcsd)), max_size=3))
    return RecordResult(draw(oads), rcsd, tuple(rows) if rcsd else ())


requests = st.one_of(
    st.builds(GetRequest, piids, oads),
    st.builds(GetListRequest, piids, st.lists(oads, max_size=5).map(tuple)),
    st.builds(GetRecordRequest, piids, oads, rsds, rcsds),
    st.builds(GetNextRequest, piids, u16),
    st.builds(SetRequest, piids, oads, data),
    st.builds(SetListRequest, piids, st.lists(st.tuples(oads, data), max_size=3).map(tuple)),
    st.builds(ActionRequest, piids, oads.map(lambda o: Omd(o.oi, o.attribute, o.index)), data),
)
responses = st.one_of(
    st.builds(GetResponse, piids, get_results),
    st.builds(GetListResponse, piids, st.lists(get_results, max_size=4).map(tuple)),
    st.builds(GetRecordResponse, piids, record_results()),
    st.builds(GetNextResponse, piids, st.booleans(), u16, u8),
    st.builds(
        lambda p, last, b, r: GetNextResponse(p, last, b, results=tuple(r)),
        piids,
        st.booleans(),
        u16,
        st.lists(get_results, min_size=1, max_size=3),
    ),
    st.builds(SetResponse, piids, oads, u8),
    st.builds(ActionResponse, piids, omds, u8, st.one_of(st.none(), data)),
    st.builds(ErrorApdu, piids, u8),
)


@st.composite
def addresses(draw: st.DrawFn) -> Address:
    kind = draw(st.sampled_from(list(AddressType)))
    digits = draw(st.integers(1, 16)) * 2
    sa = draw(st.text("0123456789", min_size=digits, max_size=digits))
    return Address(sa, kind, draw(st.integers(0, 3)))


controls = st.builds(
    lambda d, p, frag, sc, fn: d | p | frag | sc | fn,
    st.sampled_from([0, 0x80]),
    st.sampled_from([0, 0x40]),
    st.sampled_from([0, 0x20]),
    st.sampled_from([0, 0x08]),
    st.sampled_from([1, 3]),
)
frames = st.builds(Frame, addresses(), controls, st.binary(max_size=300), u8)
