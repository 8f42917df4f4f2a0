"""Runs each section's queries and computes its figures: the one place the report meets the database.

Layer: ingest reporting (orchestration). Must not: render, or compute a figure itself.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import ModuleType

from . import costcontrol, hall, outages, reading
from .model import Context, Section
from .period import Period
from .source import Row, Source, rows

__all__ = ["SECTIONS", "Report", "build"]

SECTIONS: tuple[ModuleType, ...] = (outages, hall, costcontrol, reading)


@dataclass(frozen=True, slots=True)
class Report:
    period: Period
    context: Context
    database: str
    sections: list[Section]


def run_queries(source: Source, texts: Mapping[str, str]) -> dict[str, list[Row]]:
    return {name: rows(source.query(text)) for name, text in texts.items()}


def build(
    source: Source, period: Period, ctx: Context, progress: Callable[[str], None] | None = None
) -> Report:
    sections = []
    for module in SECTIONS:
        results = run_queries(source, module.queries(period, ctx))
        sections.append(module.figures(results, period, ctx))
        if progress is not None:
            progress(sections[-1].title)
    return Report(period, ctx, source.database, sections)
