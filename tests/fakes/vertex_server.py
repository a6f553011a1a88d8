"""A local HTTP server that speaks the Vertex AI Model Registry's REST wire protocol (v1).

It serves the calls ``google-cloud-aiplatform`` makes over ``api_transport="rest"``
for model versions, keeps models in memory, and records every request so a
test can assert the exact JSON payloads. Faults (HTTP errors, slow answers)
can be injected per route to exercise retries.

Served routes (under ``/v1/projects/{p}/locations/{l}``; ``/ui/`` works too, where
the client's operations poller sends its GETs):

* ``POST /models:upload``                       -> long-running operation
* ``GET  /models/{m}/operations/{op}`` and ``/operations/{op}`` -> the operation (done after ``pending_polls`` polls)
* ``GET  /models/{m}`` and ``/models/{m}@{version-or-alias}``    -> the Model
* ``GET  /models/{m}:listVersions``             -> ``{"models": [...]}`` (``filter=labels.k="v"`` supported)
* ``POST /models/{m}@{v}:mergeVersionAliases``  -> the Model
* ``DELETE /models/{m}@{v}:deleteVersion``      -> long-running operation (``ModelRegistry.delete_version``)
* ``POST /customJobs``                          -> the CustomJob, ``JOB_STATE_PENDING``; its replicas then run (below)
* ``GET  /customJobs/{id}``                     -> the CustomJob in its current state
* ``POST /customJobs/{id}:cancel``              -> ``{}``; the replicas are killed, the job ends ``JOB_STATE_CANCELLED``

A custom job's replicas really run, as local processes: the image is not
pulled, the container's ``command`` + ``args`` run in this Python environment
(``python`` is this interpreter), one process per replica, each with the
``TF_CONFIG`` Vertex AI gives a custom container (pool 0 is ``chief``, pool 1
``worker``; ``cluster`` lists a free 127.0.0.1 port per replica) and
``CLOUD_ML_JOB_ID``; their output goes to ``jobs_dir/<job id>/workerpool<i>-<r>.log``.
The job is ``JOB_STATE_RUNNING`` while they run, ``JOB_STATE_SUCCEEDED`` when all
exit 0, and ``JOB_STATE_FAILED`` as soon as one fails (the others are killed),
with Vertex AI's message naming the replica.

Semantics follow Vertex AI: version ids count from 1 and are never reused
(a deleted version's id is not given again); deleting the version holding
``default`` or the model's only version is refused with ``FAILED_PRECONDITION``;
the first version holds
``default``; an alias is unique within a model (merging an alias another
version holds is refused with ``FAILED_PRECONDITION``); ``-alias`` removes.

Requests are checked as the real API checks them: every request must carry
``Authorization: Bearer <token>`` (what the client sends for its credentials;
401 ``UNAUTHENTICATED`` otherwise, give the client :meth:`FakeVertexServer.credentials`);
an upload needs ``model.displayName`` (at most 128 characters) and
``model.containerSpec.imageUri`` (a custom model has no other way to serve),
an ``artifactUri`` if any on ``gs://``, a ``modelId`` of ``[a-z0-9_-]`` (not
starting with a digit or hyphen, at most 63) or a ``parentModel``, not both;
labels have keys of ``[a-z][a-z0-9_-]`` and values of ``[a-z0-9_-]`` (at most 63 characters each);
``mergeVersionAliases`` needs a non-empty ``versionAliases`` (400 ``INVALID_ARGUMENT`` otherwise).
A custom job needs a ``displayName`` (at most 128 characters) and ``jobSpec.workerPoolSpecs``,
whose first pool has ``replicaCount`` 1 and every pool a ``machineSpec.machineType``, a
``replicaCount`` of at least 1, a ``containerSpec.imageUri`` and, with an ``acceleratorType``,
an ``acceleratorCount`` of at least 1; ``jobSpec.baseOutputDirectory.outputUriPrefix`` and the
labels are checked as above.

Usage::

    with FakeVertexServer() as server:
        aiplatform.init(api_endpoint=server.endpoint, api_transport="rest", ...)
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from fakes.http import GOOGLE_STATUS, RecordedRequest, RecordingServer

__all__ = ["TOKEN", "FakeVertexServer", "Fault", "RecordedRequest"]
TOKEN = "vertex-test-token"
"""The access token the fake accepts by default."""

_UPLOAD_RESPONSE = "type.googleapis.com/google.cloud.aiplatform.v1.UploadModelResponse"
_UPLOAD_METADATA = "type.googleapis.com/google.cloud.aiplatform.v1.UploadModelOperationMetadata"
_DELETE_METADATA = "type.googleapis.com/google.cloud.aiplatform.v1.DeleteOperationMetadata"
_EMPTY = "type.googleapis.com/google.protobuf.Empty"


@dataclass
class Fault:
    """An injected failure for requests whose ``METHOD path`` contains ``match``.

    Attributes:
        match: substring of ``"METHOD /path"`` (``"POST"``, ``":upload"``, ``"GET /v1/projects"``...).
        status: HTTP status to answer (500, 503, 504...); ignored when ``delay_s`` is set and ``then_status`` is None.
        times: how many matching requests fail before the route works again.
        delay_s: sleep this long before answering (a slow or hung server).
        then_status: with ``delay_s``, the status to answer after the delay (None: answer normally).
        after: do the work first, then answer ``status`` (a response lost after the server acted).
    """

    match: str
    status: int = 500
    times: int = 1
    delay_s: float = 0.0
    then_status: int | None = 500
    after: bool = False
    hits: int = 0


@dataclass
class _Version:
    version_id: str
    body: dict[str, Any]
    aliases: list[str]
    created: str


@dataclass
class _Model:
    model_id: str
    display_name: str
    versions: list[_Version] = field(default_factory=list)
    last_version: int = 0


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())


class FakeVertexServer(RecordingServer):
    """The server; start it with ``with`` or :meth:`start`.

    Args:
        pending_polls: how many polls of an upload operation answer ``done: false`` first.
        token: the OAuth access token every request must carry as ``Bearer``.
        jobs_dir: where custom jobs' replica logs go (default: a temporary directory).
        replica_env: environment variables added to every replica's (over this process's).
    """

    def __init__(self, pending_polls: int = 1, token: str = TOKEN, jobs_dir: Path | None = None, replica_env: dict[str, str] | None = None):
        self.token = token
        self.pending_polls = pending_polls
        self.requests: list[RecordedRequest] = []
        self.faults: list[Fault] = []
        self.models: dict[str, _Model] = {}
        self._ops: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._next_id = 1000
        self.jobs: dict[str, dict[str, Any]] = {}
        self.jobs_dir = jobs_dir
        self.replica_env = dict(replica_env or {})
        self._replicas: dict[str, list[subprocess.Popen[bytes]]] = {}
        self._job_threads: list[threading.Thread] = []

    # -- lifecycle -----------------------------------------------------------------
    def start(self) -> FakeVertexServer:
        """Starts serving on 127.0.0.1 (a free port) in a daemon thread."""
        self._serve_json(
            lambda h, raw: self._dispatch(h.command, h.path, raw, h.headers.get("Authorization")),
            "fake-vertex",
            methods=("GET", "POST", "PATCH", "DELETE"),
            content_type="application/json; charset=UTF-8",
            poll_interval=0.05,
        )
        return self

    def stop(self) -> None:
        """Stops serving and kills the replicas of custom jobs still running."""
        with self._lock:
            procs = [p for ps in self._replicas.values() for p in ps]
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
        for t in self._job_threads:
            t.join(timeout=60)
        super().stop()

    @property
    def endpoint(self) -> str:
        """The ``api_endpoint`` to give ``aiplatform.init`` (``http://`` makes the REST transport use plain HTTP)."""
        return f"http://127.0.0.1:{self.port}"

    def credentials(self) -> Any:
        """``google.auth`` credentials holding the token this server accepts (the client sends it as ``Bearer``)."""
        from google.oauth2.credentials import Credentials

        return Credentials(token=self.token)

    # -- test helpers --------------------------------------------------------------
    def fail(
        self, match: str, status: int = 500, times: int = 1, delay_s: float = 0.0, then_status: int | None = 500, after: bool = False
    ) -> Fault:
        """Injects a fault (see :class:`Fault`)."""
        f = Fault(match=match, status=status, times=times, delay_s=delay_s, then_status=then_status, after=after)
        with self._lock:
            self.faults.append(f)
        return f

    def aliases(self, model_id: str) -> dict[str, list[str]]:
        """Version id -> aliases of a model."""
        return {v.version_id: sorted(v.aliases) for v in self.models[model_id].versions}

    # -- protocol ------------------------------------------------------------------
    def _error(self, code: int, message: str, status: str | None = None) -> tuple[int, dict[str, Any]]:
        return code, {"error": {"code": code, "message": message, "status": status or GOOGLE_STATUS.get(code, "UNKNOWN")}}

    def _dispatch(self, method: str, raw_path: str, raw: bytes, authorization: str | None = None) -> tuple[int, Any]:
        parts = urlsplit(raw_path)
        path = unquote(parts.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        body = json.loads(raw) if raw else None
        with self._lock:
            self.requests.append(RecordedRequest(method, path, query, body, authorization))
            if authorization != f"Bearer {self.token}":
                return self._error(401, "Request is missing required authentication credential. Expected OAuth 2 access token.")
            fault = next((f for f in self.faults if f.hits < f.times and f.match in f"{method} {path}"), None)
            if fault is not None:
                fault.hits += 1
        if fault is not None and fault.after:
            with self._lock:
                self._route(method, path, query, body)
            return self._error(fault.status, "injected failure after the work was done")
        if fault is not None:
            if fault.delay_s:
                time.sleep(fault.delay_s)
                if fault.then_status is not None:
                    return self._error(fault.then_status, "injected slow failure")
            else:
                return self._error(fault.status, "injected failure")
        with self._lock:
            return self._route(method, path, query, body)

    def _route(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        # The REST operations client of google-cloud-aiplatform polls under /ui/ (its first URI binding).
        m = re.fullmatch(r"/(?:v1|ui)/projects/([^/]+)/locations/([^/]+)/(.*)", path)
        if not m:
            return self._error(404, f"unknown path {path}")
        project, location, rest = m.groups()
        parent = f"projects/{project}/locations/{location}"
        if rest.startswith("customJobs"):
            answer = self._custom_jobs(method, parent, rest, body)
            if answer is not None:
                return answer
        if method == "POST" and rest == "models:upload":
            return self._upload(parent, body or {})
        op = re.fullmatch(r"(?:models/[^/]+/)?operations/([^/]+)", rest)
        if method == "GET" and op:
            return self._operation(f"{parent}/{rest}")
        mm = re.fullmatch(r"models/([^/:@]+)(?:@([^/:]+))?(?::(\w+))?", rest)
        if not mm:
            return self._error(404, f"unknown path {path}")
        model_id, version, verb = mm.groups()
        model = self.models.get(model_id)
        if model is None:
            return self._error(404, f"Model {parent}/models/{model_id} is not found.")
        if method == "GET" and verb is None:
            v = self._version(model, version or "default")
            return (200, self._model_json(parent, model, v)) if v else self._error(404, f"version {version} of {model_id} is not found.")
        if method == "GET" and verb == "listVersions":
            return 200, {
                "models": [self._model_json(parent, model, v) for v in model.versions if self._matches(v, query.get("filter", ""))]
            }
        if method == "POST" and verb == "mergeVersionAliases":
            v = self._version(model, version or "")
            if v is None:
                return self._error(404, f"version {version} of {model_id} is not found.")
            if not (body or {}).get("versionAliases"):
                return self._error(400, "version_aliases is required")
            return self._merge(parent, model, v, list((body or {}).get("versionAliases", [])))
        if method == "DELETE" and verb == "deleteVersion":
            return self._delete_version(parent, model, version or "")
        return self._error(404, f"unknown verb {method} {path}")

    # -- custom jobs ---------------------------------------------------------------
    def _custom_jobs(self, method: str, parent: str, rest: str, body: Any) -> tuple[int, Any] | None:
        if rest == "customJobs" and method == "POST":
            return self._create_custom_job(parent, body or {})
        m = re.fullmatch(r"customJobs/([^/:]+)(?::(\w+))?", rest)
        if not m:
            return None
        job = self.jobs.get(f"{parent}/customJobs/{m.group(1)}")
        if job is None:
            return self._error(404, f"CustomJob {parent}/customJobs/{m.group(1)} is not found.")
        if method == "GET" and m.group(2) is None:
            return 200, dict(job)
        if method == "POST" and m.group(2) == "cancel":
            if job["state"] in ("JOB_STATE_PENDING", "JOB_STATE_RUNNING"):
                job["state"] = "JOB_STATE_CANCELLING"
                for proc in self._replicas.get(job["name"], []):
                    if proc.poll() is None:
                        proc.kill()
            return 200, {}
        return self._error(404, f"unknown verb {method} customJobs/{m.group(1)}")

    def _invalid_custom_job(self, body: dict[str, Any]) -> str | None:
        """What the real API would refuse in a CustomJob (None when it is valid)."""
        name = body.get("displayName")
        if not name or len(name) > 128:
            return "custom_job.display_name is required (at most 128 characters)"
        spec = body.get("jobSpec") or {}
        pools = spec.get("workerPoolSpecs") or []
        if not pools:
            return "custom_job.job_spec.worker_pool_specs is required"
        for i, pool in enumerate(pools):
            machine = pool.get("machineSpec") or {}
            count = int(pool.get("replicaCount") or 0)  # int64: a string on the wire
            if not machine.get("machineType"):
                return f"worker_pool_specs[{i}].machine_spec.machine_type is required"
            if count < 1:
                return f"worker_pool_specs[{i}].replica_count must be at least 1"
            if i == 0 and count != 1:
                return f"worker_pool_specs[0] is the primary replica: its replica_count must be 1, got {count}"
            if not (pool.get("containerSpec") or {}).get("imageUri"):
                return f"worker_pool_specs[{i}].container_spec.image_uri is required"
            accelerator = machine.get("acceleratorType")
            if accelerator and accelerator != "ACCELERATOR_TYPE_UNSPECIFIED" and int(machine.get("acceleratorCount") or 0) < 1:
                return f"worker_pool_specs[{i}].machine_spec.accelerator_count must be at least 1 with {accelerator}"
        prefix = (spec.get("baseOutputDirectory") or {}).get("outputUriPrefix")
        if prefix is not None and not str(prefix).startswith("gs://"):
            return f"base_output_directory.output_uri_prefix must be a Cloud Storage URI, got {prefix}"
        for key, value in (body.get("labels") or {}).items():
            if not re.fullmatch(r"[a-z][a-z0-9_-]{0,62}", key) or not re.fullmatch(r"[a-z0-9_-]{0,63}", str(value)):
                return f"label {key}={value} is invalid: keys and values of up to 63 of [a-z0-9_-], keys starting with a letter"
        return None

    def _create_custom_job(self, parent: str, body: dict[str, Any]) -> tuple[int, Any]:
        invalid = self._invalid_custom_job(body)
        if invalid is not None:
            return self._error(400, invalid)
        job_id = str(self._new_id())
        job = {**body, "name": f"{parent}/customJobs/{job_id}", "state": "JOB_STATE_PENDING", "createTime": _now(), "updateTime": _now()}
        self.jobs[job["name"]] = job
        t = threading.Thread(target=self._run_custom_job, args=(job,), name=f"custom-job-{job_id}", daemon=True)
        self._job_threads.append(t)
        t.start()
        return 200, dict(job)

    def _run_custom_job(self, job: dict[str, Any]) -> None:
        job_id = job["name"].rsplit("/", 1)[-1]
        root = (self.jobs_dir or Path(tempfile.mkdtemp(prefix="fake-vertex-jobs-"))) / job_id
        root.mkdir(parents=True, exist_ok=True)
        pools = job["jobSpec"]["workerPoolSpecs"]
        replicas = [(i, r) for i, pool in enumerate(pools) for r in range(int(pool["replicaCount"]))]
        ports = _free_ports(len(replicas))
        kinds = {0: "chief", 1: "worker", 2: "ps", 3: "evaluator"}
        cluster: dict[str, list[str]] = {}
        for (i, _), port in zip(replicas, ports, strict=True):
            cluster.setdefault(kinds[i], []).append(f"127.0.0.1:{port}")
        procs: list[tuple[str, subprocess.Popen[bytes]]] = []
        with self._lock:
            if job["state"] != "JOB_STATE_PENDING":
                return
            for i, r in replicas:
                container = pools[i]["containerSpec"]
                argv = list(container.get("command") or []) + list(container.get("args") or [])
                if argv and argv[0] in ("python", "python3"):
                    argv[0] = sys.executable
                tf_config = {"cluster": cluster, "task": {"type": kinds[i], "index": r, "trial": ""}, "environment": "cloud"}
                env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
                env.update(self.replica_env)
                env.update({e["name"]: e.get("value", "") for e in container.get("env") or []})
                env.update(TF_CONFIG=json.dumps(tf_config), CLOUD_ML_JOB_ID=job_id)
                with open(root / f"workerpool{i}-{r}.log", "wb") as out:
                    proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
                procs.append((f"workerpool{i}-{r}", proc))
            self._replicas[job["name"]] = [p for _, p in procs]
            job.update(state="JOB_STATE_RUNNING", startTime=_now(), updateTime=_now())
        failed: tuple[str, int] | None = None
        running = dict(procs)
        while running and failed is None:
            for replica, proc in list(running.items()):
                code = proc.poll()
                if code is None:
                    continue
                del running[replica]
                if code != 0:
                    failed = (replica, code)
                    break
            time.sleep(0.1)
        for _, proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        with self._lock:
            if job["state"] == "JOB_STATE_CANCELLING":
                job.update(state="JOB_STATE_CANCELLED")
            elif failed is not None:
                replica, code = failed
                job.update(
                    state="JOB_STATE_FAILED",
                    error={
                        "code": 3,
                        "message": f"The replica {replica} exited with a non-zero status of {code}. "
                        f"To find out more about why your job exited please check the logs: {root / (replica + '.log')}",
                    },
                )
            else:
                job.update(state="JOB_STATE_SUCCEEDED")
            job.update(endTime=_now(), updateTime=_now())

    def _version(self, model: _Model, ref: str) -> _Version | None:
        for v in model.versions:
            if v.version_id == ref or ref in v.aliases:
                return v
        return None

    def _matches(self, v: _Version, flt: str) -> bool:
        if not flt:
            return True
        labels = v.body.get("labels", {})
        return all(labels.get(key) == value for key, value in re.findall(r'labels\.([\w-]+)\s*=\s*"?([^"\s]*)"?', flt))

    def _model_json(self, parent: str, model: _Model, v: _Version) -> dict[str, Any]:
        out = {k: val for k, val in v.body.items() if k not in ("versionAliases",)}
        out.update(
            name=f"{parent}/models/{model.model_id}",
            displayName=model.display_name,
            versionId=v.version_id,
            versionAliases=list(v.aliases),
            versionCreateTime=v.created,
            versionUpdateTime=v.created,
            createTime=model.versions[0].created,
            updateTime=v.created,
        )
        return out

    def _invalid_upload(self, body: dict[str, Any]) -> str | None:
        """What the real API would refuse in an upload request (None when it is valid)."""
        spec = body.get("model")
        if not isinstance(spec, dict):
            return "model is required"
        name = spec.get("displayName")
        if not name or len(name) > 128:
            return "model.display_name is required (at most 128 characters)"
        if not (spec.get("containerSpec") or {}).get("imageUri"):
            return "model.container_spec.image_uri is required for a custom-trained model"
        if spec.get("artifactUri") and not str(spec["artifactUri"]).startswith("gs://"):
            return f"model.artifact_uri must be a Cloud Storage URI, got {spec['artifactUri']}"
        for key, value in (spec.get("labels") or {}).items():
            if not re.fullmatch(r"[a-z][a-z0-9_-]{0,62}", key) or not re.fullmatch(r"[a-z0-9_-]{0,63}", str(value)):
                return f"label {key}={value} is invalid: keys and values of up to 63 of [a-z0-9_-], keys starting with a letter"
        model_id, parent_model = body.get("modelId"), body.get("parentModel")
        if model_id and parent_model:
            return "model_id and parent_model cannot both be set"
        if model_id and not re.fullmatch(r"[a-z_][a-z0-9_-]{0,62}", model_id):
            return f"model_id {model_id} is invalid: up to 63 of [a-z0-9_-], not starting with a digit or hyphen"
        return None

    def _upload(self, parent: str, body: dict[str, Any]) -> tuple[int, Any]:
        invalid = self._invalid_upload(body)
        if invalid is not None:
            return self._error(400, invalid)
        spec = dict(body.get("model", {}))
        aliases = list(spec.get("versionAliases", []))
        parent_model = body.get("parentModel")
        if parent_model:
            model_id = parent_model.rsplit("/", 1)[-1]
            model = self.models.get(model_id)
            if model is None or not parent_model.startswith(parent + "/models/"):
                return self._error(404, f"parent model {parent_model} is not found.")
        else:
            model_id = body.get("modelId") or str(self._new_id())
            if model_id in self.models:
                return self._error(409, f"Model {parent}/models/{model_id} already exists.")
            model = _Model(model_id=model_id, display_name=spec.get("displayName", model_id))
        taken = {a for v in model.versions for a in v.aliases if a != "default"}
        clash = sorted(taken & set(aliases))
        if clash:
            return self._error(400, f"alias {clash[0]} is already used by another version of {model_id}")
        self.models[model_id] = model
        if not model.versions and "default" not in aliases:
            aliases.append("default")
        if "default" in aliases:
            for other in model.versions:
                other.aliases = [a for a in other.aliases if a != "default"]
        model.last_version += 1
        version = _Version(version_id=str(model.last_version), body=spec, aliases=aliases, created=_now())
        model.versions.append(version)
        name = f"{parent}/models/{model_id}/operations/{self._new_id()}"
        self._ops[name] = {
            "polls": 0,
            "response": {"@type": _UPLOAD_RESPONSE, "model": f"{parent}/models/{model_id}", "modelVersionId": version.version_id},
        }
        return 200, {"name": name, "metadata": {"@type": _UPLOAD_METADATA, "genericMetadata": {"createTime": _now()}}, "done": False}

    def _delete_version(self, parent: str, model: _Model, ref: str) -> tuple[int, Any]:
        v = self._version(model, ref)
        if v is None:
            return self._error(404, f"version {ref} of {model.model_id} is not found.")
        if len(model.versions) == 1:
            return self._error(
                400, f"version {v.version_id} is the only version of {model.model_id}; delete the model instead", "FAILED_PRECONDITION"
            )
        if "default" in v.aliases:
            return self._error(
                400, f"version {v.version_id} of {model.model_id} is the default version and cannot be deleted", "FAILED_PRECONDITION"
            )
        model.versions.remove(v)
        name = f"{parent}/operations/{self._new_id()}"
        self._ops[name] = {"polls": 0, "response": {"@type": _EMPTY}, "metadata_type": _DELETE_METADATA}
        return 200, {"name": name, "metadata": {"@type": _DELETE_METADATA, "genericMetadata": {"createTime": _now()}}, "done": False}

    def _operation(self, name: str) -> tuple[int, Any]:
        op = self._ops.get(name)
        if op is None:
            return self._error(404, f"operation {name} is not found.")
        op["polls"] += 1
        meta = {"@type": op.get("metadata_type", _UPLOAD_METADATA), "genericMetadata": {"createTime": _now(), "updateTime": _now()}}
        if op["polls"] <= self.pending_polls:
            return 200, {"name": name, "metadata": meta, "done": False}
        return 200, {"name": name, "metadata": meta, "done": True, "response": op["response"]}

    def _merge(self, parent: str, model: _Model, v: _Version, changes: list[str]) -> tuple[int, Any]:
        adds = [a for a in changes if not a.startswith("-")]
        removes = [a[1:] for a in changes if a.startswith("-")]
        if "default" in removes:
            return self._error(400, "the default alias cannot be removed; move it to another version")
        for a in adds:
            holder = next((o for o in model.versions if a in o.aliases and o is not v), None)
            if holder is not None and a != "default":
                return self._error(400, f"alias {a} is already used by version {holder.version_id}")
        if "default" in adds:
            for other in model.versions:
                other.aliases = [a for a in other.aliases if a != "default"]
        v.aliases = [a for a in v.aliases if a not in removes] + [a for a in adds if a not in v.aliases]
        return 200, self._model_json(parent, model, v)

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id
