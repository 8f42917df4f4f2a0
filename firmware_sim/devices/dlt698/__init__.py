"""Simulated DL/T 698.45 prepaid meters: `meter` (frames in, replies out), `objects` (attributes as
Data), `records` (freezes, power-down events, GET-Record selection), `blocks` (GET-Next), `commands`
(SET, ACTION), `options` (the `gridedge sim dlt698` options). The physics and the history are shared
with the DL/T 645 meter (firmware_sim/prepaid.py, firmware_sim/meter_history.py)."""

from .meter import Dlt698Meter, fake_mac, mac_key_for
from .options import add_arguments, build

__all__ = ["Dlt698Meter", "add_arguments", "build", "fake_mac", "mac_key_for"]
