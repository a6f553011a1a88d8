"""A local HTTP server that speaks the Kubeflow Pipelines v2beta1 REST API that ``kfp.Client`` (2.13) uses.

It keeps pipelines, versions, experiments and runs in memory, records every
request (with the uploaded pipeline files and the ``Authorization`` header;
an upload's body is ``{field: {"filename", "content"}}``)
so tests can assert the exact payloads, and moves each run through a
scripted sequence of states, one step per ``GET /runs/{id}``.

Served routes (under ``/apis/v2beta1``):

* ``GET  /healthz``
* ``GET  /pipelines`` (``filter`` on ``display_name``), ``GET /pipelines/{id}``
* ``POST /pipelines/upload`` (multipart ``uploadfile``; ``name``, ``description``, ``namespace``)
* ``POST /pipelines/upload_version`` (multipart ``uploadfile``; ``name``, ``pipelineid``, ``description``)
* ``GET  /pipelines/{id}/versions`` (``filter`` on ``display_name``, ``sort_by``, ``page_size``)
* ``GET  /experiments`` (``filter``), ``POST /experiments``
* ``POST /runs``, ``GET /runs/{id}``, ``GET /runs`` (``experiment_id``, ``namespace``, ``sort_by``, ``page_size``)
* ``POST /runs/{id}:terminate`` (a run not finished goes CANCELING, then CANCELED)

A run's ``run_details.task_details`` are what :meth:`FakeKfpServer.script_tasks`
sets, laid out as the Argo backend of KFP 2.x reports them: one task per
workflow node, so besides the pipeline's tasks the list holds the workflow's
entrypoint (no ``parent_task_id``, named after the workflow), ``root-driver``,
``root`` and a ``<task>-driver`` per task; times the server has not set read
``1970-01-01T00:00:00Z``.

Semantics follow the KFP API server: uploading a pipeline also creates its
first version (named like the pipeline); a pipeline or version name already
taken answers 409 ``ALREADY_EXISTS``; an uploaded file that is not a KFP v2
pipeline spec answers 400; an unknown id answers 404. :meth:`FakeKfpServer.fail`
makes it answer (some) requests with an error such as 500, as a broken API
server does.

Usage::

    with FakeKfpServer(token="secret") as server:
        client = kfp.Client(host=server.url, existing_token="secret")
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

from fakes.http import RecordedRequest, RecordingServer

__all__ = ["FakeKfpServer"]

API = "/apis/v2beta1"
_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 404: "NOT_FOUND", 409: "ALREADY_EXISTS", 500: "INTERNAL"}
_CODES = {400: 3, 401: 16, 404: 5, 409: 6, 500: 13}


@dataclass
class _Run:
    body: dict[str, Any]
    states: list[str] = field(default_factory=list)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _eq_filter(raw: str | None) -> dict[str, str]:
    """``{key: value}`` of the EQUALS predicates of a KFP filter (the only kind kfp.Client sends)."""
    if not raw:
        return {}
    data = json.loads(raw)
    out = {}
    for p in data.get("predicates", []):
        # kfp.Client sends the operation as its enum number (1); protojson also accepts the name
        if p.get("operation") not in (1, "EQUALS"):
            raise ValueError(f"unsupported filter operation {p.get('operation')!r}")
        out[p["key"]] = p.get("stringValue", p.get("string_value", ""))
    return out


class FakeKfpServer(RecordingServer):
    """The server; start it with ``with`` or :meth:`start`.

    Args:
        token: when set, every request must carry ``Authorization: Bearer <token>`` (else 401).
        states: the states a new run goes through, one per ``GET /runs/{id}`` (the last one stays).
        multi_user: what ``/healthz`` answers.
    """

    def __init__(self, token: str | None = None, states: list[str] | None = None, multi_user: bool = False):
        self.token = token
        self.default_states = list(states or ["PENDING", "RUNNING", "SUCCEEDED"])
        self.multi_user = multi_user
        self.requests: list[RecordedRequest] = []
        self.pipelines: dict[str, dict[str, Any]] = {}
        self.versions: dict[str, list[dict[str, Any]]] = {}
        self.experiments: dict[str, dict[str, Any]] = {}
        self.runs: dict[str, _Run] = {}
        self._clock = 0
        self._t0 = time.time()
        self._lock = threading.Lock()
        self._failure: tuple[int, str, str] | None = None

    # -- lifecycle -------------------------------------------------------------------
    def start(self) -> FakeKfpServer:
        """Starts serving on 127.0.0.1 (a free port) in a daemon thread."""
        self._serve_json(
            lambda h, raw: self._dispatch(h.command, h.path, raw, h.headers.get("Content-Type", ""), h.headers.get("Authorization")),
            "fake-kfp",
            methods=("GET", "POST", "DELETE"),
        )
        return self

    @property
    def url(self) -> str:
        """The ``host`` to give ``kfp.Client``."""
        return self.base_url

    # -- test helpers ----------------------------------------------------------------
    def fail(self, status: int, message: str, path_contains: str = "") -> None:
        """From now on, answer every request whose path contains ``path_contains`` with ``status`` (a broken API server).

        The request is still recorded first, so a test can tell that it arrived.
        """
        with self._lock:
            self._failure = (status, message, path_contains)

    def script(self, run_id: str, states: list[str], error: str | None = None) -> None:
        """Sets the states a run goes through from now on (one per GET), and its error message."""
        with self._lock:
            run = self.runs[run_id]
            run.states = list(states)
            if error is not None:
                run.body["error"] = {"code": 2, "message": error}

    def script_tasks(self, run_id: str, tasks: list[tuple[str, str, str | None]]) -> None:
        """Sets the run's task details from ``(task name, KFP state, error message or None)``, in run order.

        Each task that has started gets a start time one tick after the one before,
        and a finished one an end time a tick later; its driver succeeded just before.
        """
        unset = "1970-01-01T00:00:00Z"
        with self._lock:
            run = self.runs[run_id]
            workflow = f"{run.body.get('display_name') or 'run'}-x7k2p"

            def task(name: str, state: str, parent: str, error: str | None = None) -> dict[str, Any]:
                started = state not in ("PENDING", "SKIPPED")
                start = self._tick() if started else unset
                end = self._tick() if state in ("SUCCEEDED", "FAILED", "CANCELED", "SKIPPED") and started else unset
                body: dict[str, Any] = {
                    "run_id": run_id,
                    "task_id": str(uuid.uuid4()),
                    "display_name": name,
                    "create_time": start if started else self._tick(),
                    "start_time": start,
                    "end_time": end,
                    "state": state,
                    "state_history": [{"update_time": start if started else _now(), "state": state}],
                    "child_tasks": [{"pod_name": f"{workflow}-{name}-{len(name)}"}],
                }
                if parent:
                    body["parent_task_id"] = parent
                if error is not None:
                    body["error"] = {"code": 2, "message": error}
                return body

            states = {t[1] for t in tasks}
            overall = "FAILED" if "FAILED" in states else ("SUCCEEDED" if states == {"SUCCEEDED"} else "RUNNING")
            entry = task(workflow, overall, "")
            out = [entry, task("root-driver", "SUCCEEDED", entry["task_id"])]
            root = task("root", overall, entry["task_id"])
            out.append(root)
            for name, state, error in tasks:
                out.append(task(f"{name}-driver", "SUCCEEDED", root["task_id"]))
                out.append(task(name, state, root["task_id"], error))
            run.body["run_details"] = {
                "pipeline_context_id": "11",
                "pipeline_run_context_id": "12",
                "task_details": out,
            }

    def add_run(self, display_name: str, experiment_id: str = "", state: str = "SUCCEEDED") -> str:
        """Adds a run directly (as if created earlier) and returns its id."""
        with self._lock:
            run_id = str(uuid.uuid4())
            self.runs[run_id] = _Run(self._run_body(run_id, {"display_name": display_name, "experiment_id": experiment_id}, state), [state])
            return run_id

    # -- protocol --------------------------------------------------------------------
    def _error(self, code: int, message: str) -> tuple[int, dict[str, Any]]:
        return code, {
            "error": message,
            "code": _CODES.get(code, 2),
            "message": message,
            "details": [{"status": _STATUS.get(code, "UNKNOWN")}],
        }

    def _tick(self) -> str:
        # distinct, increasing creation times even within one second
        self._clock += 1
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self._t0 + self._clock))

    def _multipart(self, raw: bytes, content_type: str) -> dict[str, Any]:
        msg = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + raw)
        out: dict[str, Any] = {}
        for part in msg.iter_parts():
            name = part.get_param("name", header="content-disposition")
            out[str(name)] = {"filename": part.get_filename(), "content": part.get_payload(decode=True)}
        return out

    def _dispatch(self, method: str, raw_path: str, raw: bytes, content_type: str, auth: str | None) -> tuple[int, Any]:
        parts = urlsplit(raw_path)
        path = unquote(parts.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        if content_type.startswith("multipart/form-data"):
            body: Any = self._multipart(raw, content_type)
        else:
            body = json.loads(raw) if raw else None
        with self._lock:
            self.requests.append(RecordedRequest(method, path, query, body, auth))
            if self._failure is not None and self._failure[2] in path:
                return self._error(self._failure[0], self._failure[1])
            if self.token is not None and auth != f"Bearer {self.token}":
                return self._error(401, "Unauthenticated: a valid bearer token is required")
            if not path.startswith(API):
                return self._error(404, f"no route {path}")
            try:
                return self._route(method, path[len(API) :], query, body)
            except ValueError as e:
                return self._error(400, str(e))

    def _route(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        seg = [s for s in path.split("/") if s]
        if method == "GET" and seg == ["healthz"]:
            return 200, {"multi_user": self.multi_user}
        if seg[:1] == ["pipelines"]:
            return self._pipelines(method, seg[1:], query, body)
        if seg == ["experiments"]:
            if method == "GET":
                wanted = _eq_filter(query.get("filter")).get("display_name")
                found = [e for e in self.experiments.values() if wanted is None or e["display_name"] == wanted]
                if "namespace" in query:
                    found = [e for e in found if e.get("namespace", "") == query["namespace"]]
                return 200, {"experiments": found, "total_size": len(found)} if found else {}
            if method == "POST":
                name = (body or {}).get("display_name")
                if not name:
                    return self._error(400, "experiment display_name is required")
                if any(e["display_name"] == name for e in self.experiments.values()):
                    return self._error(409, f"experiment {name} already exists")
                exp = {
                    "experiment_id": str(uuid.uuid4()),
                    "display_name": name,
                    "description": body.get("description") or "",
                    "namespace": body.get("namespace") or "",
                    "created_at": _now(),
                    "storage_state": "AVAILABLE",
                }
                self.experiments[exp["experiment_id"]] = exp
                return 200, exp
        if seg[:1] == ["runs"]:
            return self._runs(method, seg[1:], query, body)
        return self._error(404, f"no route {method} {path}")

    def _pipelines(self, method: str, seg: list[str], query: dict[str, str], body: Any) -> tuple[int, Any]:
        if method == "GET" and not seg:
            wanted = _eq_filter(query.get("filter")).get("display_name")
            found = [p for p in self.pipelines.values() if wanted is None or p["display_name"] == wanted]
            return 200, ({"pipelines": found, "total_size": len(found)} if found else {})
        if method == "POST" and seg in (["upload"], ["upload_version"]):
            upload = (body or {}).get("uploadfile")
            if not upload:
                return self._error(400, "uploadfile is required")
            try:
                doc = yaml.safe_load(upload["content"])
                assert isinstance(doc, dict) and doc["pipelineInfo"]["name"] and "root" in doc and "deploymentSpec" in doc
            except Exception:
                return self._error(400, f"{upload['filename']} is not a KFP v2 pipeline spec")
            name = query.get("name") or ""
            if seg == ["upload"]:
                if any(p["display_name"] == name for p in self.pipelines.values()):
                    return self._error(409, f"pipeline {name} already exists")
                pid = str(uuid.uuid4())
                pipe = {
                    "pipeline_id": pid,
                    "display_name": name,
                    "description": query.get("description", ""),
                    "namespace": query.get("namespace", ""),
                    "created_at": _now(),
                }
                self.pipelines[pid] = pipe
                self.versions[pid] = []
                self._add_version(pid, name, query.get("description", ""), doc)
                return 200, pipe
            pid = query.get("pipelineid", "")
            if pid not in self.pipelines:
                return self._error(404, f"pipeline {pid} not found")
            if any(v["display_name"] == name for v in self.versions[pid]):
                return self._error(409, f"pipeline version {name} already exists")
            return 200, self._add_version(pid, name, query.get("description", ""), doc)
        if seg and seg[0] in self.pipelines:
            pid = seg[0]
            if method == "GET" and len(seg) == 1:
                return 200, self.pipelines[pid]
            if method == "GET" and seg[1:] == ["versions"]:
                found = list(self.versions[pid])
                wanted = _eq_filter(query.get("filter")).get("display_name")
                if wanted is not None:
                    found = [v for v in found if v["display_name"] == wanted]
                if query.get("sort_by", "").endswith(" desc"):
                    found.reverse()
                size = int(query.get("page_size") or 0)
                page = found[:size] if size else found
                return 200, ({"pipeline_versions": page, "total_size": len(found)} if page else {})
        if seg:
            return self._error(404, f"pipeline {seg[0]} not found")
        return self._error(404, "no route")

    def _add_version(self, pid: str, name: str, description: str, doc: dict[str, Any]) -> dict[str, Any]:
        version = {
            "pipeline_id": pid,
            "pipeline_version_id": str(uuid.uuid4()),
            "display_name": name,
            "description": description,
            "created_at": self._tick(),
            "pipeline_spec": doc,
        }
        self.versions[pid].append(version)
        return version

    def _run_body(self, run_id: str, body: dict[str, Any], state: str) -> dict[str, Any]:
        return {
            **body,
            "run_id": run_id,
            "state": state,
            "storage_state": "AVAILABLE",
            "created_at": self._tick(),
            "scheduled_at": _now(),
            "state_history": [{"state": state, "update_time": _now()}],
        }

    def _invalid_run(self, body: dict[str, Any], kind: str) -> tuple[int, Any] | None:
        """The error answer to a ``kind`` (run, recurring run) that lacks a display name or a pipeline, or names an unknown experiment or pipeline version; None when it is valid."""
        if not body.get("display_name"):
            return self._error(400, f"{kind} display_name is required")
        if body.get("experiment_id") and body["experiment_id"] not in self.experiments:
            return self._error(404, f"experiment {body['experiment_id']} not found")
        ref = body.get("pipeline_version_reference") or {}
        if ref:
            pid, vid = ref.get("pipeline_id"), ref.get("pipeline_version_id")
            if pid not in self.versions or not any(v["pipeline_version_id"] == vid for v in self.versions[pid]):
                return self._error(404, f"pipeline version {vid} of pipeline {pid} not found")
        elif not body.get("pipeline_spec"):
            return self._error(400, f"a {kind} needs a pipeline_spec or a pipeline_version_reference")
        return None

    def _runs(self, method: str, seg: list[str], query: dict[str, str], body: Any) -> tuple[int, Any]:
        if method == "POST" and not seg:
            body = body or {}
            invalid = self._invalid_run(body, "run")
            if invalid is not None:
                return invalid
            run_id = str(uuid.uuid4())
            states = list(self.default_states)
            run = _Run(self._run_body(run_id, body, states[0]), states)
            self.runs[run_id] = run
            return 200, run.body
        if method == "GET" and not seg:
            found = [r.body for r in self.runs.values()]
            if query.get("experiment_id"):
                found = [b for b in found if b.get("experiment_id") == query["experiment_id"]]
            found.sort(key=lambda b: b["created_at"], reverse=query.get("sort_by", "").endswith(" desc"))
            size = int(query.get("page_size") or 0)
            page = found[:size] if size else found
            return 200, ({"runs": page, "total_size": len(found)} if page else {})
        if method == "POST" and len(seg) == 1 and seg[0].endswith(":terminate"):
            run_id = seg[0].removesuffix(":terminate")
            current = self.runs.get(run_id)
            if current is None:
                return self._error(404, f"run {run_id} not found")
            if current.body["state"] not in ("SUCCEEDED", "FAILED", "CANCELED"):
                current.body["state"] = "CANCELING"
                current.body["state_history"].append({"state": "CANCELING", "update_time": _now()})
                current.states = ["CANCELING", "CANCELED"]
            return 200, {}
        if method == "GET" and len(seg) == 1:
            current = self.runs.get(seg[0])
            if current is None:
                return self._error(404, f"run {seg[0]} not found")
            state = current.states.pop(0) if len(current.states) > 1 else current.states[0]
            if state != current.body["state"]:
                current.body["state"] = state
                current.body["state_history"].append({"state": state, "update_time": _now()})
            if state in ("SUCCEEDED", "FAILED", "CANCELED"):
                current.body.setdefault("finished_at", _now())
            return 200, current.body
        return self._error(404, f"no route {method} /runs/{'/'.join(seg)}")
