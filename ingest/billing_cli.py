"""`gridedge ingest billing import FILE.csv [-c ingest.yaml] [--ledger FILE]`: apply a CSV of payments,
tariff changes and accounts to the cost-control ledger (the CSV format is in
ingest/alerts/costcontrol/billing.py).

Layer: ingest command line. It sits above ingest/config.py and ingest/alerts/costcontrol/, so that the
billing code never imports back up into the service's config. Must not: validate or write records
itself (billing.py does), or run the alert engine.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from protocols.errors import ProtocolError

from .alerts.costcontrol.billing import import_csv
from .alerts.costcontrol.config import CostControlConfig
from .alerts.costcontrol.ledger import Ledger
from .config import load_config
from .topology import Topology

__all__ = ["register_billing", "run_import"]


def register_billing(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `billing import FILE.csv` under the `gridedge ingest` sub-commands."""
    p = sub.add_parser("billing", help="cost-control billing input (payments, tariffs, accounts)")
    cmds = p.add_subparsers(dest="billing_command", metavar="COMMAND", required=True)
    imp = cmds.add_parser("import", help="apply a CSV of payments / tariff changes / accounts to the ledger")
    imp.add_argument("file", metavar="FILE.csv")
    imp.add_argument("-c", "--config", help="ingest.yaml (ledger path and topology)")
    imp.add_argument("--ledger", help="ledger SQLite file (default: alerts.rules.costcontrol.ledger_path)")
    imp.set_defaults(handler=run_import)


def run_import(args: argparse.Namespace) -> int:
    try:
        ledger_path, topology = _locate(args.config, args.ledger)
    except (OSError, ValueError, ProtocolError) as exc:  # pydantic's ValidationError is a ValueError
        print(f"gridedge ingest billing: {exc}", file=sys.stderr)
        return 2
    try:
        with Ledger(ledger_path) as ledger:
            report = import_csv(args.file, ledger, now=time.time(), topology=topology)
    except OSError as exc:
        print(f"gridedge ingest billing: {args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    for row, why in report.rejected:
        print(f"{args.file}: row {row}: {why}", file=sys.stderr)
    print(f"{args.file} -> {ledger_path}: {report.summary()}")
    return 1 if report.rejected else 0


def _locate(config: str | None, ledger: str | None) -> tuple[Path, Topology | None]:
    """The ledger the alert engine of `config` uses (next to its alert state file unless configured),
    or `ledger` as given; and the topology of `config`."""
    section: dict[str, Any] = {}
    topology: Topology | None = None
    base = Path(".")
    if config:
        cfg = load_config(config)
        base = cfg.alerts.state_path.parent
        section = dict(cfg.alerts.rules.get("costcontrol") or {})
        if cfg.topology:
            topology = Topology.load(cfg.topology)
    rule_cfg = CostControlConfig.model_validate(section)
    if ledger:
        return Path(ledger), topology
    return base / rule_cfg.ledger_path, topology
