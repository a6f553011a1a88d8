"""The lifecycle every fake server in tests/fakes shares: a threaded HTTP server on loopback.

A fake binds 127.0.0.1 on a free port, serves on a daemon thread, stops on
``stop()`` or at the end of a ``with`` block. Each fake keeps its own request
handler (the wire protocol it speaks); this base only owns the server.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["GOOGLE_STATUS", "LoopbackServer", "RecordedRequest", "RecordingServer", "refusing_url"]

GOOGLE_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ALREADY_EXISTS",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
"""The ``status`` Google APIs put beside an HTTP error code in their JSON error body (the fake Vertex servers answer with it)."""


class LoopbackServer:
    """Base of the fake servers: start, stop, context manager, address."""

    _httpd: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    def start(self) -> Any:
        """Starts serving; subclasses build their handler and call :meth:`_serve`."""
        raise NotImplementedError

    def _serve(self, handler: type[BaseHTTPRequestHandler], name: str, poll_interval: float = 0.5) -> None:
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": poll_interval}, name=name, daemon=True)
        self._thread.start()

    def _serve_json(
        self,
        answer: Callable[[BaseHTTPRequestHandler, bytes], tuple[int, Any]],
        name: str,
        methods: tuple[str, ...],
        content_type: str = "application/json",
        poll_interval: float = 0.5,
    ) -> None:
        """Serves a JSON API: for each request of ``methods``, ``answer(handler, body)`` gives ``(status, payload)``, sent as JSON.

        ``answer`` sees the request line and headers on ``handler`` and the raw body
        (read in full first). A client that hangs up before the answer is written
        (a timeout test) is not an error.
        """

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                status, payload = answer(self, raw)
                data = json.dumps(payload).encode("utf-8")
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        for method in methods:
            setattr(Handler, f"do_{method}", Handler._handle)
        self._serve(Handler, name, poll_interval)

    def stop(self) -> None:
        """Stops serving."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The port served on."""
        assert self._httpd is not None, "server not started"
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"


@dataclass(frozen=True)
class RecordedRequest:
    """One request a fake server received.

    Attributes:
        method: ``GET``, ``POST``...
        path: the URL path, percent-decoded.
        query: query parameters (first value of each).
        body: the parsed JSON body (a fake may parse other bodies, such as a multipart upload), or None.
        authorization: the ``Authorization`` header, if any.
    """

    method: str
    path: str
    query: dict[str, str]
    body: Any
    authorization: str | None = None


class RecordingServer(LoopbackServer):
    """A fake server that appends each request it receives to :attr:`requests` (before it answers)."""

    requests: list[RecordedRequest]

    def calls(self, method: str | None = None, contains: str = "") -> list[RecordedRequest]:
        """Recorded requests, optionally filtered by method and a path substring."""
        return [r for r in self.requests if (method is None or r.method == method) and contains in r.path]


@contextlib.contextmanager
def refusing_url() -> Iterator[str]:
    """``http://127.0.0.1:PORT`` where every connection is refused for as long as the block lasts.

    The port is bound but never listened on: the kernel answers a connection
    with a reset, and no other process can take the port meanwhile (a port
    that was merely closed may be handed to someone else's server at once).
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
