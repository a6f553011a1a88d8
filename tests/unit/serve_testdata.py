"""A ``cvpipe serve`` process on 127.0.0.1 for tests, and raw-socket clients that misbehave on purpose."""

from __future__ import annotations

import http.client
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import requests

CVPIPE = str(Path(sys.executable).parent / "cvpipe")
READY = re.compile(r"cvpipe serve: ready on (http://\S+)")


class ServerProcess:
    """``cvpipe serve REF --spec SPEC --port 0 ARGS...`` as a child process.

    Args:
        spec: the spec file.
        ref: the model reference.
        log_file: where the server's stderr goes.
        args: more command-line options.
    """

    def __init__(self, spec: Path, ref: str, log_file: Path, *args: str):
        self.cmd = [CVPIPE, "serve", ref, "--spec", str(spec), "--port", "0", *args]
        self.log_file = log_file
        self.url = ""
        self.proc: subprocess.Popen[str] | None = None
        self.lines: list[str] = []
        self._ready = threading.Event()

    def start(self, timeout: float = 600) -> ServerProcess:
        """Starts the process and waits until it announces its URL."""
        err = open(self.log_file, "a")  # noqa: SIM115 - the child writes it
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.PIPE, stderr=err, text=True)
        err.close()
        threading.Thread(target=self._read, daemon=True).start()
        if not self._ready.wait(timeout) or not self.url:
            self.kill()
            raise AssertionError(f"server did not start: {self.stderr()[-3000:]}")
        return self

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)
            m = READY.search(line)
            if m:
                self.url = m.group(1)
                self._ready.set()
        self._ready.set()  # exited

    def stderr(self) -> str:
        """The server's log so far."""
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""

    @property
    def port(self) -> int:
        """The bound port."""
        return int(urlparse(self.url).port or 0)

    def terminate(self, timeout: float = 120) -> int:
        """SIGTERM, then waits for the exit status."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        """SIGKILL and reap."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(60)

    def metric(self, sample: str) -> float:
        """The value of one ``/metrics`` sample, e.g. ``cvpipe_serve_batch_size_bucket{le="4.0"}`` (0 when absent)."""
        text = requests.get(f"{self.url}/metrics", timeout=30).text
        for line in text.splitlines():
            if line.startswith(sample + " "):
                return float(line.rsplit(" ", 1)[1])
        return 0.0


def wait_for(condition: Callable[[], Any], what: str, timeout: float = 120) -> Any:
    """Polls ``condition`` until it is truthy (an event the test cannot subscribe to)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def open_post(port: int, path: str, body: bytes, sent: int, content_type: str = "image/png") -> socket.socket:
    """A client that sends a POST's head and only the first ``sent`` bytes of its body."""
    s = socket.create_connection(("127.0.0.1", port), timeout=120)
    head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    s.sendall(head + body[:sent])
    return s


def response(s: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Reads one HTTP response from a raw socket."""
    r = http.client.HTTPResponse(s)
    r.begin()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
