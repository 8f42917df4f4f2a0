"""The report as one self-contained HTML file: inline CSS, inline SVG charts, the figures again as JSON
(`<script type="application/json" id="report-data">`, for tests and anyone who wants the numbers), no
script, no external resource. Prints as a PDF from any browser (print CSS: one section per page).

Layer: ingest reporting (rendering). Must not: compute figures or query.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from html import escape
from typing import Any

from . import plots
from .build import Report
from .model import Figure, Section, Table
from .period import LOCAL_NAME, local

__all__ = ["html", "report_data"]

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI","Noto Sans CJK SC",sans-serif;color:#1d2530;
max-width:1040px;margin:24px auto;padding:0 20px}
h1{font-size:24px;margin:0 0 4px}
h2{font-size:19px;border-bottom:2px solid #1f5fa8;padding-bottom:3px;margin-top:34px}
h3{font-size:15px;margin:0 0 6px}.meta{color:#4a5563;margin:2px 0}nav a{margin-right:14px}
figure{margin:14px 0 22px;padding:12px 14px;border:1px solid #dde3ea;border-radius:6px;background:#fbfcfd}
.value{font-size:16px;font-weight:600;margin:4px 0 8px}.nodata{color:#6b7480;font-style:italic}
.definition{color:#3d4754;font-size:12.5px;margin:8px 0 0}
table{border-collapse:collapse;font-size:12.5px;margin:6px 0}
th,td{border:1px solid #dde3ea;padding:3px 8px;text-align:left}th{background:#eef2f6}td.n{text-align:right}
.notes{color:#8a4b00;font-size:12.5px}pre{white-space:pre-wrap;font-size:11.5px;background:#f2f4f7;padding:8px}
svg{max-width:760px;width:100%;height:auto;display:block}.more{color:#6b7480;font-size:12px}
@media print{section{break-before:page}figure{break-inside:avoid}details{display:none}}
"""


def html(report: Report, generated_at: float, source: str = "") -> str:
    p = report.period
    fmt = "%Y-%m-%d %H:%M:%S"
    head = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>gridedge service-quality report {escape(p.label)}</title><style>{_CSS}</style></head><body>",
        f"<header><h1>Service-quality report: {escape(p.label)}</h1>",
        f'<p class="meta">Period {local(p.start).strftime(fmt)} to {local(p.end).strftime(fmt)} '
        "(end excluded). "
        f"All times are {LOCAL_NAME}, the utility's local time: hours of day, days and month boundaries "
        "are local.</p>",
        f'<p class="meta">Database {escape(report.database)}{escape(source)}; generated '
        f"{local(generated_at).strftime(fmt)} CST ({datetime.fromtimestamp(generated_at, UTC):%H:%M} UTC); "
        f"repair promises: preset {escape(report.context.sla_preset)}. Each figure's definition is "
        "under it; each section's InfluxQL queries are at its end.</p>",
        "<nav>"
        + "".join(f'<a href="#{s.key}">{escape(s.title)}</a>' for s in report.sections)
        + "</nav></header>",
    ]
    body = [_section(s) for s in report.sections]
    data = json.dumps(report_data(report), sort_keys=True, default=str).replace("</", "<\\/")
    tail = [f'<script type="application/json" id="report-data">{data}</script>', "</body></html>"]
    return "\n".join(head + body + tail) + "\n"


def report_data(report: Report) -> dict[str, Any]:
    p = report.period
    return {
        "period": {"start": p.start, "end": p.end, "label": p.label, "timezone": "UTC+8"},
        "sections": {
            s.key: {f.key: {"value": f.value, "empty": f.empty, "data": f.data} for f in s.figures}
            for s in report.sections
        },
        "notes": {s.key: s.notes for s in report.sections},
    }


def _section(s: Section) -> str:
    parts = [f'<section id="{s.key}"><h2>{escape(s.title)}</h2>']
    parts += [_figure(f) for f in s.figures]
    if s.notes:
        parts.append(
            '<div class="notes"><b>Data notes.</b> ' + "; ".join(escape(n) for n in s.notes) + ".</div>"
        )
    queries = "\n\n".join(f"-- {name}\n{text}" for name, text in s.queries.items())
    parts.append(
        f"<details><summary>Queries ({len(s.queries)})</summary><pre>{escape(queries)}</pre></details>"
    )
    return "\n".join(parts) + "</section>"


def _figure(f: Figure) -> str:
    parts = [f'<figure id="fig-{f.key}"><h3>{escape(f.title)}</h3>']
    if f.empty is not None:
        parts.append(f'<p class="nodata">No data: {escape(f.empty)}.</p>')
    else:
        if f.value is not None:
            parts.append(f'<p class="value">{escape(f.value)}</p>')
        if f.plot is not None:
            parts.append(plots.svg(f.plot))
        if f.table is not None and f.table.rows:
            parts.append(_table(f.table))
    parts.append(f'<p class="definition"><b>Definition.</b> {escape(f.definition)}</p></figure>')
    return "\n".join(parts)


def _cell(value: Any) -> str:
    if value is None:
        return "<td></td>"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f'<td class="n">{value:g}</td>' if isinstance(value, float) else f'<td class="n">{value}</td>'
    return f"<td>{escape(str(value))}</td>"


def _table(t: Table) -> str:
    head = "".join(f"<th>{escape(c)}</th>" for c in t.columns)
    body = "".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in t.rows[: t.limit])
    more = (
        f'<p class="more">{len(t.rows) - t.limit} more row(s) not shown.</p>' if len(t.rows) > t.limit else ""
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{more}"
