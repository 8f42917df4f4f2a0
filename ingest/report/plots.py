"""Draws a figure's `Plot` as inline SVG with matplotlib (object API, no pyplot global state, Agg-free
SVG backend: nothing opens a display).

Layer: ingest reporting (rendering). Must not: compute figures. SVG keeps text as text
(`svg.fonttype: none`): a chart is a few kB, stays sharp when printed, and its labels can be searched.
"""

from __future__ import annotations

import io
from typing import Any

from .errors import MissingDependency
from .model import Plot

__all__ = ["svg"]

_COLOURS = ("#1f5fa8", "#e07b22", "#3a9a4a", "#b8342c", "#7a52a8")
_RC = {"svg.fonttype": "none", "font.size": 9, "axes.spines.top": False, "axes.spines.right": False}


def _modules() -> tuple[Any, Any]:
    try:
        import matplotlib
        from matplotlib.backends.backend_svg import FigureCanvasSVG
        from matplotlib.figure import Figure
    except ImportError:
        raise MissingDependency(
            "gridedge report draws its charts with matplotlib: pip install 'gridedge[report]'"
        ) from None
    return matplotlib, (Figure, FigureCanvasSVG)


def svg(plot: Plot) -> str:
    matplotlib, (Figure, Canvas) = _modules()
    with matplotlib.rc_context(_RC):
        height = max(2.6, 0.28 * len(plot.categories) + 1.0) if plot.kind == "hbar" else 2.8
        fig = Figure(figsize=(7.2, min(height, 9.0)))
        Canvas(fig)
        ax = fig.add_subplot()
        _draw(ax, plot)
        fig.tight_layout()
        out = io.StringIO()
        fig.savefig(out, format="svg")
    text = out.getvalue()
    return text[text.index("<svg") :]  # the XML prolog and doctype do not belong inside HTML


def _draw(ax: Any, plot: Plot) -> None:
    positions = list(range(len(plot.categories)))
    n = max(len(plot.series), 1)
    width = 0.8 / (1 if plot.stacked else n)
    for index in plot.shade:
        ax.axvspan(index - 0.5, index + 0.5, color="#f3e3c3", zorder=0)
    for k, (name, values) in enumerate(plot.series.items()):
        ys = [float("nan") if v is None else v for v in values]
        colour = _COLOURS[k % len(_COLOURS)]
        if plot.kind == "line":
            ax.plot(positions, ys, marker="o", label=name, color=colour)
        elif plot.kind == "hbar":
            ax.barh(
                [p + (k - (n - 1) / 2) * width for p in positions], ys, height=width, label=name, color=colour
            )
        else:
            offset = 0.0 if plot.stacked else (k - (n - 1) / 2) * width
            ax.bar([p + offset for p in positions], ys, width=width, label=name, color=colour)
    if plot.reference is not None:
        label, value = plot.reference
        line = ax.axvline if plot.kind == "hbar" else ax.axhline
        line(value, color="#b8342c", linestyle="--", linewidth=1, label=label)
    _axes(ax, plot, positions)


def _axes(ax: Any, plot: Plot, positions: list[int]) -> None:
    from matplotlib.ticker import MaxNLocator  # present: svg() checked matplotlib

    many = len(plot.categories) > 12
    if plot.kind == "hbar":
        ax.set_yticks(positions, plot.categories)
        ax.invert_yaxis()
        ax.set_xlabel(plot.ylabel)
    else:
        ax.set_xticks(
            positions, plot.categories, rotation=60 if many else 0, ha="right" if many else "center"
        )
        ax.set_ylabel(plot.ylabel)
    if len(plot.series) > 1 or plot.reference is not None:  # above the axes: never over a bar
        entries = len(plot.series) + (plot.reference is not None)
        ax.legend(frameon=False, fontsize=8, loc="lower left", bbox_to_anchor=(0, 1.0), ncols=entries)
    if len(positions) < 4:  # a bar as wide as the chart reads badly: keep room for four categories
        pad = (4 - len(positions)) / 2
        axis = ax.set_ylim if plot.kind == "hbar" else ax.set_xlim
        axis(
            (len(positions) - 0.5 + pad, -0.5 - pad)
            if plot.kind == "hbar"
            else (-0.5 - pad, len(positions) - 0.5 + pad)
        )
    values = [v for vs in plot.series.values() for v in vs if v is not None]
    if plot.kind != "hbar" and values and min(values) >= 0:
        ax.set_ylim(bottom=0)  # a wait or a count read from zero, never from its smallest value
    if all(v is None or float(v).is_integer() for values in plot.series.values() for v in values):
        (ax.xaxis if plot.kind == "hbar" else ax.yaxis).set_major_locator(MaxNLocator(integer=True))
    ax.grid(axis="x" if plot.kind == "hbar" else "y", color="#dddddd", linewidth=0.6)
    ax.set_axisbelow(True)
