"""Exception tree of the report (see the package docstring).

Layer: ingest reporting. Must not: be raised for data that is merely missing (an empty measurement is
a section saying "no data", not an error).
"""

from __future__ import annotations

from ..errors import IngestError


class ReportError(IngestError):
    """Base of every error raised by `ingest.report`."""


class PeriodError(ReportError):
    """The period options cannot be read (names the option and the value)."""


class QueryFailed(ReportError):
    """The database refused a query or could not be reached; the message names the query."""


class MissingDependency(ReportError):
    """A library the report needs is not installed."""
