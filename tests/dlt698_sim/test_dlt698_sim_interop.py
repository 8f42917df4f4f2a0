"""Interop (issue 21 acceptance): the client of PyPI `dlt698` 1.0.1 (bindings of the 600888/dlt698 C++
library, another author's implementation) opens our simulator's pty as a serial port and reads its
energy, voltage, current, clock and wallet, a daily freeze, a month of freezes that only fits in
GET-Next blocks (its client collects them itself), and trips the relay. Its numbers are compared with
the simulated meter's own state scaled by the reference's scalers (dlt698.md §4), not through our codec.

Where the two disagreed, and which side is right:
- On close, its client sends RELEASE-Request (`03 00 PIID`) even for a preset association on a serial
  line; the simulator first answered ERROR-Response 2 (service unsupported) and the library raised
  RemoteError from `close()`. Neither is wrong by dlt698.md §2 (RELEASE 3/131 exists; §7 says no
  CONNECT is needed on RS-485, it says nothing of RELEASE). Real meters answer RELEASE, so the simulator
  now answers RELEASE-Response success (`83 PIID 00 00 00`).
- GET-Next block numbers: its client collects a transfer only if the first block is numbered 0 (its
  docs, protocol/get.md: "only consecutive blocks starting from zero"); it ignored our block 1 and
  timed out. icprog/dlt698.45, a terminal run against the State Grid conformance tests, numbers the
  first block 1 (lib698/ObjectGet.c: `next_info.frameNo = 1` before the first GET-Response-Next, and
  `last` when frameNo == the number of blocks), as does DLMS block transfer, which 698.45 follows; we take
  that side: the simulator numbers from 1 by default, and `--first-block 0` makes it talk to 600888's
  client (which then collects a record read cut between rows and a NormalList cut between results, so
  the rest of the transfer agrees). `test_their_client_cannot_collect_blocks_numbered_from_1` pins it.
- Nothing else: every frame the simulator sent was accepted and read to the same values.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator

import pytest

from firmware_sim.devices.dlt698 import Dlt698Meter
from firmware_sim.prepaid import RELAY_SETTLE_S

from .pty_line import T0, running_line

dlt698 = pytest.importorskip("dlt698", reason="the dlt698 oracle is in the test extra of pyproject.toml")
from dlt698 import _native as n  # noqa: E402

ADDR = "123456789012"


def oad(text: str) -> n.Oad:
    v = int(text, 16)
    return n.Oad(oi=v >> 16, attribute=(v >> 8) & 0xFF, index=v & 0xFF)


def when(d: n.Data) -> dt.datetime:
    yh, yl, mo, day, h, mi, s = d.as_date_time_s()
    return dt.datetime(yh << 8 | yl, mo, day, h, mi, s)


@pytest.fixture(scope="module")
def meter_and_client():
    meter = Dlt698Meter(ADDR, seed=5, start_time=T0, apdu_size=300, first_block=0)  # see the docstring
    with running_line([meter], 9600) as line, their_client(line.path) as client:
        yield meter, client, line


@contextlib.contextmanager
def their_client(path: str, timeout_s: float = 5.0) -> Iterator[dlt698.Client]:
    server = n.ServerAddress(bytes=bytes.fromhex(ADDR)[::-1], logical=0, type=n.AddressType.single)
    options = n.ClientOptions(protocol=n.SessionOptions(server=server, request_timeout=timeout_s))
    client = dlt698.Client(options)
    client.open_serial(path, 9600, dlt698.ConnectionProfile.local_preset)  # 8E1, no CONNECT on RS-485
    try:
        yield client
    finally:
        with contextlib.suppress(dlt698.Dlt698Error):  # already disconnected after a timeout
            client.close()  # RELEASE-Request, answered (see the module docstring)


def test_their_client_reads_energy_voltage_current_clock_and_wallet(meter_and_client) -> None:
    meter, client, line = meter_and_client
    now = line.clock()
    meter.tick(now)
    values = meter.physics.values(now)
    energy = [d.as_uint32() for d in client.get(oad("00100200")).require_data().value]
    assert energy == [round(sum(meter.physics.energy) * 100)] + [round(e * 100) for e in meter.physics.energy]
    volts = [d.as_uint16() / 10 for d in client.get(oad("20000200")).require_data().value]
    assert volts == [values[f"voltage_{p}_v"] for p in "abc"]
    amps = [d.as_int32() / 1000 for d in client.get(oad("20010200")).require_data().value]
    assert amps == [values[f"current_{p}_a"] for p in "abc"]
    assert when(client.get(oad("40000200")).require_data()) == meter.history.meter_now(now)
    balance, purchases = client.get(oad("202C0200")).require_data().value
    assert balance.as_uint32() / 100 == values["balance_cny"]
    assert purchases.as_uint32() == values["purchase_count"]
    assert client.get(oad("99990200")).dar == 4  # an object it does not have


def test_their_client_reads_daily_freezes_and_collects_get_next_blocks(meter_and_client) -> None:
    meter, client, _ = meter_and_client
    columns = [oad("20210200"), oad("00100201")]
    latest = client.get_record(
        n.GetRecord(attribute=oad("50040200"), columns=columns, rows=n.Selector9(previous=1))
    )
    [[freeze_time, total]] = latest.result
    day, energies = meter.history.daily_freezes()[0]
    assert when(freeze_time) == dt.datetime.combine(day, dt.time())
    assert total.as_uint32() == round(sum(energies) * 100)
    month = n.Selector2(
        attribute=oad("20210200"),
        begin=n.Data.date_time_s([2025 >> 8, 2025 & 0xFF, 9, 9, 0, 0, 0]),
        end=n.Data.date_time_s([2025 >> 8, 2025 & 0xFF, 10, 9, 0, 0, 0]),
        interval=n.Data.null(),
    )
    transfers = meter.blocks.transfers
    rows = client.get_record(n.GetRecord(attribute=oad("50040200"), columns=columns, rows=month)).result
    assert len(rows) == 30
    assert meter.blocks.transfers == transfers + 1  # 30 rows do not fit 300 bytes: GET-Next blocks
    assert [when(r[0]).date() for r in rows] == [
        dt.date(2025, 9, 9) + dt.timedelta(days=k) for k in range(30)
    ]
    snapshots = dict(meter.history.daily_freezes())
    assert [r[1].as_uint32() for r in rows] == [round(sum(snapshots[when(r[0]).date()]) * 100) for r in rows]


def test_their_client_trips_the_relay(meter_and_client) -> None:
    meter, client, line = meter_and_client
    relay_1 = n.Data.oad(oad("F2050201"))
    trip = n.Data.array(
        [n.Data.structure([relay_1, n.Data.uint8(0), n.Data.uint16(0), n.Data.boolean(False)])]
    )
    outcome = client.action(n.Omd(oi=0x8000, method=129, mode=0), trip)
    assert outcome.dar == 0 and not meter.physics.commanded_closed
    line.clock.t += RELAY_SETTLE_S
    relay = client.get(oad("80000300")).require_data()
    assert dlt698.encode_data(relay) == bytes.fromhex("04 08 80")  # bit-string(8), bit 0: relay 1 open
    close = n.Data.array([n.Data.structure([relay_1, n.Data.enumeration(1)])])
    assert client.action(n.Omd(oi=0x8000, method=130, mode=0), close).dar == 0
    assert meter.physics.commanded_closed


def test_their_client_reads_a_long_list_in_blocks(meter_and_client) -> None:
    meter, client, _ = meter_and_client
    oads = ["00100200", "00200200", "00000200", "00100400", "00200400", "00000400", "20000200", "20010200"]
    oads += ["20040200", "20050200", "20060200", "200A0200", "20140200", "202C0200", "40000200"]
    transfers = meter.blocks.transfers
    response = client.get_list([oad(o) for o in oads])
    assert meter.blocks.transfers == transfers + 1  # 15 results over 300 bytes: GET-Next blocks
    energy = response.attributes[0].result
    assert energy.value[0].as_uint32() == round(sum(meter.physics.energy) * 100)
    assert len(response.attributes) == len(oads)


def test_their_client_cannot_collect_blocks_numbered_from_1() -> None:
    """The disagreement of the module docstring, pinned: the same read as above, our default numbering."""
    meter = Dlt698Meter(ADDR, seed=5, start_time=T0, apdu_size=300)
    columns = [oad("20210200"), oad("00100201")]
    with running_line([meter], 9600) as line, their_client(line.path, timeout_s=1.0) as client:
        with pytest.raises(dlt698.Dlt698Error, match="timeout"):
            client.get_record(n.GetRecord(attribute=oad("50040200"), columns=columns, rows=n.SelectAll()))
    assert meter.blocks.transfers == 1 and meter.stats["requests"] == 1  # block 1 sent, no GET-Next came
