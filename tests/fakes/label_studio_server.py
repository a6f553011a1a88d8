"""A small Label Studio stand-in on 127.0.0.1: projects, task import and JSON export over real HTTP.

It answers the three calls :class:`components.sample.labelstudio.LabelStudioClient`
makes, with Label Studio's shapes, and checks ``Authorization: Token <token>``
(401 otherwise):

* ``POST /api/projects`` ``{"title", "label_config"}`` -> ``201 {"id", "title", ...}``;
* ``POST /api/projects/{id}/import`` (a JSON list of tasks) -> ``201 {"task_count",
  "annotation_count", "prediction_count"}``; tasks get ids;
* ``GET /api/projects/{id}/export?exportType=JSON`` -> the project's *annotated* tasks
  (every task with ``download_all_tasks=true``), with ``annotations`` (as set by
  :meth:`FakeLabelStudio.annotate`) and ``predictions``.

These answers were checked against the real Label Studio 1.23.2
(tests/unit/test_label_studio_real.py makes the same calls against it and
compares the answers' shapes with this fake's). The fake stays for what a real
server will not do on demand: ``fail_next(n, status)`` makes the next ``n``
requests answer ``status`` (503 by default) to exercise retries. Every request is recorded (method, path, headers, JSON body)
before it is answered.

Usage::

    with FakeLabelStudio(token="secret") as ls:
        ... LabelStudioClient(ls.url, token_env=...) ...
        ls.annotate(project_id, lambda task: [...annotations...])
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

__all__ = ["FakeLabelStudio", "Request"]


@dataclass(frozen=True)
class Request:
    """One request received.

    Attributes:
        method: HTTP method.
        path: path with query string.
        headers: request headers, names lower-cased.
        body: the parsed JSON body (None when empty).
        status: the status answered.
    """

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    status: int


class FakeLabelStudio:
    """The stand-in server (see the module docstring).

    Args:
        token: the API token it accepts.
    """

    def __init__(self, token: str = "test-token"):
        self.token = token
        self.projects: dict[int, dict[str, Any]] = {}
        self.tasks: dict[int, list[dict[str, Any]]] = {}
        self.requests: list[Request] = []
        self._failures: list[int] = []
        self._lock = threading.Lock()
        self._next_task = 1
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def __enter__(self) -> FakeLabelStudio:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def fail_next(self, n: int, status: int = 503) -> None:
        """Makes the next ``n`` requests answer ``status``."""
        with self._lock:
            self._failures.extend([status] * n)

    def annotate(self, project_id: int, annotations: Callable[[dict[str, Any]], list[dict[str, Any]]]) -> None:
        """Sets each task's annotations, as people labelling in the UI would.

        Args:
            project_id: the project.
            annotations: task -> its annotations.
        """
        with self._lock:
            for task in self.tasks[project_id]:
                task["annotations"] = annotations(task)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _reply(self, status: int, body: Any, parsed: Any) -> None:
                # recorded before answering: a client that has its reply always finds its request here
                headers = {k.lower(): v for k, v in self.headers.items()}
                with fake._lock:
                    fake.requests.append(Request(self.command, self.path, headers, parsed, status))
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    parsed = json.loads(raw) if raw else None
                except ValueError:
                    self._reply(400, {"detail": "invalid JSON"}, None)
                    return
                with fake._lock:
                    failure = fake._failures.pop(0) if fake._failures else None
                if failure is not None:
                    self._reply(failure, {"detail": "scripted failure"}, parsed)
                    return
                if self.headers.get("Authorization") != f"Token {fake.token}":
                    self._reply(401, {"detail": "Authentication credentials were not provided."}, parsed)
                    return
                url = urlparse(self.path)
                parts = [p for p in url.path.split("/") if p]
                if self.command == "POST" and parts == ["api", "projects"]:
                    if not isinstance(parsed, dict) or "label_config" not in parsed:
                        self._reply(400, {"detail": "label_config is required"}, parsed)
                        return
                    with fake._lock:
                        pid = len(fake.projects) + 1
                        fake.projects[pid] = {"id": pid, "title": parsed.get("title", ""), "label_config": parsed["label_config"]}
                        fake.tasks[pid] = []
                    self._reply(201, fake.projects[pid], parsed)
                    return
                if len(parts) == 4 and parts[:2] == ["api", "projects"] and parts[2].isdigit():
                    pid = int(parts[2])
                    if pid not in fake.projects:
                        self._reply(404, {"detail": "Not found."}, parsed)
                    elif self.command == "POST" and parts[3] == "import":
                        self._import(pid, parsed)
                    elif self.command == "GET" and parts[3] == "export":
                        if parse_qs(url.query).get("exportType") != ["JSON"]:
                            self._reply(400, {"detail": "exportType=JSON expected"}, parsed)
                            return
                        # as Label Studio 1.23.2 does: only annotated tasks unless download_all_tasks=true
                        everything = parse_qs(url.query).get("download_all_tasks") == ["true"]
                        with fake._lock:
                            body = [
                                {**t, "annotations": t.get("annotations", [])}
                                for t in fake.tasks[pid]
                                if everything or t.get("annotations")
                            ]
                        self._reply(200, body, parsed)
                    else:
                        self._reply(404, {"detail": "Not found."}, parsed)
                    return
                self._reply(404, {"detail": "Not found."}, parsed)

            def _import(self, pid: int, parsed: Any) -> None:
                if not isinstance(parsed, list) or not all(isinstance(t, dict) and isinstance(t.get("data"), dict) for t in parsed):
                    self._reply(400, {"detail": "a list of tasks with 'data' is expected"}, parsed)
                    return
                with fake._lock:
                    for t in parsed:
                        task = {"id": fake._next_task, "project": pid, **t}
                        fake._next_task += 1
                        fake.tasks[pid].append(task)
                predictions = sum(len(t.get("predictions") or []) for t in parsed)
                annotations = sum(len(t.get("annotations") or []) for t in parsed)
                self._reply(
                    201,
                    {"task_count": len(parsed), "annotation_count": annotations, "prediction_count": predictions},
                    parsed,
                )

            do_GET = _handle
            do_POST = _handle

        return Handler
