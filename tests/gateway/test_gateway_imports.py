"""`gridedge gateway ...` loads only the gateway: not the ingest, the simulators, the demo or the
commissioning tools (a gateway runs for months on a small board; bench/gateway_footprint.py)."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import sys
from gridedge.cli import build_parser
build_parser("gateway").parse_args(["gateway", "run", "-c", "x.yaml"])
names = set(sys.modules)
print(" ".join(names | {n.split(".")[0] for n in names}))
"""


def test_the_gateway_command_loads_no_other_service() -> None:
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True).stdout
    loaded = set(out.split())
    assert "gateway.cli" in loaded
    unwanted = {"ingest", "firmware_sim", "rich", "influxdb_client", "gateway.commission"} & loaded
    assert not unwanted, f"loaded by `gridedge gateway`: {sorted(unwanted)}"
