"""InfluxQL queries over HTTP (`/query`): InfluxDB 1.x with its database (and user/password), 2.x/3.x and
1.8+ through their 1.x-compatible `/query` endpoint (database = the bucket's DBRP mapping, token).

Layer: ingest reporting I/O (synchronous: the report is a batch command that runs its queries one after
another). Must not: write. Every failure is QueryFailed naming the query; an empty result is not one.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from ..config import InfluxSection
from .errors import QueryFailed

__all__ = ["Row", "Source", "rows"]

Row = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Source:
    url: str
    database: str
    headers: tuple[tuple[str, str], ...] = ()
    timeout_s: float = 60.0

    @classmethod
    def from_config(cls, cfg: InfluxSection, url: str | None = None, database: str | None = None) -> Source:
        """`url` overrides the config's; user:password in a URL become its credentials (urllib would
        take them for the host name) unless the config names a user or a token."""
        parts = urllib.parse.urlsplit((url or cfg.url).rstrip("/"))
        user, password = parts.username, parts.password
        headers: list[tuple[str, str]] = []
        if cfg.version == 2 and cfg.token:
            headers.append(("Authorization", f"Token {cfg.token}"))
        elif cfg.username is not None or user is not None:
            pair = (
                f"{cfg.username}:{cfg.password or ''}"
                if cfg.username is not None
                else f"{user}:{password or ''}"
            )
            headers.append(("Authorization", "Basic " + base64.b64encode(pair.encode()).decode()))
        plain = urllib.parse.urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
        db = database or (cfg.bucket.split("/")[0] if cfg.version == 2 else cfg.database)
        return cls(plain, db, tuple(headers), cfg.timeout_s)

    def query(self, text: str) -> list[dict[str, Any]]:
        """The series of one InfluxQL statement (times in epoch milliseconds)."""
        params = urllib.parse.urlencode({"q": text, "db": self.database, "epoch": "ms"})
        request = urllib.request.Request(f"{self.url}/query?{params}", headers=dict(self.headers))
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as resp:
                body = json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            detail = exc.read()[:300].decode("utf-8", "replace")
            raise QueryFailed(f"InfluxDB {self.url}: HTTP {exc.code} {detail.strip()} for: {text}") from None
        except (OSError, ValueError) as exc:
            raise QueryFailed(f"InfluxDB {self.url}: {exc} for: {text}") from None
        series: list[dict[str, Any]] = []
        for result in body.get("results", []):
            if "error" in result:
                raise QueryFailed(
                    f"InfluxDB {self.url} database {self.database!r}: {result['error']} for: {text}"
                )
            series.extend(result.get("series", []))
        return series


def rows(series: list[dict[str, Any]]) -> list[Row]:
    """One dict per point: its columns (`time` in seconds) and its series' tags."""
    out: list[Row] = []
    for s in series:
        tags = s.get("tags") or {}
        columns = s["columns"]
        for values in s["values"]:
            row: Row = dict(tags)
            row.update(zip(columns, values, strict=True))
            row["time"] = row["time"] / 1000
            out.append(row)
    out.sort(key=lambda r: r["time"])
    return out
