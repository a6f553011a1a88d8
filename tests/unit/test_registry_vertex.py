"""The Vertex AI backend: the real aiplatform client over REST against a local server speaking Vertex's wire protocol."""

from __future__ import annotations

import hashlib
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from fakes.models import make_model, record_training
from fakes.vertex_server import FakeVertexServer
from google.auth.credentials import AnonymousCredentials
from google.oauth2.credentials import Credentials

from components.core.errors import RegistryError
from components.core.lineage import LineageStore
from components.registry import ModelVersion, RegisterRequest, VertexOptions, VertexRegistry
from components.registry.cli_ops import list_text, rollback_text
from components.registry.vertex import DIGEST_LABEL, gcs_uri

IMAGE = "us-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.2-15:latest"
PARENT = "/v1/projects/proj/locations/us-central1"
MODEL = "projects/proj/locations/us-central1/models/demo"


def _num(v: ModelVersion | None) -> int | None:
    return v.version if v is not None else None


@pytest.fixture
def server() -> Iterator[FakeVertexServer]:
    with FakeVertexServer(pending_polls=1) as s:
        yield s


@pytest.fixture
def store(mlmd_url: str) -> LineageStore:
    return LineageStore(mlmd_url)


def _registry(server: FakeVertexServer, store: LineageStore, credentials: object = None, **opts: float) -> VertexRegistry:
    options = VertexOptions(
        api_endpoint=server.endpoint,
        credentials=credentials or server.credentials(),
        serving_image=IMAGE,
        attempts=int(opts.pop("attempts", 3)),
        backoff_s=0.01,
        max_backoff_s=0.05,
        # generous: a loaded CI machine is slow; only the hung-call test needs a short one
        request_timeout_s=opts.pop("request_timeout_s", 60.0),
        upload_timeout_s=30.0,
    )
    return VertexRegistry("proj", "us-central1", store, options)


@pytest.fixture
def registry(server: FakeVertexServer, store: LineageStore) -> VertexRegistry:
    return _registry(server, store)


def _request(store: LineageStore, tmp_path: Path, seed: str, run: str, aliases=("champion",)) -> RegisterRequest:
    model_dir = make_model(tmp_path / run, seed)
    lin = record_training(store, run, model_dir)
    return RegisterRequest(
        model_dir=model_dir,
        model_name="demo",
        uri=f"gs://bucket/runs/{run}/model",
        metrics={"map": 0.6},
        blessed=True,
        source_model_id=lin["model"].id,
        blessing_id=lin["blessing"].id,
        aliases=aliases,
    )


def test_upload_first_and_next_version_with_alias_moves(
    registry: VertexRegistry, server: FakeVertexServer, store: LineageStore, tmp_path: Path
) -> None:
    req1 = _request(store, tmp_path, "a", "r1")
    r1 = registry.register(req1)
    uploads = server.calls("POST", "models:upload")
    assert len(uploads) == 1 and uploads[0].path == f"{PARENT}/models:upload"
    digest = r1.version.digest
    assert uploads[0].body == {
        "model": {
            "displayName": "demo",
            "containerSpec": {"imageUri": IMAGE},
            "labels": {
                DIGEST_LABEL: digest[:32],
                "cvpipe-model": "demo",
                # the metadata store that records it and the process that pushed it (see components.registry.vertex)
                "cvpipe-metadata": hashlib.sha256(store.url.encode()).hexdigest()[:32],
                "cvpipe-push-host": hashlib.sha256(socket.gethostname().encode()).hexdigest()[:16],
                "cvpipe-push-pid": str(os.getpid()),
            },
            "artifactUri": "gs://bucket/runs/r1/model",
            "versionAliases": ["champion"],
        },
        "modelId": "demo",
    }
    # the long-running operation was polled until done
    polls = server.calls("GET", "/operations/")
    assert len(polls) == 2
    assert [c.path for c in server.calls("GET", "/models/demo@")] == [f"{PARENT}/models/demo@1"]  # the client then gets the new version
    v1 = r1.version
    assert r1.created and v1.version == 1 and v1.resource_name == f"{MODEL}@1"
    assert set(v1.aliases) == {"champion", "default"} and v1.model_dir == Path("/gcs/bucket/runs/r1/model")
    assert v1.artifact_id == req1.source_model_id and v1.metrics == {"map": 0.6} and v1.backend == "vertex"
    pushed = store.get(v1.pushed_id)
    assert pushed.uri == f"{MODEL}@1" and pushed.properties["artifact_uri"] == "gs://bucket/runs/r1/model"

    r2 = registry.register(_request(store, tmp_path, "b", "r2"))
    second = server.calls("POST", "models:upload")[1]
    assert second.body["parentModel"] == MODEL and "modelId" not in second.body
    assert "versionAliases" not in second.body["model"]  # champion is held by version 1: moved after the upload
    assert second.body["model"]["artifactUri"] == "gs://bucket/runs/r2/model"
    merges = server.calls("POST", ":mergeVersionAliases")
    assert [(m.path, m.body) for m in merges] == [
        (f"{PARENT}/models/demo@1:mergeVersionAliases", {"versionAliases": ["-champion"]}),
        (f"{PARENT}/models/demo@2:mergeVersionAliases", {"versionAliases": ["champion"]}),
    ]
    assert server.aliases("demo") == {"1": ["default"], "2": ["champion"]}
    assert r2.version.version == 2 and r2.moves[0].previous == 1
    assert registry.resolve("demo@champion").version == 2
    assert [v.version for v in registry.versions("demo")] == [1, 2]
    assert server.calls("GET", ":listVersions")  # listing asks Vertex AI
    assert _num(registry.latest("demo", blessed_only=True)) == 2


def test_aliases_rollback_and_listing(registry: VertexRegistry, server: FakeVertexServer, store: LineageStore, tmp_path: Path) -> None:
    registry.register(_request(store, tmp_path, "a", "r1"))
    registry.register(_request(store, tmp_path, "b", "r2"))
    n = len(server.calls("POST", ":mergeVersionAliases"))
    move = registry.set_alias("demo", "mobile", 1)
    assert (move.previous, move.version) == (None, 1)
    assert [m.body for m in server.calls("POST", ":mergeVersionAliases")[n:]] == [{"versionAliases": ["mobile"]}]
    assert server.aliases("demo") == {"1": ["default", "mobile"], "2": ["champion"]}
    assert rollback_text(registry, "demo@champion") == "demo@champion rolled back to version 1 (was version 2)"
    assert server.aliases("demo") == {"1": ["champion", "default", "mobile"], "2": []}
    assert [(e.action, e.version) for e in registry.alias_history("demo", "champion")] == [("set", 1), ("set", 2), ("rollback", 1)]
    with pytest.raises(RegistryError, match="managed by Vertex AI"):
        registry.set_alias("demo", "default", 2)
    text = list_text(registry, "demo")
    assert "champion, default, mobile" in text and "map=0.6" in text
    # archiving is recorded in MLMD (Vertex AI has no such state)
    registry.archive("demo", 2)
    assert [v.version for v in registry.versions("demo")] == [1]


def test_same_model_is_not_uploaded_twice(registry: VertexRegistry, server: FakeVertexServer, store: LineageStore, tmp_path: Path) -> None:
    req = _request(store, tmp_path, "a", "r1")
    registry.register(req)
    again = registry.register(req)
    assert not again.created and again.version.version == 1
    assert len(server.calls("POST", "models:upload")) == 1
    # a second registry with its own (empty) MLMD store finds the upload by its digest label
    other = _registry(server, LineageStore(f"sqlite:///{tmp_path / 'other.sqlite'}"))
    found = other.register(RegisterRequest(model_dir=req.model_dir, model_name="demo", uri=req.uri))
    assert found.version.version == 1 and len(server.calls("POST", "models:upload")) == 1
    filtered = [c.query["filter"] for c in server.calls("GET", ":listVersions") if "filter" in c.query]
    assert filtered == [f'labels.{DIGEST_LABEL}="{found.version.digest[:32]}"']


def test_versions_uploaded_outside_cvpipe_are_adopted(
    registry: VertexRegistry, server: FakeVertexServer, store: LineageStore, tmp_path: Path
) -> None:
    registry.register(_request(store, tmp_path, "a", "r1"))
    other = _registry(server, LineageStore(f"sqlite:///{tmp_path / 'other.sqlite'}"))
    other.register(_request(other.store, tmp_path, "z", "rz", aliases=()))
    versions = registry.versions("demo")
    assert [v.version for v in versions] == [1, 2]
    adopted = versions[1]
    assert store.get(adopted.artifact_id).uri == "gs://bucket/runs/rz/model" and not adopted.blessed
    assert registry.resolve("demo:2").pushed_id == adopted.pushed_id  # recorded once


def test_server_errors_are_retried(registry: VertexRegistry, server: FakeVertexServer, store: LineageStore, tmp_path: Path) -> None:
    server.fail("models:upload", status=500, times=2)
    server.fail(":mergeVersionAliases", status=503, times=1)
    registry.register(_request(store, tmp_path, "a", "r1"))
    assert len(server.calls("POST", "models:upload")) == 3
    r2 = registry.register(_request(store, tmp_path, "b", "r2"))
    assert r2.version.version == 2 and server.aliases("demo") == {"1": ["default"], "2": ["champion"]}
    assert len(server.models["demo"].versions) == 2


def test_lost_upload_response_does_not_make_two_versions(
    registry: VertexRegistry, server: FakeVertexServer, store: LineageStore, tmp_path: Path
) -> None:
    registry.register(_request(store, tmp_path, "a", "r1"))
    server.fail("models:upload", status=500, after=True)  # the server uploads, then the answer is lost
    r2 = registry.register(_request(store, tmp_path, "b", "r2"))
    assert len(server.calls("POST", "models:upload")) == 2  # one per model: the retry found the landed version
    assert r2.version.version == 2 and len(server.models["demo"].versions) == 2


def test_race_on_creating_the_model(registry: VertexRegistry, server: FakeVertexServer, store: LineageStore, tmp_path: Path) -> None:
    other = _registry(server, LineageStore(f"sqlite:///{tmp_path / 'other.sqlite'}"))
    other.register(_request(other.store, tmp_path, "z", "rz", aliases=()))
    server.fail(":listVersions", status=404, times=1)  # looks absent, as if another push created it just now
    r = registry.register(_request(store, tmp_path, "a", "r1", aliases=()))
    bodies = [c.body for c in server.calls("POST", "models:upload")]
    assert bodies[1]["modelId"] == "demo" and bodies[2]["parentModel"] == MODEL
    assert r.version.version == 2


def test_hung_call_times_out_and_is_retried(server: FakeVertexServer, store: LineageStore, tmp_path: Path) -> None:
    registry = _registry(server, store, request_timeout_s=0.5)
    server.fail(":listVersions", delay_s=2.0, then_status=None, times=1)
    assert registry.versions("demo") == []
    assert len(server.calls("GET", ":listVersions")) == 2


def test_errors_surface_as_registry_error_after_the_limit(server: FakeVertexServer, store: LineageStore, tmp_path: Path) -> None:
    registry = _registry(server, store, attempts=3)
    server.fail(":listVersions", status=500, times=100)
    with pytest.raises(RegistryError, match=r"list versions failed after 3 attempts .*500"):
        registry.versions("demo")
    assert len(server.calls("GET", ":listVersions")) == 3
    server.faults.clear()
    server.fail("models:upload", status=400, times=1)  # not transient: no retry
    with pytest.raises(RegistryError, match=r"upload model failed .*400"):
        registry.register(_request(store, tmp_path, "a", "r1"))
    assert len(server.calls("POST", "models:upload")) == 1


def test_needs_cloud_storage(registry: VertexRegistry, store: LineageStore, tmp_path: Path) -> None:
    req = _request(store, tmp_path, "a", "r1")
    with pytest.raises(RegistryError, match="Cloud Storage"):
        registry.register(RegisterRequest(model_dir=req.model_dir, model_name="demo"))
    assert gcs_uri("/gcs/bucket/x") == "gs://bucket/x" and gcs_uri("gs://b/y") == "gs://b/y"


def test_the_callers_credentials_reach_the_service(server: FakeVertexServer, store: LineageStore, tmp_path: Path) -> None:
    registry = _registry(server, store)
    registry.register(_request(store, tmp_path, "a", "r1"))
    assert server.requests and {r.authorization for r in server.requests} == {f"Bearer {server.token}"}
    # refused with 401, the client tries to refresh the credentials, which these cannot do
    for creds, sent in ((AnonymousCredentials(), None), (Credentials(token="someone-elses-token"), "Bearer someone-elses-token")):
        with pytest.raises(RegistryError, match=r"list versions failed .*(refresh|401)"):
            _registry(server, store, credentials=creds, attempts=1).versions("demo")
        assert server.requests[-1].authorization == sent


def test_fake_refuses_uploads_the_real_api_refuses(server: FakeVertexServer) -> None:
    """The fake's own checks, so a test passing against it means the request would pass Vertex AI's."""
    good = {"modelId": "demo", "model": {"displayName": "demo", "containerSpec": {"imageUri": IMAGE}, "artifactUri": "gs://b/m"}}
    assert server._invalid_upload(good) is None
    assert "display_name" in (server._invalid_upload({"model": {"containerSpec": {"imageUri": IMAGE}}}) or "")
    assert "image_uri" in (server._invalid_upload({"model": {"displayName": "demo"}}) or "")
    assert "Cloud Storage" in (server._invalid_upload({"model": {**good["model"], "artifactUri": "/tmp/m"}}) or "")
    assert "model_id" in (server._invalid_upload({**good, "modelId": "9Demo"}) or "")
    assert "both" in (server._invalid_upload({**good, "parentModel": MODEL}) or "")
    assert "label" in (server._invalid_upload({**good, "model": {**good["model"], "labels": {"k": "Not.Valid"}}}) or "")


def test_fake_deletes_versions_as_the_real_api_does(
    registry: VertexRegistry, server: FakeVertexServer, store: LineageStore, tmp_path: Path
) -> None:
    """``ModelRegistry.delete_version`` (used to drop a concurrent push's duplicate) against the fake."""
    from google.api_core import exceptions as gexc

    registry.register(_request(store, tmp_path, "a", "r1", aliases=()))
    with pytest.raises(gexc.GoogleAPICallError, match="only version"):
        registry._registry("demo").delete_version("1")
    registry.register(_request(store, tmp_path, "b", "r2", aliases=()))
    with pytest.raises(gexc.GoogleAPICallError, match="default version"):
        registry._registry("demo").delete_version("1")
    registry._registry("demo").delete_version("2")  # a long-running operation, polled until done
    assert [c.path for c in server.calls("DELETE")] == [f"{PARENT}/models/demo@{v}:deleteVersion" for v in (1, 1, 2)]
    assert list(server.aliases("demo")) == ["1"]
    registry.register(_request(store, tmp_path, "c", "r3", aliases=()))
    assert list(server.aliases("demo")) == ["1", "3"]  # a deleted version's id is not given again
