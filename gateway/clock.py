"""Is this gateway's own clock trustworthy? Meter time is only corrected from a synchronised clock.

Layer: gateway core. systemd-timesyncd touches /run/systemd/timesync/synchronized once it has
synchronised; chrony and ntpd set the kernel's "clock synchronised" state, which `adjtimex` reports
(STA_UNSYNC clear and a maximum error under 16 s). Either is enough. A gateway that cannot tell
(a container without either) never corrects meters unless `gateway.require_ntp: false`.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from pathlib import Path

TIMESYNCD_FLAG = Path("/run/systemd/timesync/synchronized")
STA_UNSYNC = 0x0040
TIME_ERROR = 5


class _Timex(ctypes.Structure):
    _fields_ = [
        ("modes", ctypes.c_uint),
        ("offset", ctypes.c_long),
        ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long),
        ("esterror", ctypes.c_long),
        ("status", ctypes.c_int),
        ("constant", ctypes.c_long),
        ("precision", ctypes.c_long),
        ("tolerance", ctypes.c_long),
        ("time_sec", ctypes.c_long),
        ("time_usec", ctypes.c_long),
        ("tick", ctypes.c_long),
        ("ppsfreq", ctypes.c_long),
        ("jitter", ctypes.c_long),
        ("shift", ctypes.c_int),
        ("stabil", ctypes.c_long),
        ("jitcnt", ctypes.c_long),
        ("calcnt", ctypes.c_long),
        ("errcnt", ctypes.c_long),
        ("stbcnt", ctypes.c_long),
        ("tai", ctypes.c_int),
        ("padding", ctypes.c_int * 11),
    ]


def kernel_clock_synchronised() -> bool:
    """adjtimex(2) read-only query: synchronised and max error below 16 s."""
    libc_name = ctypes.util.find_library("c")
    if libc_name is None or os.name != "posix":
        return False
    try:
        libc = ctypes.CDLL(libc_name, use_errno=True)
        tx = _Timex()
        state = libc.adjtimex(ctypes.byref(tx))
    except (OSError, AttributeError):
        return False
    return state not in (-1, TIME_ERROR) and not tx.status & STA_UNSYNC and tx.maxerror < 16_000_000


def system_clock_synchronised() -> bool:
    return TIMESYNCD_FLAG.exists() or kernel_clock_synchronised()
