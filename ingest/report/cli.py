"""`gridedge report`: the service-quality report of a period, from InfluxDB, as one HTML file.

    gridedge report -c examples/ingest.yaml --month 2026-11 -o report-2026-11.html
    gridedge report -c ingest.yaml --from 2026-11-01 --to 2026-11-16 --influx-url http://db:8086

Layer: ingest reporting (command line: parses, loads the config, reads the clock once, writes the
file). Must not: compute figures.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

from protocols.errors import ConfigError

from ..alerts.sla import PRESETS
from ..config import IngestConfig, load_config
from ..topology import Topology
from .build import build
from .errors import PeriodError, ReportError
from .period import parse_period
from .render import html
from .settings import context
from .source import Source

__all__ = ["register", "run_report"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "report",
        help="the service-quality report of a month or period (outage promises, hall, cost control, "
        "reading health) from InfluxDB, as one self-contained HTML file",
    )
    p.add_argument(
        "-c", "--config", help="the ingest config (InfluxDB connection, topology, rule thresholds)"
    )
    p.add_argument("--month", help="a calendar month in local time (UTC+8), e.g. 2026-11")
    p.add_argument(
        "--from", dest="start", help="period start: a date or date-time, local time unless an offset is given"
    )
    p.add_argument("--to", dest="end", help="period end, excluded (default: now)")
    p.add_argument("--influx-url", help="overrides influx.url of the config")
    p.add_argument("--database", help="overrides influx.database (1.x) / the bucket's database (2.x)")
    p.add_argument(
        "--preset", choices=sorted(PRESETS), help="repair promises (default: the outage rules' sla_preset)"
    )
    p.add_argument(
        "--callback-deadline-h", type=float, help="callback deadline of a dissatisfied rating (default 24)"
    )
    p.add_argument("-o", "--output", help="the HTML file (default: gridedge-report-PERIOD.html)")
    p.set_defaults(handler=run_report)


def _load(path: str | None) -> tuple[IngestConfig, Topology]:
    cfg = load_config(path) if path else IngestConfig()
    topology = Topology.load(cfg.topology) if cfg.topology is not None else Topology.empty()
    return cfg, topology


def run_report(args: argparse.Namespace) -> int:
    now = time.time()  # the one clock reading: open outages and follow-ups are judged at this moment
    try:
        cfg, topology = _load(args.config)
    except ConfigError as exc:
        print(f"gridedge report: {len(exc.problems)} problem(s) in the config:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 2
    try:
        period = parse_period(args.month, args.start, args.end, now)
        deadline = None if args.callback_deadline_h is None else args.callback_deadline_h * 3600
        ctx = context(cfg, topology, now, preset=args.preset, callback_deadline_s=deadline)
        source = Source.from_config(cfg.influx, args.influx_url, args.database)
        report = build(source, period, ctx, progress=lambda title: print(f"  {title}", file=sys.stderr))
        page = html(report, now, f" at {source.url}")
    except ReportError as exc:
        print(f"gridedge report: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, PeriodError) else 1
    out = Path(args.output or f"gridedge-report-{re.sub(r'[^0-9A-Za-z-]+', '_', period.label)}.html")
    out.write_text(page, encoding="utf-8")
    print(f"gridedge report: {out} ({len(page) // 1024} kB, {period.label})")
    return 0
