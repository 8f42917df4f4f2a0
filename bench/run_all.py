"""`make bench`: every benchmark, one after the other, figures printed (minutes, not part of make test)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
RUNS = [
    ["bus_efficiency.py", "--meters", "8", "--seconds", "20", "--repeats", "3"],
    [
        "bus_efficiency.py",
        "--kind",
        "dlt698",
        "--meters",
        "32",
        "--baud",
        "9600",
        "--parity",
        "E",
        "--seconds",
        "30",
    ],
    ["bus_efficiency.py", "--kind", "mixed", "--meters", "32", "--seconds", "30"],
    ["ingest_throughput.py", "--readings", "100000", "--per-message", "1"],
    ["ingest_throughput.py", "--readings", "100000", "--per-message", "10"],
    ["ingest_latency.py", "--rate", "11000", "--seconds", "10", "--writers", "1"],
    ["ingest_latency.py", "--rate", "11000", "--seconds", "10", "--writers", "2"],
    ["ingest_latency.py", "--rate", "11000", "--seconds", "10", "--role", "all"],
    ["alerts_throughput.py", "--readings", "40000", "--accounts", "all"],
    ["gateway_footprint.py", "--seconds", "180"],
]

if __name__ == "__main__":
    failed = 0
    for run in RUNS:
        print(f"\n== {' '.join(run)}", flush=True)
        failed += subprocess.run([sys.executable, str(HERE / run[0]), *run[1:]], check=False).returncode != 0
    sys.exit(1 if failed else 0)
