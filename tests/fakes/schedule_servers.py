"""The local Kubeflow Pipelines and Vertex AI Pipelines servers, plus the schedule APIs their clients use.

:class:`FakeKfpScheduleServer` adds to :class:`~fakes.kfp_server.FakeKfpServer`
(under ``/apis/v2beta1``):

* ``POST   /recurringruns``        -> the created recurring run (``ENABLED`` unless ``mode`` is ``DISABLE``)
* ``GET    /recurringruns``        -> ``{"recurringRuns": [...]}`` (``experiment_id``; ``filter`` on ``display_name``)
* ``GET    /recurringruns/{id}``   -> the recurring run (404 when unknown)
* ``DELETE /recurringruns/{id}``   -> ``{}``

A recurring run must reference an existing pipeline version (or carry a
pipeline spec), name an existing experiment and have a cron trigger with six
fields (KFP's cron has seconds), as the API server requires.

:class:`FakeVertexScheduleServer` adds to
:class:`~fakes.vertex_pipelines_server.FakeVertexPipelinesServer`
(``{parent}`` = ``/v1/projects/{p}/locations/{l}``):

* ``POST   {parent}/schedules``        -> the created Schedule (``ACTIVE``)
* ``GET    {parent}/schedules``        -> ``{"schedules": [...]}`` (``filter`` on ``display_name="..."``)
* ``GET    {parent}/schedules/{id}``   -> the Schedule
* ``DELETE {parent}/schedules/{id}``   -> a finished long-running operation

A schedule needs a ``displayName``, a cron expression of five fields after an
optional ``TZ=<zone>`` / ``CRON_TZ=<zone>`` prefix, and a
``createPipelineJobRequest`` whose job has a pipeline spec and a ``gs://``
output directory.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from fakes.http import RecordedRequest
from fakes.kfp_server import FakeKfpServer, _eq_filter
from fakes.vertex_pipelines_server import FakeVertexPipelinesServer

__all__ = ["FakeKfpScheduleServer", "FakeVertexScheduleServer"]


class FakeKfpScheduleServer(FakeKfpServer):
    """:class:`FakeKfpServer` with recurring runs (see the module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.recurring: dict[str, dict[str, Any]] = {}

    def _route(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        seg = [s for s in path.split("/") if s]
        if seg[:1] != ["recurringruns"]:
            return super()._route(method, path, query, body)
        if method == "POST" and len(seg) == 1:
            return self._create_recurring(body or {})
        if method == "GET" and len(seg) == 1:
            found = list(self.recurring.values())
            if query.get("experiment_id"):
                found = [r for r in found if r.get("experiment_id") == query["experiment_id"]]
            wanted = _eq_filter(query.get("filter")).get("display_name")
            if wanted is not None:
                found = [r for r in found if r["display_name"] == wanted]
            return 200, ({"recurringRuns": found, "total_size": len(found)} if found else {})
        if len(seg) == 2 and seg[1] in self.recurring:
            if method == "GET":
                return 200, self.recurring[seg[1]]
            if method == "DELETE":
                del self.recurring[seg[1]]
                return 200, {}
        return self._error(404, f"recurring run {'/'.join(seg[1:])} not found")

    def _create_recurring(self, body: dict[str, Any]) -> tuple[int, Any]:
        invalid = self._invalid_run(body, "recurring run")
        if invalid is not None:
            return invalid
        cron = ((body.get("trigger") or {}).get("cron_schedule") or {}).get("cron", "")
        if len(cron.split()) != 6:
            return self._error(400, f"cron {cron!r} must have 6 fields (seconds first)")
        rid = str(uuid.uuid4())
        mode = body.get("mode") or "ENABLE"
        run = {
            **body,
            "recurring_run_id": rid,
            "created_at": self._tick(),
            "updated_at": self._tick(),
            "status": "ENABLED" if mode in ("ENABLE", 1) else "DISABLED",
        }
        self.recurring[rid] = run
        return 200, run


_SCHEDULES = re.compile(r"^/v1/projects/([^/]+)/locations/([^/]+)/schedules(?:/([^/:]+))?$")
_CRON_TZ = re.compile(r"^(?:(?:CRON_)?TZ=[A-Za-z_+/-]+\s+)?(\S+\s+){4}\S+$")


class FakeVertexScheduleServer(FakeVertexPipelinesServer):
    """:class:`FakeVertexPipelinesServer` with pipeline schedules (see the module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.schedules: dict[str, dict[str, Any]] = {}

    def _dispatch(self, method: str, raw_path: str, raw: bytes, authorization: str | None = None) -> tuple[int, Any]:
        parts = urlsplit(raw_path)
        path = unquote(parts.path)
        m = _SCHEDULES.match(path)
        if not m:
            return super()._dispatch(method, raw_path, raw, authorization)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            return self._error(400, "body is not JSON")
        with self._lock:
            self.requests.append(RecordedRequest(method, path, query, body, authorization))
            denied = self._unauthenticated(authorization)
            if denied is not None:
                return denied
            project, location, sid = m.groups()
            parent = f"projects/{project}/locations/{location}"
            if sid is None and method == "POST":
                return self._create_schedule(parent, body or {})
            if sid is None and method == "GET":
                found = list(self.schedules.values())
                flt = query.get("filter")
                if flt:
                    fm = re.fullmatch(r'\s*display_name\s*=\s*"([^"]*)"\s*', flt)
                    if not fm:
                        return self._error(400, f"unsupported filter {flt!r}")
                    found = [s for s in found if s["displayName"] == fm.group(1)]
                return 200, ({"schedules": found} if found else {})
            name = f"{parent}/schedules/{sid}"
            if name not in self.schedules:
                return self._error(404, f"schedule {name} not found")
            if method == "GET":
                return 200, self.schedules[name]
            if method == "DELETE":
                del self.schedules[name]
                return 200, {
                    "name": f"{name}/operations/{uuid.uuid4().int % 10**12}",
                    "metadata": {"@type": "type.googleapis.com/google.cloud.aiplatform.v1.DeleteOperationMetadata"},
                    "done": True,
                    "response": {"@type": "type.googleapis.com/google.protobuf.Empty"},
                }
            return self._error(404, f"no route {method} {path}")

    def _create_schedule(self, parent: str, body: dict[str, Any]) -> tuple[int, Any]:
        if not body.get("displayName"):
            return self._error(400, "display_name is required")
        cron = str(body.get("cron", ""))
        if not _CRON_TZ.match(cron.strip()):
            return self._error(400, f"invalid cron {cron!r}")
        job = (body.get("createPipelineJobRequest") or {}).get("pipelineJob") or {}
        if not ((job.get("pipelineSpec") or {}).get("pipelineInfo") or {}).get("name"):
            return self._error(400, "create_pipeline_job_request.pipeline_job.pipeline_spec is required")
        root = (job.get("runtimeConfig") or {}).get("gcsOutputDirectory", "")
        if not root.startswith("gs://"):
            return self._error(400, f"runtime_config.gcs_output_directory must be a gs:// URI, got {root!r}")
        sid = str(uuid.uuid4().int % 10**18)
        now = self._time()
        schedule = {
            **body,
            "name": f"{parent}/schedules/{sid}",
            "state": "ACTIVE",
            "createTime": now,
            "updateTime": now,
            "nextRunTime": now,
        }
        self.schedules[schedule["name"]] = schedule
        return 200, schedule
