"""InfluxDB writers: line protocol over HTTP, one persistent connection on a dedicated thread.

Layer: ingest I/O. `InfluxV1` speaks the 1.x `/write` API (database, retention policy, user/password;
Debian's influxd 1.6 in tests and the demo); `InfluxV2` speaks `/api/v2/write` (org, bucket, token;
InfluxDB 2.x, 3.x and 1.8+ compatibility). Both use `http.client` directly rather than
influxdb-client's batching WriteApi: we need the exact status and body of every write (to retry on
429/5xx honouring Retry-After, to dead-letter the precise line a 400 names, and to acknowledge MQTT
messages only after a 204), which the batching API hides behind its own retry thread.

`write(lines)` returns the lines the database refused for good, with its reason: on a 400 the batch
is bisected until each refused line is isolated (the good lines are rewritten; same series + same
timestamp overwrites, so that is idempotent). Raises RetryableWrite when nothing can be said yet.
"""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
import urllib.parse
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from .config import InfluxSection
from .errors import RejectedPoints, RetryableWrite

T = TypeVar("T")


class InfluxWriter:
    def __init__(self, cfg: InfluxSection) -> None:
        self.cfg = cfg
        url = urllib.parse.urlsplit(cfg.url)  # checked by the config model (InfluxSection.url)
        assert url.hostname is not None
        self._https = url.scheme == "https"
        self._host = url.hostname
        self._port = url.port or (443 if self._https else 80)
        self._base = url.path.rstrip("/")
        self._conn: http.client.HTTPConnection | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="influx")
        self.requests = 0

    # ---- subclass hooks ---------------------------------------------------------------------------

    def write_path(self) -> str:
        raise NotImplementedError

    def headers(self) -> dict[str, str]:
        return {}

    # ---- API --------------------------------------------------------------------------------------

    async def write(self, lines: Sequence[str]) -> list[tuple[str, str]]:
        """Write all lines; return [(line, reason)] for the lines refused for good."""
        if not lines:
            return []
        try:
            await self._call(self._post_lines, lines)
        except RejectedPoints as exc:
            if len(lines) == 1:
                return [(lines[0], exc.reason)]
            half = len(lines) // 2
            return await self.write(lines[:half]) + await self.write(lines[half:])
        return []

    async def ping(self) -> bool:
        try:
            status, _, _ = await self._call(self._request, "GET", "/ping", None, {})
        except RetryableWrite:
            return False
        return status in (200, 204)

    async def close(self) -> None:
        await self._call(self._close)
        self._executor.shutdown(wait=True)

    async def _call(self, fn: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    # ---- thread side ------------------------------------------------------------------------------

    def _post_lines(self, lines: Sequence[str]) -> None:
        body = ("\n".join(lines) + "\n").encode()
        headers = {"Content-Type": "text/plain; charset=utf-8", **self.headers()}
        status, body_text, retry_after = self._request("POST", self.write_path(), body, headers)
        if status in (200, 204):
            return
        reason = _error_text(body_text) or f"HTTP {status}"
        if status in {400, 422}:
            raise RejectedPoints(reason)
        if status == 413 and len(lines) > 1:
            raise RejectedPoints("request too large")  # bisection splits it
        raise RetryableWrite(f"InfluxDB {self.cfg.url}: HTTP {status}: {reason}", retry_after)

    def _request(
        self, method: str, path: str, body: bytes | None, headers: dict[str, str]
    ) -> tuple[int, str, float | None]:
        for attempt in (1, 2):  # a kept-alive connection the server closed fails once: reconnect
            conn = self._connection()
            try:
                conn.request(method, self._base + path, body=body, headers=headers)
                resp = conn.getresponse()
                text = resp.read().decode("utf-8", "replace")
                self.requests += 1
                return resp.status, text, _retry_after(resp.getheader("Retry-After"))
            except (OSError, http.client.HTTPException) as exc:
                self._close()
                if attempt == 2 or isinstance(exc, ConnectionRefusedError | TimeoutError):
                    raise RetryableWrite(f"InfluxDB {self.cfg.url}: {exc}") from None
        raise AssertionError("unreachable")

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            self._conn = cls(self._host, self._port, timeout=self.cfg.timeout_s)
        return self._conn

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class InfluxV1(InfluxWriter):
    def write_path(self) -> str:
        query = {"db": self.cfg.database, "precision": "ms"}
        if self.cfg.retention_policy:
            query["rp"] = self.cfg.retention_policy
        return "/write?" + urllib.parse.urlencode(query)

    def headers(self) -> dict[str, str]:
        if self.cfg.username is None:
            return {}
        token = base64.b64encode(f"{self.cfg.username}:{self.cfg.password or ''}".encode()).decode()
        return {"Authorization": f"Basic {token}"}

    async def create_database(self) -> None:
        q = urllib.parse.urlencode({"q": f'CREATE DATABASE "{self.cfg.database}"'})
        status, text, _ = await self._call(
            self._request,
            "POST",
            "/query?" + q,
            b"",
            {"Content-Type": "application/x-www-form-urlencoded", **self.headers()},
        )
        if status != 200:
            raise RetryableWrite(
                f"InfluxDB {self.cfg.url}: CREATE DATABASE: HTTP {status}: {_error_text(text)}"
            )


class InfluxV2(InfluxWriter):
    def write_path(self) -> str:
        query = {"org": self.cfg.org, "bucket": self.cfg.bucket, "precision": "ms"}
        return "/api/v2/write?" + urllib.parse.urlencode(query)

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Token {self.cfg.token}"} if self.cfg.token else {}


def make_writer(cfg: InfluxSection) -> InfluxWriter:
    return InfluxV1(cfg) if cfg.version == 1 else InfluxV2(cfg)


def _error_text(body: str) -> str:
    try:
        data = json.loads(body)
    except ValueError:
        return body.strip()[:500]
    if isinstance(data, dict):
        return str(data.get("error") or data.get("message") or data)[:500]
    return str(data)[:500]


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        return None
