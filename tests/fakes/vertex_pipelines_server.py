"""A local HTTP server that speaks the Vertex AI Pipelines REST API (v1) and the bit of Cloud Storage ``PipelineJob.submit`` uses.

``google-cloud-aiplatform`` with ``api_transport="rest"`` and
``api_endpoint=server.endpoint`` sends its pipeline-job calls here; with
``STORAGE_EMULATOR_HOST=server.endpoint`` the Cloud Storage client that
``PipelineJob.submit`` uses to check the pipeline root's bucket does too.
Jobs are kept in memory, every request is recorded (JSON bodies parsed) so
tests can assert the exact payloads, and each job moves through a scripted
sequence of states, one step per ``GET``.

Served routes (``{parent}`` = ``/v1/projects/{p}/locations/{l}``):

* ``POST {parent}/pipelineJobs?pipelineJobId=ID``  -> the created PipelineJob (409 when the id is taken)
* ``GET  {parent}/pipelineJobs/{id}``               -> the PipelineJob (404 when unknown)
* ``GET  {parent}/pipelineJobs``                    -> ``{"pipelineJobs": [...], "nextPageToken": ...}``; ``filter`` on
  ``pipeline_name="..."``, ``display_name="..."`` or ``labels.KEY="..."``; ``orderBy``
  ``create_time [asc|desc]`` (default newest first, as Vertex AI); ``pageSize`` up to
  :attr:`FakeVertexPipelinesServer.max_page_size` and ``pageToken``
* ``POST {parent}/pipelineJobs/{id}:cancel``        -> ``{}`` (the job goes CANCELLING, then CANCELLED)
* ``GET  /storage/v1/b/{bucket}``                   -> the bucket (404 until it exists)
* ``POST /storage/v1/b?project=P``                  -> creates a bucket
* ``GET|PUT /storage/v1/b/{bucket}/iam``            -> the bucket's IAM policy

A job's ``jobDetail.taskDetails`` are what :meth:`FakeVertexPipelinesServer.script_tasks`
sets, as Vertex AI reports them: a root task named after the pipeline (no
``parentTaskId``) and one task per pipeline task under it, with camelCase
fields, int64 ids as strings and times left out until they are set.

``PipelineJob.submit`` creates a missing pipeline-root bucket and grants the
job's service account access to it; for a bucket that exists it instead
asks Cloud Resource Manager (which no local server can stand in for) whether
the bucket belongs to the project, which offline takes a minute of retries
before it gives up, harmlessly. Tests therefore start without buckets
(``buckets``) and pass a service account.

:meth:`FakeVertexPipelinesServer.fail` makes matching requests answer an
error status (a broken front end, 500 or 503), after recording them.

Validation follows Vertex AI where tests rely on it: a job needs a
``displayName``, a ``pipelineSpec`` with ``pipelineInfo.name`` and a
``runtimeConfig.gcsOutputDirectory`` on ``gs://``; labels must be lowercase.

Like Google's front end, every request must carry the OAuth header the real
client sends for its credentials, ``Authorization: Bearer <token>`` (401
``UNAUTHENTICATED`` otherwise); give the client :meth:`FakeVertexPipelinesServer.credentials`.
``token=None`` serves anonymous requests (what cvpipe sends to a plain-``http://``
endpoint when it is given no credentials, as the CLI is).
"""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from fakes.http import GOOGLE_STATUS, RecordedRequest, RecordingServer

__all__ = ["TOKEN", "FakeVertexPipelinesServer"]

_PARENT = re.compile(r"^/v1/projects/([^/]+)/locations/([^/]+)/pipelineJobs(?:/([^/:]+))?(:cancel)?$")
_LABEL = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
TOKEN = "vertex-test-token"
"""The access token the fakes accept by default."""


@dataclass
class _Job:
    body: dict[str, Any]
    states: list[str] = field(default_factory=list)


class FakeVertexPipelinesServer(RecordingServer):
    """The server; start it with ``with`` or :meth:`start`.

    Args:
        states: states a new job goes through, one per ``GET`` (short names: ``PENDING``, ``RUNNING``...; the last one stays).
        buckets: Cloud Storage buckets that exist from the start.
        token: the OAuth access token every request must carry as ``Bearer``; None accepts anonymous requests.
    """

    def __init__(self, states: list[str] | None = None, buckets: set[str] | None = None, token: str | None = TOKEN):
        self.token = token
        self.default_states = list(states or ["PENDING", "RUNNING", "SUCCEEDED"])
        self.buckets: dict[str, dict[str, Any]] = {b: self._bucket(b, "EU") for b in buckets or ()}
        self.iam: dict[str, dict[str, Any]] = {}
        self.requests: list[RecordedRequest] = []
        self.jobs: dict[str, _Job] = {}
        self._clock = 0
        self._t0 = time.time()
        self._lock = threading.Lock()
        self._failure: tuple[int, str, str] | None = None
        self.max_page_size = 100

    # -- lifecycle -------------------------------------------------------------------
    def start(self) -> FakeVertexPipelinesServer:
        """Starts serving on 127.0.0.1 (a free port) in a daemon thread."""
        self._serve_json(
            lambda h, raw: self._dispatch(h.command, h.path, raw, h.headers.get("Authorization")),
            "fake-vertex-pipelines",
            methods=("GET", "POST", "PUT", "DELETE"),
            content_type="application/json; charset=UTF-8",
        )
        return self

    @property
    def endpoint(self) -> str:
        """The ``api_endpoint`` (and ``STORAGE_EMULATOR_HOST``) to use."""
        return self.base_url

    # -- test helpers ----------------------------------------------------------------
    def fail(self, status: int, message: str, path_contains: str = "") -> None:
        """From now on, answer every request whose path contains ``path_contains`` with ``status`` (a broken front end).

        The request is still recorded first, so a test can tell that it arrived.
        """
        with self._lock:
            self._failure = (status, message, path_contains)

    def script(self, job_id: str, states: list[str], error: str | None = None) -> None:
        """Sets the states a job goes through from now on (one per GET), and its error message."""
        with self._lock:
            job = self.jobs[job_id]
            job.states = list(states)
            if error is not None:
                job.body["error"] = {"code": 9, "message": error}

    def script_tasks(self, job_id: str, tasks: list[tuple[str, str, str | None]]) -> None:
        """Sets the job's task details from ``(task name, Vertex task state, error message or None)``, in run order.

        Each task that has started gets a start time one tick after the one before,
        and a finished one an end time a tick later.
        """
        finished = ("SUCCEEDED", "FAILED", "CANCELLED", "SKIPPED")
        with self._lock:
            job = self.jobs[job_id]
            parent = job.body["name"]
            root_id = str(8_000_000_000_000_000_000 + len(self.requests))

            def task(task_id: str, name: str, state: str, error: str | None) -> dict[str, Any]:
                body: dict[str, Any] = {"taskId": task_id, "taskName": name, "createTime": self._time(), "state": state}
                if state not in ("PENDING", "NOT_TRIGGERED", "SKIPPED"):
                    body["startTime"] = self._time()
                    if state in finished:
                        body["endTime"] = self._time()
                body["pipelineTaskStatus"] = [{"updateTime": body.get("endTime") or body["createTime"], "state": state}]
                if error is not None:
                    body["error"] = {"code": 9, "message": error}
                return body

            states = {t[1] for t in tasks}
            overall = "FAILED" if "FAILED" in states else ("SUCCEEDED" if states == {"SUCCEEDED"} else "RUNNING")
            out = [task(root_id, job.body["pipelineSpec"]["pipelineInfo"]["name"], overall, None)]
            for i, (name, state, error) in enumerate(tasks, start=1):
                body = task(str(int(root_id) + i), name, state, error)
                body["parentTaskId"] = root_id
                if "startTime" in body:
                    body["executorDetail"] = {
                        "containerDetail": {"mainJob": f"{parent.rsplit('/pipelineJobs/', 1)[0]}/customJobs/{9000 + i}"}
                    }
                body["execution"] = {
                    "name": f"{parent.rsplit('/pipelineJobs/', 1)[0]}/metadataStores/default/executions/{int(root_id) + i}"
                }
                out.append(body)
            job.body["jobDetail"] = {
                "pipelineContext": {"name": f"{parent.rsplit('/pipelineJobs/', 1)[0]}/metadataStores/default/contexts/{job_id}-pipeline"},
                "pipelineRunContext": {"name": f"{parent.rsplit('/pipelineJobs/', 1)[0]}/metadataStores/default/contexts/{job_id}"},
                "taskDetails": out,
            }

    # -- protocol --------------------------------------------------------------------
    def _error(self, code: int, message: str) -> tuple[int, dict[str, Any]]:
        return code, {"error": {"code": code, "message": message, "status": GOOGLE_STATUS.get(code, "UNKNOWN")}}

    def _time(self) -> str:
        self._clock += 1
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(self._t0 + self._clock)) + ".000000Z"

    def credentials(self) -> Any:
        """``google.auth`` credentials holding the token this server accepts (the client sends it as ``Bearer``)."""
        from google.oauth2.credentials import Credentials

        return Credentials(token=self.token or "anonymous")

    def _unauthenticated(self, authorization: str | None) -> tuple[int, Any] | None:
        """The 401 answer for a request without the expected bearer token, or None when it may pass."""
        if self.token is None or authorization == f"Bearer {self.token}":
            return None
        return self._error(401, "Request is missing required authentication credential. Expected OAuth 2 access token.")

    def _dispatch(self, method: str, raw_path: str, raw: bytes, authorization: str | None = None) -> tuple[int, Any]:
        parts = urlsplit(raw_path)
        path = unquote(parts.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            return self._error(400, "body is not JSON")
        with self._lock:
            self.requests.append(RecordedRequest(method, path, query, body, authorization))
            if self._failure is not None and self._failure[2] in path:
                return self._error(self._failure[0], self._failure[1])
            denied = self._unauthenticated(authorization)
            if denied is not None:
                return denied
            if path.startswith("/storage/v1/b"):
                return self._storage(method, path, query, body)
            m = _PARENT.match(path)
            if not m:
                return self._error(404, f"no route {method} {path}")
            project, location, job_id, cancel = m.groups()
            if job_id is None:
                if method == "POST":
                    return self._create(project, location, query.get("pipelineJobId"), body or {})
                if method == "GET":
                    return self._list(query)
            elif method == "GET" and not cancel:
                return self._get(job_id)
            elif method == "POST" and cancel:
                job = self.jobs.get(job_id)
                if job is None:
                    return self._error(404, f"pipeline job {job_id} not found")
                job.states = ["CANCELLING", "CANCELLED"]
                return 200, {}
            return self._error(404, f"no route {method} {path}")

    @staticmethod
    def _bucket(name: str, location: str) -> dict[str, Any]:
        return {"kind": "storage#bucket", "id": name, "name": name, "location": location.upper(), "projectNumber": "123456789012"}

    def _storage(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        seg = [x for x in path[len("/storage/v1/b") :].split("/") if x]
        if method == "POST" and not seg:
            name = (body or {}).get("name", "")
            if not query.get("project"):
                return self._error(400, "project is required to create a bucket")
            if name in self.buckets:
                return self._error(409, f"bucket {name} already exists")
            self.buckets[name] = self._bucket(name, (body or {}).get("location") or "US")
            return 200, self.buckets[name]
        if not seg or seg[0] not in self.buckets:
            return self._error(404, f"bucket {seg[0] if seg else ''} not found")
        name = seg[0]
        if method == "GET" and len(seg) == 1:
            return 200, self.buckets[name]
        if seg[1:] == ["iam"]:
            if method == "GET":
                return 200, self.iam.get(
                    name,
                    {"kind": "storage#policy", "resourceId": f"projects/_/buckets/{name}", "version": 1, "etag": "CAE=", "bindings": []},
                )
            if method == "PUT":
                self.iam[name] = {**(body or {}), "etag": "CAI="}
                return 200, self.iam[name]
        return self._error(404, f"no route {method} {path}")

    def _create(self, project: str, location: str, job_id: str | None, body: dict[str, Any]) -> tuple[int, Any]:
        if not job_id:
            return self._error(400, "pipelineJobId is required")
        if job_id in self.jobs:
            return self._error(409, f"pipeline job {job_id} already exists")
        if not body.get("displayName"):
            return self._error(400, "display_name is required")
        info = (body.get("pipelineSpec") or {}).get("pipelineInfo") or {}
        if not info.get("name"):
            return self._error(400, "pipeline_spec.pipeline_info.name is required")
        root = (body.get("runtimeConfig") or {}).get("gcsOutputDirectory", "")
        if not root.startswith("gs://"):
            return self._error(400, f"runtime_config.gcs_output_directory must be a gs:// URI, got {root!r}")
        for key, value in (body.get("labels") or {}).items():
            if not _LABEL.match(key) or (value and not re.match(r"^[a-z0-9_-]{0,63}$", value)):
                return self._error(400, f"invalid label {key}={value}")
        states = list(self.default_states)
        now = self._time()
        job = {
            **body,
            "name": f"projects/{project}/locations/{location}/pipelineJobs/{job_id}",
            "state": "PIPELINE_STATE_" + states[0],
            "createTime": now,
            "updateTime": now,
        }
        self.jobs[job_id] = _Job(job, states)
        return 200, job

    def _get(self, job_id: str) -> tuple[int, Any]:
        job = self.jobs.get(job_id)
        if job is None:
            return self._error(404, f"pipeline job {job_id} not found")
        state = job.states.pop(0) if len(job.states) > 1 else job.states[0]
        job.body["state"] = "PIPELINE_STATE_" + state
        job.body["updateTime"] = self._time()
        if state == "RUNNING":
            job.body.setdefault("startTime", job.body["updateTime"])
        if state in ("SUCCEEDED", "FAILED", "CANCELLED"):
            job.body.setdefault("endTime", job.body["updateTime"])
        return 200, job.body

    def _list(self, query: dict[str, str]) -> tuple[int, Any]:
        found = [j.body for j in self.jobs.values()]
        flt = query.get("filter")
        if flt:
            m = re.fullmatch(r'\s*(pipeline_name|display_name|labels\.[a-z0-9_-]+)\s*=\s*"([^"]*)"\s*', flt)
            if not m:
                return self._error(400, f"unsupported filter {flt!r}")
            key, value = m.groups()
            if key == "pipeline_name":
                found = [b for b in found if b["pipelineSpec"]["pipelineInfo"]["name"] == value]
            elif key == "display_name":
                found = [b for b in found if b.get("displayName") == value]
            else:
                found = [b for b in found if (b.get("labels") or {}).get(key.split(".", 1)[1]) == value]
        order = re.fullmatch(r"\s*create_time(?:\s+(asc|desc))?\s*", query.get("orderBy") or "create_time desc")
        if not order:
            return self._error(400, f"unsupported order_by {query.get('orderBy')!r}")
        found.sort(key=lambda b: str(b["createTime"]), reverse=order.group(1) == "desc")
        size, token = query.get("pageSize") or "0", query.get("pageToken") or "0"
        if not size.isdigit() or not token.isdigit() or int(token) > len(found):
            return self._error(400, f"invalid page_size {size!r} or page_token {token!r}")
        start = int(token)
        stop = start + min(int(size) or self.max_page_size, self.max_page_size)
        page: dict[str, Any] = {"pipelineJobs": found[start:stop]} if found[start:stop] else {}
        if stop < len(found):
            page["nextPageToken"] = str(stop)
        return 200, page
