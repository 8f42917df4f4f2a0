"""`gridedge report`: the monthly service-quality report (outage repair promises, the business hall, cost
control, reading health) computed from InfluxDB, written as one self-contained HTML file.

Layer: ingest reporting (a batch command: reads InfluxDB, writes one file). Must not: write to the
database, publish, or import the ingest service or the alert engine's running parts (it reads the rule
sets' config models only, for the thresholds the figures are judged against).

    cli -> build -> (outages | hall | costcontrol | reading) -> model, period, rows
                 -> source (InfluxQL over HTTP)          render -> plots (matplotlib, SVG inline)

Every section module is pure: `queries(period, ctx)` gives the InfluxQL texts (shown on the page) and
`figures(results, period, ctx)` computes the section from what those queries returned.

Errors (errors.py):

    ReportError (an IngestError)
    ├── PeriodError        --month / --from / --to cannot be read
    ├── QueryFailed        the database refused a query or could not be reached (names the query)
    └── MissingDependency  matplotlib is not installed (the `report` extra)
"""

from __future__ import annotations

from .errors import MissingDependency, PeriodError, QueryFailed, ReportError

__all__ = ["MissingDependency", "PeriodError", "QueryFailed", "ReportError"]
