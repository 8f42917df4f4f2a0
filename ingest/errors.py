"""Exception tree of the ingest layer.

    IngestError
    ├── WriteError           the database did not accept a batch
    │   ├── RetryableWrite   ... but will later (connection refused, 5xx, 429): retry, keep the messages
    │   └── RejectedPoints   ... and never will (400: bad line, type conflict): dead-letter those lines
    └── SubscribeError       the broker side failed

Contract violations in payloads are `protocols.errors.ContractError` (dead-lettered, never raised out).
"""

from __future__ import annotations


class IngestError(Exception):
    """Base of every error raised by `ingest`."""


class WriteError(IngestError):
    """The database did not accept a batch."""


class RetryableWrite(WriteError):
    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class RejectedPoints(WriteError):
    """The database refused (part of) the batch for good; `reason` is its message."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SubscribeError(IngestError):
    """The broker side failed."""
