"""InfluxDB writers: line protocol over HTTP, one persistent connection on a dedicated thread.

Layer: ingest I/O. `InfluxV1` speaks the 1.x `/write` API (database, retention policy, user/password;
Debian's influxd 1.6 in tests and the demo) with `http.client`: influxdb-client only speaks the v2 API,
which 1.x has from 1.8 on. `InfluxV2` writes to InfluxDB 2.x, 3.x and 1.8+'s compatibility endpoint
(org, bucket, token) through influxdb-client's *synchronous* WriteApi: its batching WriteApi retries on its
own thread and would hide what we need, the outcome of every write (retry on 429/5xx honouring
Retry-After, dead-letter the exact line a 400 names, acknowledge MQTT messages only after a 204). Our
batching, back-off and bisection are the same for both versions.

`write(lines)` returns the lines the database refused for good, with its reason (`write_indexed`: their
positions in `lines`): on a 400 the batch is bisected until each refused line is isolated (the good
lines are rewritten; same series + same timestamp overwrites, so that is idempotent). Raises
RetryableWrite when nothing can be said yet.
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
    CREDENTIALS = "influx.username / influx.password"  # named when the database refuses them

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
        """Where `_post_lines` POSTs (1.x; the 2.x writer posts through influxdb-client instead)."""
        raise NotImplementedError

    def headers(self) -> dict[str, str]:
        return {}

    # ---- API --------------------------------------------------------------------------------------

    async def write(self, lines: Sequence[str]) -> list[tuple[str, str]]:
        """Write all lines; return [(line, reason)] for the lines refused for good."""
        return [(lines[i], reason) for i, reason in await self.write_indexed(lines)]

    async def write_indexed(self, lines: Sequence[str]) -> list[tuple[int, str]]:
        """Write all lines; return [(index in `lines`, reason)] for the lines refused for good. By
        position, not by text: two messages can make the same line (a replayed reading), and each
        refused copy belongs to its own message."""
        if not lines:
            return []
        try:
            await self._call(self._post_lines, lines)
        except RejectedPoints as exc:
            if len(lines) == 1:
                return [(0, exc.reason)]
            half = len(lines) // 2
            first = await self.write_indexed(lines[:half])
            second = await self.write_indexed(lines[half:])
            return first + [(half + i, reason) for i, reason in second]
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
        self._outcome(status, _error_text(body_text), retry_after, len(lines))

    def _outcome(self, status: int, reason: str, retry_after: float | None, count: int) -> None:
        """Return on success; raise RejectedPoints (for good: bisect) or RetryableWrite (later)."""
        if status in (200, 204):
            return
        reason = reason or f"HTTP {status}"
        if status in {400, 422}:
            raise RejectedPoints(reason)
        if status == 413 and count > 1:
            raise RejectedPoints("request too large")  # bisection splits it
        if status in (401, 403):  # retried (the messages stay in the broker) until the credentials are fixed
            reason += f" (check {self.CREDENTIALS})"
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

    async def create_database(self) -> bool:
        """CREATE DATABASE (idempotent); False when the user may not (403: not an admin, which a
        least-privilege writer is not): the database is then expected to exist already."""
        q = urllib.parse.urlencode({"q": f'CREATE DATABASE "{self.cfg.database}"'})
        status, text, _ = await self._call(
            self._request,
            "POST",
            "/query?" + q,
            b"",
            {"Content-Type": "application/x-www-form-urlencoded", **self.headers()},
        )
        if status == 403:
            return False
        if status != 200:
            hint = f" (check {self.CREDENTIALS})" if status == 401 else ""
            raise RetryableWrite(
                f"InfluxDB {self.cfg.url}: CREATE DATABASE: HTTP {status}: {_error_text(text)}{hint}"
            )
        return True


class InfluxV2(InfluxWriter):
    """influxdb-client's synchronous WriteApi on our writer thread: one request per call, no retries of
    its own (urllib3 `retries=False`), every outcome mapped like the 1.x writer's."""

    CREDENTIALS = "influx.token"

    def __init__(self, cfg: InfluxSection) -> None:
        super().__init__(cfg)
        # imported here: 0.8 s of start-up that a 1.x deployment (and every restart after a fault) skips
        from influxdb_client.client.influxdb_client import InfluxDBClient
        from influxdb_client.client.write_api import SYNCHRONOUS

        self._client = InfluxDBClient(
            url=cfg.url, token=cfg.token or "", org=cfg.org, timeout=int(cfg.timeout_s * 1000), retries=False
        )
        self._api = self._client.write_api(write_options=SYNCHRONOUS)

    def _post_lines(self, lines: Sequence[str]) -> None:
        from influxdb_client.domain.write_precision import WritePrecision
        from influxdb_client.rest import ApiException
        from urllib3.exceptions import HTTPError

        try:
            self._api.write(
                bucket=self.cfg.bucket,
                org=self.cfg.org,
                record="\n".join(lines),
                write_precision=WritePrecision.MS,  # type: ignore[arg-type]  # a str constant
            )
        except ApiException as exc:
            self.requests += 1
            body = exc.body.decode("utf-8", "replace") if isinstance(exc.body, bytes) else str(exc.body or "")
            status = int(exc.status or 0)
            self._outcome(
                status, _error_text(body) or str(exc.reason or ""), _retry_after(exc.retry_after), len(lines)
            )
            return
        except (HTTPError, OSError) as exc:  # refused, reset, timed out: nothing was decided
            raise RetryableWrite(f"InfluxDB {self.cfg.url}: {exc}") from None
        self.requests += 1

    async def close(self) -> None:
        await self._call(self._client.close)
        await super().close()


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
