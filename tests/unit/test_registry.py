"""The registry's shared behaviour on every backend: register, list, show, aliases, rollback, archive, fork tree, CLI text.

Each test runs against the local registry (real MLMD on SQLite), the Vertex
AI backend (the real aiplatform client over REST against the local server in
``fakes.vertex_server``) and the MLflow backend (the real MLflow client
against a real MLflow tracking server). Assertions about the local backend's
files are marked as such; everything else holds for all three.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from fakes.models import make_model, record_training
from fakes.vertex_server import FakeVertexServer

from components.core.errors import RegistryError
from components.core.lineage import LineageStore
from components.core.spec import RegistrySpec
from components.registry import (
    LocalRegistry,
    MLflowRegistry,
    ModelVersion,
    RegisterRequest,
    Registry,
    VertexOptions,
    VertexRegistry,
    get_registry,
    parse_ref,
)
from components.registry._files import copy_order, model_digest
from components.registry.cli_ops import archive_text, list_text, promote_text, rollback_text, show_text, tree_text

BACKENDS = ["local", "vertex", "mlflow"]


def _num(v: ModelVersion | None) -> int | None:
    return v.version if v is not None else None


def _aliases(v: ModelVersion) -> tuple[str, ...]:
    """The aliases cvpipe manages (Vertex AI adds its own ``default`` to the first version)."""
    return tuple(a for a in v.aliases if a != "default")


def _uri(registry: Registry, model_dir: Path) -> str | None:
    """Where the model's files are for the backend (Vertex AI serves from Cloud Storage)."""
    return f"gs://bucket{model_dir}" if isinstance(registry, VertexRegistry) else None


@pytest.fixture
def store(mlmd_url: str) -> LineageStore:
    return LineageStore(mlmd_url)


@pytest.fixture(params=BACKENDS)
def registry(request: pytest.FixtureRequest, tmp_path: Path, store: LineageStore) -> Iterator[Registry]:
    if request.param == "local":
        yield LocalRegistry(tmp_path / "registry", store)
    elif request.param == "vertex":
        with FakeVertexServer() as server:
            options = VertexOptions(api_endpoint=server.endpoint, credentials=server.credentials(), backoff_s=0.01, max_backoff_s=0.05)
            yield VertexRegistry("proj", "us-central1", store, options)
    else:
        yield MLflowRegistry(request.getfixturevalue("mlflow_uri"), store)


def _push(
    registry: Registry,
    tmp_path: Path,
    seed: str,
    run: str,
    *,
    aliases=("champion",),
    parent=None,
    metrics=None,
    name="demo",
    images=10,
):
    model_dir = make_model(tmp_path / "models" / run, seed)
    lin = record_training(registry.store, run, model_dir, pipeline=name, parent=parent, images=images)
    req = RegisterRequest(
        model_dir=model_dir,
        model_name=name,
        uri=_uri(registry, model_dir),
        metrics=metrics or {"map": 0.5},
        blessed=True,
        source_model_id=lin["model"].id,
        blessing_id=lin["blessing"].id,
        aliases=aliases,
    )
    return registry.register(req), lin


def test_register_records_version_and_lineage(registry: Registry, tmp_path: Path, store: LineageStore) -> None:
    result, lin = _push(registry, tmp_path, "a", "r1", metrics={"map": 0.61, "map_50": 0.8})
    v = result.version
    assert result.created and v.version == 1 and v.ref == "demo:1" and v.backend == registry.backend
    src = tmp_path / "models" / "r1"
    assert v.digest == model_digest(src)
    assert v.artifact_id == lin["model"].id and v.blessing_id == lin["blessing"].id
    assert _aliases(v) == ("champion",) and v.blessed and v.metrics == {"map": 0.61, "map_50": 0.8}
    # the PushedModel's upstream is the Model, its blessing, and the data the model was trained on
    kinds = {a.kind for a in store.upstream(v.pushed_id).artifacts()}
    assert {"PushedModel", "Model", "ModelBlessing", "Examples", "Manifest"} <= kinds
    pushed = store.get(v.pushed_id)
    assert pushed.kind == "PushedModel" and pushed.uri == v.uri
    assert pushed.properties["pushed"] is True and json.loads(pushed.properties["aliases"]) == ["champion"]
    # the serving graph is copied last
    order = [r.as_posix() for r in copy_order(src)]
    assert order[-1] == "saved_model/saved_model.pb" and order[0] == "label_map.json"
    if isinstance(registry, LocalRegistry):  # the local registry holds its own copy
        assert v.model_dir == registry.root / "demo" / "1" and v.uri == str(v.model_dir)
        for rel in copy_order(src):
            assert (v.model_dir / rel).read_bytes() == (src / rel).read_bytes()
        assert registry.verify("demo", 1)
        assert json.loads((v.model_dir / "registry_version.json").read_text())["version"] == 1


def test_versions_resolve_latest(registry: Registry, tmp_path: Path) -> None:
    _push(registry, tmp_path, "a", "r1", aliases=())
    _push(registry, tmp_path, "b", "r2", aliases=("champion",))
    model_dir = make_model(tmp_path / "models" / "unblessed", "c")
    r3 = registry.register(RegisterRequest(model_dir=model_dir, model_name="demo", uri=_uri(registry, model_dir), blessed=False))
    assert r3.version.version == 3 and not r3.version.blessed
    assert [v.version for v in registry.versions("demo")] == [1, 2, 3]
    assert registry.resolve("demo:1").version == 1
    assert registry.resolve("demo@champion").version == 2
    assert registry.resolve("demo").version == 3
    assert _num(registry.latest("demo")) == 3
    assert _num(registry.latest("demo", blessed_only=True)) == 2
    assert registry.latest("other") is None and registry.models() == ["demo"]
    # a model registered without lineage gets an external Model artifact, so artifact_id is always usable
    ext = registry.store.get(r3.version.artifact_id)
    assert ext.kind == "Model" and ext.uri == (_uri(registry, model_dir) or str(model_dir))
    with pytest.raises(RegistryError, match="no version 9"):
        registry.resolve("demo:9")
    with pytest.raises(RegistryError, match="alias 'staging'"):
        registry.resolve("demo@staging")
    with pytest.raises(RegistryError, match="has no versions"):
        registry.resolve("nothing")


def test_same_model_twice_is_one_version(registry: Registry, tmp_path: Path) -> None:
    _first, lin = _push(registry, tmp_path, "a", "r1")
    first_dir = tmp_path / "models" / "r1"
    again = registry.register(
        RegisterRequest(
            model_dir=first_dir,
            model_name="demo",
            uri=_uri(registry, first_dir),
            source_model_id=lin["model"].id,
            blessed=True,
            aliases=["champion"],
        )
    )
    assert not again.created and again.version.version == 1
    # same files under another path and without a source id: same digest, same version
    copy = Path(shutil.copytree(first_dir, tmp_path / "elsewhere"))
    same = registry.register(RegisterRequest(model_dir=copy, model_name="demo", uri=_uri(registry, copy)))
    assert not same.created and same.version.version == 1
    other, _ = _push(registry, tmp_path, "b", "r2")
    assert other.created and other.version.version == 2
    assert [v.version for v in registry.versions("demo")] == [1, 2]
    if isinstance(registry, LocalRegistry):
        assert sorted(p.name for p in (registry.root / "demo").iterdir() if not p.name.startswith(".")) == ["1", "2"]


def test_aliases_per_application_and_lookup_compat(registry: Registry, tmp_path: Path, store: LineageStore) -> None:
    _push(registry, tmp_path, "a", "r1", aliases=("champion", "mobile"))
    r2, _ = _push(registry, tmp_path, "b", "r2", aliases=("champion",))
    assert [m.action for m in r2.moves] == ["set"] and r2.moves[0].previous == 1
    assert registry.resolve("demo@champion").version == 2
    assert registry.resolve("demo@mobile").version == 1  # the mobile app still pins version 1
    assert _aliases(registry.get("demo", 1)) == ("mobile",)
    same = registry.set_alias("demo", "champion", 2)
    assert same.action == "unchanged"
    move = registry.set_alias("demo", "mobile", 2)
    assert (move.previous, move.version) == (1, 2)
    assert _aliases(registry.get("demo", 1)) == () and _aliases(registry.get("demo", 2)) == ("champion", "mobile")
    # the lead's reference resolver reads the same records
    from pipelines.lookup import resolve_artifact

    assert resolve_artifact(store, "demo@mobile").properties["version"] == 2
    assert resolve_artifact(store, "demo:1").properties["version"] == 1
    with pytest.raises(RegistryError, match="invalid alias"):
        registry.set_alias("demo", "Bad Alias", 1)
    with pytest.raises(RegistryError, match="no version 7"):
        registry.set_alias("demo", "champion", 7)


def test_rollback_walks_back_through_alias_history(registry: Registry, tmp_path: Path) -> None:
    for seed, run in (("a", "r1"), ("b", "r2"), ("c", "r3")):
        _push(registry, tmp_path, seed, run)
    assert registry.resolve("demo@champion").version == 3
    back = registry.rollback("demo", "champion")
    assert (back.previous, back.version, back.action) == (3, 2, "rollback")
    assert registry.rollback("demo", "champion").version == 1
    with pytest.raises(RegistryError, match="no earlier version"):
        registry.rollback("demo", "champion")
    assert registry.resolve("demo@champion").version == 1
    history = registry.alias_history("demo", "champion")
    assert [(e.action, e.previous, e.version) for e in history] == [
        ("set", None, 1),
        ("set", 1, 2),
        ("set", 2, 3),
        ("rollback", 3, 2),
        ("rollback", 2, 1),
    ]
    assert [e.seq for e in history] == sorted(e.seq for e in history)
    # a promotion after a rollback, then a rollback, returns to where the alias was
    registry.set_alias("demo", "champion", 3)
    assert registry.rollback("demo", "champion").version == 1
    # removal is kept in history, and a rollback undoes it
    registry.remove_alias("demo", "champion")
    assert registry.holder("demo", "champion") is None
    assert registry.rollback("demo", "champion").version == 1
    with pytest.raises(RegistryError, match="no earlier version"):
        registry.rollback("demo", "staging")


def test_archive(registry: Registry, tmp_path: Path) -> None:
    _push(registry, tmp_path, "a", "r1")
    _push(registry, tmp_path, "b", "r2")
    with pytest.raises(RegistryError, match="holds aliases champion"):
        registry.archive("demo", 2)
    registry.archive("demo", 1)
    assert [v.version for v in registry.versions("demo")] == [2]
    assert [v.version for v in registry.versions("demo", include_archived=True)] == [1, 2]
    assert registry.get("demo", 1).archived
    if isinstance(registry, LocalRegistry):
        assert (registry.root / "demo" / "1" / "saved_model" / "saved_model.pb").is_file()
    with pytest.raises(RegistryError, match="archived"):
        registry.set_alias("demo", "mobile", 1)
    with pytest.raises(RegistryError, match="archived"):
        registry.rollback("demo", "champion")
    with pytest.raises(RegistryError, match="archived"):
        first_dir = tmp_path / "models" / "r1"
        registry.register(RegisterRequest(model_dir=first_dir, model_name="demo", uri=_uri(registry, first_dir)))
    registry.set_alias("demo", "champion", 2)
    registry.archive("demo", 1, archived=False)
    assert registry.rollback("demo", "champion").version == 1
    registry.archive("demo", 2)
    assert _num(registry.latest("demo")) == 1


def test_fork_tree_follows_parent_models_and_datasets(registry: Registry, tmp_path: Path, store: LineageStore) -> None:
    a, lin_a = _push(registry, tmp_path, "a", "r1", images=100)
    b, lin_b = _push(registry, tmp_path, "b", "r2", parent=lin_a["model"], images=150)
    # a fork into another model name, warm-started from demo:1
    c, _ = _push(registry, tmp_path, "c", "r3", parent=lin_a["model"], name="demo-night", aliases=("champion",), images=40)
    # a model warm-started from a parent that was never registered
    orphan_parent = record_training(store, "r4", make_model(tmp_path / "models" / "r4", "d"))
    d, _ = _push(registry, tmp_path, "e", "r5", parent=orphan_parent["model"], name="demo-exp", aliases=())
    roots = registry.tree()
    assert [r.model.id for r in roots] == [lin_a["model"].id, orphan_parent["model"].id]
    top = roots[0]
    assert [v.ref for v in top.versions] == ["demo:1"]
    assert top.dataset is not None and top.dataset.manifest is not None and top.dataset.manifest.properties["images"] == 100
    assert top.dataset.examples is not None and top.dataset.examples.id == lin_a["examples"].id
    assert [[v.ref for v in ch.versions] for ch in top.children] == [["demo:2"], ["demo-night:1"]]
    first = top.children[0]
    assert first.dataset is not None and first.dataset.manifest is not None and first.dataset.manifest.id == lin_b["manifest"].id
    assert first.run_id == "r2"
    assert roots[1].versions == [] and [v.ref for v in roots[1].children[0].versions] == ["demo-exp:1"]
    assert [r.model.id for r in registry.tree("demo-exp")] == [orphan_parent["model"].id]
    text = tree_text(registry)
    lines = text.splitlines()
    assert lines[0].startswith("model forks in ")
    i1 = next(i for i, line in enumerate(lines) if "demo:1 " in line)
    assert "data: Manifest #" in lines[i1] and "(100 images)" in lines[i1]
    child = next(line for line in lines if "demo:2" in line)
    fork = next(line for line in lines if "demo-night:1 [champion" in line)
    assert child.index("demo:2") > lines[i1].index("demo:1") and fork.index("demo-night") > lines[i1].index("demo:1")
    assert any("not registered" in line for line in lines)
    assert a.version.version == b.version.version - 1 and c.version.version == 1 and d.version.version == 1


def test_cli_text(registry: Registry, tmp_path: Path) -> None:
    assert list_text(registry).startswith("no versions of any model")
    _push(registry, tmp_path, "a", "r1", metrics={"map": 0.5})
    _, lin = _push(registry, tmp_path, "b", "r2", metrics={"map": 0.7123, "f1": 0.6})
    listing = list_text(registry, "demo")
    rows = [line for line in listing.splitlines() if " demo " in f" {line} "]
    assert len(rows) == 2 and "champion" in rows[1] and "map=0.7123" in rows[1] and "blessed" in rows[1]
    shown = show_text(registry, "demo@champion")
    assert "demo:2" in shown and "f1=0.6, map=0.7123" in shown and "alias history" in shown
    assert f"Model #{lin['model'].id}" in shown and "trained by run" in shown and "r2" in shown
    assert promote_text(registry, "demo:1", alias="mobile") == "demo@mobile -> version 1"
    assert promote_text(registry, "demo:1") == "demo@champion -> version 1 (was version 2)"
    assert rollback_text(registry, "demo@champion") == "demo@champion rolled back to version 2 (was version 1)"
    with pytest.raises(RegistryError, match="no earlier version"):
        rollback_text(registry, "demo", alias="mobile")
    with pytest.raises(RegistryError, match="NAME@ALIAS"):
        rollback_text(registry, "demo:1")
    registry.remove_alias("demo", "mobile")
    assert archive_text(registry, "demo:1") == "demo:1 archived"
    assert "demo:1" not in list_text(registry, "demo") and "archived" in list_text(registry, "demo", include_archived=True)
    assert archive_text(registry, "demo:1", restore=True) == "demo:1 restored"


def test_rejects_bad_input(registry: Registry, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(RegistryError, match=r"saved_model\.pb is missing"):
        registry.register(RegisterRequest(model_dir=empty, model_name="demo"))
    with pytest.raises(RegistryError, match="does not exist"):
        registry.register(RegisterRequest(model_dir=tmp_path / "nope", model_name="demo"))
    with pytest.raises(RegistryError, match="invalid model name"):
        registry.register(RegisterRequest(model_dir=make_model(tmp_path / "m", "a"), model_name="../escape"))
    assert parse_ref("demo:3") == ("demo", 3, None)
    assert parse_ref("demo@champion") == ("demo", None, "champion")
    assert parse_ref("demo") == ("demo", None, None)
    for bad in ("demo:x", "Demo:1", "demo@", ""):
        with pytest.raises(RegistryError, match="cannot read model reference"):
            parse_ref(bad)
    assert registry.versions("demo") == []
    if isinstance(registry, LocalRegistry):
        assert not (registry.root / "demo").exists() or not any(p.name.isdigit() for p in (registry.root / "demo").iterdir())


def test_get_registry(tmp_path: Path, store: LineageStore) -> None:
    local = get_registry(RegistrySpec(root=str(tmp_path / "reg")), store)
    assert isinstance(local, LocalRegistry) and local.root == (tmp_path / "reg").resolve()
    vertex = get_registry(RegistrySpec(backend="vertex", project="p", region="europe-west4"), store)
    assert isinstance(vertex, VertexRegistry) and vertex.location == "projects/p/locations/europe-west4"
    with pytest.raises(RegistryError, match=r"project and registry\.region"):
        get_registry(RegistrySpec(backend="vertex"), store)
    mlflow = get_registry(RegistrySpec(backend="mlflow", tracking_uri="http://user:secret@127.0.0.1:5000"), store)
    assert isinstance(mlflow, MLflowRegistry) and mlflow.location == "http://user@127.0.0.1:5000"
    with pytest.raises(RegistryError, match=r"registry\.tracking_uri"):
        get_registry(RegistrySpec(backend="mlflow"), store)
    # two registries sharing one store do not see each other's versions
    other = LocalRegistry(tmp_path / "other", store)
    make_model(tmp_path / "x", "x")
    local.register(RegisterRequest(model_dir=tmp_path / "x", model_name="demo"))
    assert other.versions("demo") == [] and [v.version for v in local.versions("demo")] == [1]


def test_mlflow_alias_moved_by_concurrent_pushes_lands(mlflow_uri: str, mlmd_url: str, store: LineageStore, tmp_path: Path) -> None:
    """Two pushes moving the same new alias at once: the server's upsert lets one insert fail; the call is sent again.

    Threads meet at a barrier and move fresh aliases to different versions
    on the real server; every move must succeed and each alias end on one
    of the two versions.
    """
    import threading

    registry = MLflowRegistry(mlflow_uri, store)
    one, _ = _push(registry, tmp_path, "a", "r1", aliases=())
    two, _ = _push(registry, tmp_path, "b", "r2", aliases=())
    aliases = [f"app{i}" for i in range(6)]
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def mover(version: int) -> None:
        mine = MLflowRegistry(mlflow_uri, LineageStore(mlmd_url))
        for alias in aliases:
            barrier.wait(timeout=60)
            try:
                mine.set_alias("demo", alias, version)
            except BaseException as e:  # reported below, with the alias
                errors.append(e)

    threads = [threading.Thread(target=mover, args=(v.version.version,)) for v in (one, two)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    for alias in aliases:
        assert _num(registry.holder("demo", alias)) in {1, 2}


def test_mlflow_upsert_that_lost_a_race_is_sent_again(mlflow_uri: str, store: LineageStore, tmp_path: Path, monkeypatch) -> None:
    """The server's answer when an alias insert loses (as CI saw it) is retried; other refusals are not."""
    from mlflow.exceptions import RestException

    from components.registry.mlflow_backend import UPSERT_ATTEMPTS

    registry = MLflowRegistry(mlflow_uri, store)
    _push(registry, tmp_path, "a", "r1", aliases=())
    client = registry._client()
    real = client.set_registered_model_alias
    calls: list[str] = []

    def lose_once(name: str, alias: str, version: str) -> None:
        calls.append(alias)
        if len(calls) == 1:
            raise RestException(
                {
                    "error_code": "BAD_REQUEST",
                    "message": "(sqlite3.IntegrityError) UNIQUE constraint failed: registered_model_aliases.workspace, "
                    "registered_model_aliases.name, registered_model_aliases.alias",
                }
            )
        real(name, alias, version)

    monkeypatch.setattr(client, "set_registered_model_alias", lose_once)
    move = registry.set_alias("demo", "champion", 1)
    assert calls == ["champion", "champion"] and move.version == 1
    assert _num(registry.holder("demo", "champion")) == 1

    def refuse(name: str, alias: str, version: str) -> None:
        calls.append(alias)
        raise RestException({"error_code": "BAD_REQUEST", "message": message})

    monkeypatch.setattr(client, "set_registered_model_alias", refuse)
    calls.clear()
    message = "alias name is reserved"  # any other refusal: sent once
    with pytest.raises(RegistryError, match=r"set alias failed.*reserved"):
        registry.set_alias("demo", "beta", 1)
    assert calls == ["beta"]
    calls.clear()
    message = "(sqlite3.IntegrityError) UNIQUE constraint failed"  # a race lost every time: gives up, saying so
    with pytest.raises(RegistryError, match=r"set alias failed.*UNIQUE constraint"):
        registry.set_alias("demo", "beta", 1)
    assert calls == ["beta"] * UPSERT_ATTEMPTS
    assert registry.holder("demo", "beta") is None
