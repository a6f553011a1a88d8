"""Registries across processes: concurrent pushes, and pushes killed with SIGKILL at precise points.

Each push runs in its own Python process (its own MLMD connection to one
SQLite file). A hook in the copy (local) or upload (MLflow) loop, or just
before the upload call (Vertex AI, whose files are already in Cloud Storage), lets the
test hold a push at a known point: workers wait for each other there (so
copies really overlap), or signal the test and sleep until it kills them.
The local registry, the Vertex backend (the real client against
``fakes.vertex_server`` in the test process) and the MLflow backend (a real
MLflow server) run the same tests; what each leaves behind after a kill is
checked per backend.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fakes.models import make_model
from fakes.vertex_server import FakeVertexServer

from components.core.lineage import LineageStore
from components.registry import LocalRegistry, MLflowRegistry, RegisterRequest, Registry, VertexOptions, VertexRegistry
from components.registry._files import STAGING_PREFIX, model_digest

# the hook stage after each copied (uploaded) file, and the one after the version exists but before it is recorded
STAGES = {"local": ("copied", "renamed"), "mlflow": ("uploaded", "created"), "vertex": ("uploading", "created")}

WORKER = r"""
import json, sys, time
from pathlib import Path
from components.core.lineage import LineageStore
from components.registry import LocalRegistry, MLflowRegistry, RegisterRequest, VertexOptions, VertexRegistry

args = json.loads(sys.argv[1])
sync = Path(args["sync"])

def wait_for(paths):
    deadline = time.monotonic() + 300
    while not all(Path(p).exists() for p in paths):
        if time.monotonic() > deadline:
            raise SystemExit("timed out waiting for " + ", ".join(paths))
        time.sleep(0.01)

def hook(stage, path):
    if stage in ("copied", "uploaded", "uploading") and args.get("meet"):
        (sync / (args["id"] + ".copying")).touch()
        wait_for([str(sync / (other + ".copying")) for other in args["meet"]])
    if stage == args.get("stall_at"):
        (sync / (args["id"] + ".stalled")).touch()
        time.sleep(600)

store = LineageStore(args["url"])
if args["backend"] == "mlflow":
    registry = MLflowRegistry(args["tracking_uri"], store, hook=hook)
elif args["backend"] == "vertex":
    from google.oauth2.credentials import Credentials

    options = VertexOptions(api_endpoint=args["endpoint"], credentials=Credentials(token=args["token"]), backoff_s=0.01, max_backoff_s=0.05)
    registry = VertexRegistry("proj", "us-central1", store, options, hook=hook)
else:
    registry = LocalRegistry(args["root"], store, hook=hook)
uri = "gs://bucket" + args["model"] if args["backend"] == "vertex" else None
result = registry.register(RegisterRequest(model_dir=Path(args["model"]), model_name="demo", uri=uri, aliases=["champion"]))
print(json.dumps({"version": result.version.version, "created": result.created}))
"""


@pytest.fixture(params=["local", "vertex", "mlflow"])
def setup(request: pytest.FixtureRequest, tmp_path: Path, mlmd_url: str) -> Iterator[dict[str, object]]:
    LineageStore(mlmd_url)  # create the schema before workers race to open it
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    sync = tmp_path / "sync"
    sync.mkdir()
    tracking_uri = request.getfixturevalue("mlflow_uri") if request.param == "mlflow" else None
    out: dict[str, object] = {
        "backend": request.param,
        "url": mlmd_url,
        "root": str(tmp_path / "registry"),
        "tracking_uri": tracking_uri,
        "script": script,
        "sync": sync,
    }
    if request.param != "vertex":
        yield out
        return
    with FakeVertexServer() as server:
        yield {**out, "server": server, "endpoint": server.endpoint, "token": server.token}


def _registry(setup: dict[str, object]) -> Registry:
    store = LineageStore(str(setup["url"]))
    if setup["backend"] == "mlflow":
        return MLflowRegistry(str(setup["tracking_uri"]), store)
    if setup["backend"] == "vertex":
        server = setup["server"]
        assert isinstance(server, FakeVertexServer)
        options = VertexOptions(api_endpoint=server.endpoint, credentials=server.credentials(), backoff_s=0.01, max_backoff_s=0.05)
        return VertexRegistry("proj", "us-central1", store, options)
    return LocalRegistry(str(setup["root"]), store)


def _request(setup: dict[str, object], model: Path, **kw: Any) -> RegisterRequest:
    uri = f"gs://bucket{model}" if setup["backend"] == "vertex" else None  # Vertex AI serves from Cloud Storage
    return RegisterRequest(model_dir=model, model_name="demo", uri=uri, **kw)


def _remote_versions(setup: dict[str, object]) -> list[int]:
    """Versions the backend itself lists (recorded by cvpipe or not)."""
    if setup["backend"] == "mlflow":
        return _mlflow_versions(setup)
    server = setup["server"]
    assert isinstance(server, FakeVertexServer)
    model = server.models.get("demo")
    return sorted(int(v.version_id) for v in model.versions) if model is not None else []


def _mlflow_versions(setup: dict[str, object]) -> list[int]:
    """Versions MLflow itself lists (recorded by cvpipe or not)."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=str(setup["tracking_uri"]), registry_uri=str(setup["tracking_uri"]))
    return sorted(int(mv.version) for mv in client.search_model_versions("name='demo'"))


def _upload_runs(setup: dict[str, object], status: str) -> list[object]:
    from mlflow import MlflowClient
    from mlflow.entities import ViewType

    client = MlflowClient(tracking_uri=str(setup["tracking_uri"]))
    exp = client.get_experiment_by_name("cvpipe-registry")
    if exp is None:
        return []
    runs = client.search_runs([exp.experiment_id], run_view_type=ViewType.ALL)
    return [r for r in runs if r.info.status == status]


def _start(setup: dict[str, object], model: Path, wid: str, **extra: object) -> subprocess.Popen[str]:
    args = {
        "backend": setup["backend"],
        "url": setup["url"],
        "root": setup["root"],
        "tracking_uri": setup["tracking_uri"],
        "endpoint": setup.get("endpoint"),
        "token": setup.get("token"),
        "sync": str(setup["sync"]),
        "model": str(model),
        "id": wid,
        **extra,
    }
    return subprocess.Popen(
        [sys.executable, str(setup["script"]), json.dumps(args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=os.getcwd()
    )


def _result(p: subprocess.Popen[str]) -> dict[str, Any]:
    out, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


def _wait_file(path: Path, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 300
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"worker exited early: {proc.stderr.read() if proc.stderr else ''}")
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.01)


def _kill(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


def test_two_processes_pushing_at_once_get_two_intact_versions(setup: dict[str, object], tmp_path: Path) -> None:
    a = make_model(tmp_path / "a", "a", size=64 * 1024)
    b = make_model(tmp_path / "b", "b", size=64 * 1024)
    procs = [_start(setup, a, "a", meet=["b"]), _start(setup, b, "b", meet=["a"])]
    results = [_result(p) for p in procs]
    assert sorted(r["version"] for r in results) == [1, 2] and all(r["created"] for r in results)
    registry = _registry(setup)
    versions = registry.versions("demo")
    assert [v.version for v in versions] == [1, 2]
    assert {v.digest for v in versions} == {model_digest(a), model_digest(b)}
    assert registry.holder("demo", "champion") is not None
    if isinstance(registry, LocalRegistry):
        assert all(registry.verify("demo", v.version) for v in versions)
        assert not list((Path(str(setup["root"])) / "demo").glob(f"{STAGING_PREFIX}*"))
    else:
        assert _remote_versions(setup) == [1, 2]
        if setup["backend"] == "mlflow":
            assert not _upload_runs(setup, "RUNNING")


def test_two_processes_pushing_the_same_model_get_one_version(setup: dict[str, object], tmp_path: Path) -> None:
    a = make_model(tmp_path / "a", "same")
    procs = [_start(setup, a, "x", meet=["y"]), _start(setup, a, "y", meet=["x"])]
    results = [_result(p) for p in procs]
    assert [r["version"] for r in results] == [1, 1]
    assert sorted(bool(r["created"]) for r in results) == [False, True]
    registry = _registry(setup)
    assert [v.version for v in registry.versions("demo")] == [1]
    if isinstance(registry, LocalRegistry):
        assert sorted(p.name for p in (registry.root / "demo").iterdir() if not p.name.startswith(".")) == ["1"]
    else:  # both made a version; the later one was deleted
        assert _remote_versions(setup) == [1]


def test_push_killed_mid_copy_leaves_no_version_and_can_be_retried(setup: dict[str, object], tmp_path: Path) -> None:
    model = make_model(tmp_path / "m", "m")
    copied, _ = STAGES[str(setup["backend"])]
    proc = _start(setup, model, "k", stall_at=copied)
    _wait_file(Path(str(setup["sync"])) / "k.stalled", proc)
    _kill(proc)
    root = Path(str(setup["root"])) / "demo"
    registry = _registry(setup)
    if isinstance(registry, LocalRegistry):
        staging = list(root.glob(f"{STAGING_PREFIX}*"))
        assert len(staging) == 1 and not (staging[0] / "saved_model" / "saved_model.pb").exists()  # half a copy, no serving graph
        assert not [p for p in root.iterdir() if p.name.isdigit()]
    else:  # no version (MLflow: and an unfinished upload run)
        assert _remote_versions(setup) == []
        if setup["backend"] == "mlflow":
            assert len(_upload_runs(setup, "RUNNING")) == 1
    assert registry.versions("demo") == [] and registry.latest("demo") is None
    retry = registry.register(_request(setup, model, aliases=["champion"]))
    assert retry.created and retry.version.version == 1
    if isinstance(registry, LocalRegistry):
        assert registry.verify("demo", 1)
        assert not list(root.glob(f"{STAGING_PREFIX}*"))  # the dead push's staging directory is gone
    else:
        assert _remote_versions(setup) == [1]
        if setup["backend"] == "mlflow":  # the dead push's run is marked failed (and deleted)
            assert not _upload_runs(setup, "RUNNING") and len(_upload_runs(setup, "FAILED")) == 1
    assert registry.resolve("demo@champion").version == 1


def test_push_killed_after_rename_is_adopted_by_the_retry(setup: dict[str, object], tmp_path: Path) -> None:
    model = make_model(tmp_path / "m", "m")
    _, renamed = STAGES[str(setup["backend"])]
    proc = _start(setup, model, "k", stall_at=renamed)
    _wait_file(Path(str(setup["sync"])) / "k.stalled", proc)
    _kill(proc)
    root = Path(str(setup["root"])) / "demo"
    registry = _registry(setup)
    if isinstance(registry, LocalRegistry):
        assert (root / "1" / "saved_model" / "saved_model.pb").is_file()
    else:
        assert _remote_versions(setup) == [1]  # the backend holds it
    assert registry.versions("demo") == []  # not recorded, so not visible
    retry = registry.register(_request(setup, model, blessed=True))
    assert retry.created and retry.version.version == 1
    if isinstance(registry, LocalRegistry):
        assert registry.verify("demo", 1)
        assert sorted(p.name for p in root.iterdir() if p.name.isdigit()) == ["1"]
    else:
        assert _remote_versions(setup) == [1]
    assert registry.versions("demo")[0].blessed  # the retry's blessing is recorded, not lost to an adoption
    other = registry.register(_request(setup, make_model(tmp_path / "n", "n")))
    assert other.version.version == 2
