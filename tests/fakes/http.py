"""The lifecycle every fake server in tests/fakes shares: a threaded HTTP server on loopback.

A fake binds 127.0.0.1 on a free port, serves on a daemon thread, stops on
``stop()`` or at the end of a ``with`` block. Each fake keeps its own request
handler (the wire protocol it speaks); this base only owns the server.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["LoopbackServer"]


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
