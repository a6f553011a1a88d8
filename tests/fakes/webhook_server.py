"""A real HTTP server on 127.0.0.1 that records every request and answers from a script.

For testing anything that POSTs JSON to a webhook-style endpoint (Slack,
PagerDuty, Alertmanager): it is ``http.server.ThreadingHTTPServer`` in a
background thread, on a free port, speaking real HTTP/1.1 over a real socket.
Per path a queue of replies is consumed in order (status, body, headers, or
``drop`` to close the connection without answering, which the client sees as
a connection error); once the queue is empty the path's default reply is
used (200 with body ``ok`` unless set).

Usage::

    with WebhookServer() as server:
        server.script("/v2/enqueue", Reply(500), Reply(429, headers={"Retry-After": "0"}), Reply(202))
        ...  # POST to server.url + "/v2/enqueue"
        assert [r.status for r in server.received("/v2/enqueue")] == [500, 429, 202]
        assert server.received("/v2/enqueue")[-1].json == {...}
"""

from __future__ import annotations

import json
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["Received", "Reply", "WebhookServer"]


@dataclass(frozen=True)
class Reply:
    """One scripted answer.

    Attributes:
        status: HTTP status.
        body: response body (a dict or list is sent as JSON).
        headers: extra response headers.
        drop: close the connection without any response.
    """

    status: int = 200
    body: Any = "ok"
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False


@dataclass(frozen=True)
class Received:
    """One request the server received, and how it answered.

    Attributes:
        method: HTTP method.
        path: the request path (query string included).
        headers: request headers (names lower-cased).
        body: raw body bytes.
        status: the status answered (0 when the connection was dropped).
    """

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    status: int

    @property
    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body.decode("utf-8"))


class WebhookServer:
    """A recording, scriptable HTTP server (see the module docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._scripts: dict[str, deque[Reply]] = {}
        self._defaults: dict[str, Reply] = {}
        self.requests: list[Received] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, name="webhook-server", daemon=True
        )

    @property
    def url(self) -> str:
        """Base URL, ``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def script(self, path: str, *replies: Reply | int) -> None:
        """Queues replies for a path (ints are statuses with the default body).

        Args:
            path: the request path.
            *replies: answers, consumed in order.
        """
        with self._lock:
            q = self._scripts.setdefault(path, deque())
            q.extend(r if isinstance(r, Reply) else Reply(r) for r in replies)

    def default(self, path: str, reply: Reply | int) -> None:
        """Sets the answer for a path once its script is used up.

        Args:
            path: the request path.
            reply: the answer.
        """
        with self._lock:
            self._defaults[path] = reply if isinstance(reply, Reply) else Reply(reply)

    def received(self, path: str | None = None) -> list[Received]:
        """Requests received, oldest first.

        Args:
            path: only those to this path.

        Returns:
            The requests.
        """
        with self._lock:
            return [r for r in self.requests if path is None or r.path == path]

    def _next(self, path: str) -> Reply:
        with self._lock:
            q = self._scripts.get(path)
            if q:
                return q.popleft()
            return self._defaults.get(path, Reply())

    def _record(self, r: Received) -> None:
        with self._lock:
            self.requests.append(r)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                reply = server._next(self.path)
                headers = {k.lower(): v for k, v in self.headers.items()}
                if reply.drop:
                    server._record(Received(self.command, self.path, headers, body, 0))
                    self.close_connection = True
                    return
                data = (
                    reply.body
                    if isinstance(reply.body, bytes)
                    else (json.dumps(reply.body) if isinstance(reply.body, (dict, list)) else str(reply.body)).encode()
                )
                server._record(Received(self.command, self.path, headers, body, reply.status))
                self.send_response(reply.status)
                ctype = "application/json" if isinstance(reply.body, (dict, list)) else "text/plain"
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                for k, v in reply.headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            do_POST = _serve
            do_GET = _serve
            do_PUT = _serve

        return Handler

    def __enter__(self) -> WebhookServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
