"""A meter served by another author's DL/T 698.45 implementation (PyPI `dlt698` 1.0.1, bindings of the
600888/dlt698 C++ library), for interop tests of our driver and `gridedge read/scan`.

Its server runs on its own native threads, on TCP (`socket://127.0.0.1:PORT` for our Bus) or on a
serial port: a pty slave, joined to a second pty by `null_modem()` so our Bus (which opens a path, as
on a gateway) gets the other end. Its values are set as raw protocol data (the wire's integers); the
tests scale them with the library's own catalogue (`engineering_values`), not with ours.

Layer: test helper. Must not: import the gateway or use our codec (it is the independent side).
"""

from __future__ import annotations

import contextlib
import os
import selectors
import threading
import tty
from collections.abc import Iterator
from typing import Any

import pytest

dlt698 = pytest.importorskip("dlt698", reason="the dlt698 oracle is in the test extra of pyproject.toml")
from dlt698 import _native as n  # noqa: E402

__all__ = ["ADDRESS", "n", "null_modem", "oad", "server", "values"]

ADDRESS = "123456789012"
# raw values as on the wire (catalogue scalers: energy 0.01 kWh, voltage 0.1 V, current 0.001 A):
# registers at their limits, so a wrong width, sign or scaler on either side shows
ENERGY = (4294967295, 1073741823, 1073741824, 1073741824, 1073741824)  # total, T1..T4 (uint32)
VOLTAGE = (2301, 0, 65535)  # long-unsigned
CURRENT = (1500, -1501, -2147483648)  # double-long
CLOCK = (2026, 12, 3, 8, 30, 15)  # date_time_s
WALLET = (5678, 3)  # remaining money 0.01 CNY, purchase count (dlt698.md §4)


def oad(text: str) -> Any:
    v = int(text, 16)
    return n.Oad(oi=v >> 16, attribute=(v >> 8) & 0xFF, index=v & 0xFF)


def values() -> dict[str, Any]:
    """OAD -> the library's Data for every value the meter holds."""
    year, month, day, hour, minute, second = CLOCK
    return {
        "00100200": n.Data.array([n.Data.uint32(v) for v in ENERGY]),
        "20000200": n.Data.array([n.Data.uint16(v) for v in VOLTAGE]),
        "20010200": n.Data.array([n.Data.int32(v) for v in CURRENT]),
        "40000200": n.Data.date_time_s([year >> 8, year & 0xFF, month, day, hour, minute, second]),
        "40010200": n.Data.octet_string(bytes.fromhex(ADDRESS)),  # not reversed (dlt698.md §4)
        "202C0200": n.Data.structure([n.Data.uint32(v) for v in WALLET]),
    }


def server() -> Any:
    """Their managed server for meter ADDRESS holding `values()`. 202C (wallet) is not in their
    standard catalogue (122 OIs; `set` raises `unsupported_tag: standard OI/attribute`): it is declared
    through their custom-schema API (`Device.define`) with dlt698.md §4's type."""
    device = n.Device(n.DeviceOptions(layout=n.DeviceLayout(tariff_count=4)))
    wallet = n.AttributeSchema(number=2, readable=True, type=n.DataType.structure)
    device.define(n.ObjectSchema(oi=0x202C, name="wallet", attributes=[wallet]))
    # SA in wire order (reversed BCD, dlt698.md §1); CA 0
    address = n.ServerAddress(bytes=bytes.fromhex(ADDRESS)[::-1], logical=0, type=n.AddressType.single)
    options = n.ServerOptions(protocol=n.SessionOptions(server=address))
    meter = dlt698.Server(device, options)
    for key, data in values().items():
        meter.set(oad(key), data)
    return meter


@contextlib.contextmanager
def null_modem() -> Iterator[tuple[str, str]]:
    """Two raw ptys joined master to master by a thread: what a program writes on the first path the
    program on the second reads, and back. Both slaves stay open here, so a side that closes and
    reopens its path (a CLI run) never makes the other master fail with EIO."""
    pairs = [os.openpty(), os.openpty()]
    for _, slave in pairs:
        tty.setraw(slave)
    masters = [master for master, _ in pairs]
    stop_r, stop_w = os.pipe()

    def relay() -> None:
        with selectors.DefaultSelector() as sel:
            sel.register(masters[0], selectors.EVENT_READ, masters[1])
            sel.register(masters[1], selectors.EVENT_READ, masters[0])
            sel.register(stop_r, selectors.EVENT_READ, None)
            while True:
                for key, _ in sel.select():
                    if key.data is None:
                        return
                    os.write(key.data, os.read(key.fd, 4096))

    thread = threading.Thread(target=relay, name="dlt698-null-modem", daemon=True)
    thread.start()
    try:
        yield os.ttyname(pairs[0][1]), os.ttyname(pairs[1][1])
    finally:
        os.write(stop_w, b"x")
        thread.join(5)
        for fd in [*masters, *(slave for _, slave in pairs), stop_r, stop_w]:
            os.close(fd)
