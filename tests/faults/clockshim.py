"""`python -m tests.faults.clockshim OFFSET_FILE ARGS...`: `gridedge ARGS...` with a wall clock that jumps.

Layer: test harness. Changing the machine's clock needs root and would move every process (the broker,
influxd, the witness); this shim moves only the process under test. `time.time()` and `time.time_ns()`
return the real wall clock plus the offset in seconds read from OFFSET_FILE at start and on SIGUSR1,
so `Rig.clock_jump()` writes the file and signals the gateway: a step of the wall clock as NTP or an
operator would make it. Monotonic clocks are untouched, as on a real step.
"""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

_real_time = time.time
_real_time_ns = time.time_ns
_offset_s = 0.0


def _load(path: Path) -> None:
    global _offset_s
    try:
        _offset_s = float(path.read_text().strip() or 0)
    except (OSError, ValueError):
        _offset_s = 0.0


def _time() -> float:
    return _real_time() + _offset_s


def _time_ns() -> int:
    return _real_time_ns() + int(_offset_s * 1e9)


def main() -> None:
    offset_file = Path(sys.argv[1])
    _load(offset_file)
    signal.signal(signal.SIGUSR1, lambda signum, frame: _load(offset_file))
    time.time = _time
    time.time_ns = _time_ns
    from gridedge.cli import main as gridedge_main

    sys.argv = ["gridedge", *sys.argv[2:]]
    sys.exit(gridedge_main())


if __name__ == "__main__":
    main()
