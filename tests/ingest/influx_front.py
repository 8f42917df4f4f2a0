"""An HTTP front for the real influxd of the test fixtures: the v2 write API, and injected answers.

- `POST /api/v2/write?org=&bucket=&precision=` is served the way InfluxDB 1.8+ serves its compatibility
  endpoint (docs.influxdata.com/influxdb/v1.8/tools/api/#apiv2write-http-endpoint): the bucket is
  "database[/retention-policy]", the token "user:password" (or empty without auth), the body goes to
  the 1.x `/write` of the real influxd. Its errors are answered in the 2.x shape `{"code", "message"}`.
  This is the only way to put influxdb-client's requests in front of a real database here: Debian
  packages influxd 1.6 (no /api/v2), and no InfluxDB 2.x or 3.x server is on PyPI, npm or Debian.
- `answers`: canned (status, headers, body) given to the next write requests instead of forwarding
  them, first in first out: a throttling (429 + Retry-After) or overloaded (503) database.
- Every other request is forwarded unchanged. `requests` records (method, path, headers) of each.
"""

from __future__ import annotations

import collections
import http.client
import http.server
import json
import threading
import urllib.parse
from typing import Any

from gridedge.services import free_port

Answer = tuple[int, dict[str, str], bytes]


class InfluxFront:
    def __init__(self, influx_url: str) -> None:
        target = urllib.parse.urlsplit(influx_url)
        self.target = (target.hostname or "127.0.0.1", target.port or 8086)
        self.answers: collections.deque[Answer] = collections.deque()
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, name="influx-front", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def writes(self) -> list[tuple[str, str, dict[str, str]]]:
        return [r for r in self.requests if "/write" in r[1]]

    # ---- serving ----------------------------------------------------------------------------------

    def _handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        front = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as both writers use it

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def do_GET(self) -> None:
                self._serve()

            def do_POST(self) -> None:
                self._serve()

            def _serve(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                front.requests.append((self.command, self.path, dict(self.headers.items())))
                if "/write" in self.path and front.answers:
                    self._answer(*front.answers.popleft())
                    return
                path, headers = self.path, {"Content-Type": self.headers.get("Content-Type", "text/plain")}
                v2 = self.path.startswith("/api/v2/write")
                if v2:
                    path = _v1_write(self.path, self.headers.get("Authorization", ""))
                status, reply_headers, reply = front._forward(self.command, path, body, headers)
                if v2 and status >= 400:
                    reply = json.dumps(
                        {"code": _V2_CODES.get(status, "internal error"), "message": _message(reply)}
                    )
                    reply_headers = {"Content-Type": "application/json"}
                self._answer(status, reply_headers, reply.encode() if isinstance(reply, str) else reply)

            def _answer(self, status: int, headers: dict[str, str], body: bytes) -> None:
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler

    def _forward(
        self, method: str, path: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection(*self.target, timeout=30)
        try:
            conn.request(method, path, body=body or None, headers=headers)
            resp = conn.getresponse()
            keep = {k: v for k, v in resp.getheaders() if k.lower() in ("content-type", "retry-after")}
            return resp.status, keep, resp.read()
        finally:
            conn.close()


_V2_CODES = {
    400: "invalid",
    401: "unauthorized",
    404: "not found",
    413: "request too large",
    503: "unavailable",
}


def _v1_write(path: str, authorization: str) -> str:
    """1.8's mapping of a v2 write onto /write: bucket "db[/rp]", token "user:password"."""
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(path).query))
    database, _, rp = query.get("bucket", "").partition("/")
    params = {"db": database, "precision": query.get("precision", "ns")}
    if rp:
        params["rp"] = rp
    token = authorization.removeprefix("Token ").strip()
    if ":" in token:
        user, _, password = token.partition(":")
        params.update(u=user, p=password)
    return "/write?" + urllib.parse.urlencode(params)


def _message(reply: bytes) -> str:
    try:
        return str(json.loads(reply).get("error", reply.decode()))
    except (ValueError, AttributeError):
        return reply.decode("utf-8", "replace")
