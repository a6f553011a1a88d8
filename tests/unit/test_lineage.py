from __future__ import annotations

import pytest

from components.core.errors import LineageError
from components.core.lineage import LineageStore, NewArtifact, connection_config


def _chain(store: LineageStore, run: str, parent=None):
    src = store.put_artifact("RawDataset", "/data/annotations.json", {"images": 12})
    ing = store.record_execution(
        "ingest",
        pipeline="demo",
        run_id=run,
        inputs={"source": src},
        outputs={
            "manifest": NewArtifact("Manifest", f"/{run}/manifest", {"images": 11}),
            "label_map": NewArtifact("LabelMap", f"/{run}/lm", {"version": 1}),
        },
    )
    ex = store.record_execution(
        "transform",
        pipeline="demo",
        run_id=run,
        inputs={"manifest": ing["manifest"]},
        outputs={"examples": NewArtifact("Examples", f"/{run}/ex")},
    )
    model = store.record_execution(
        "train",
        pipeline="demo",
        run_id=run,
        inputs={"examples": ex["examples"], "label_map": ing["label_map"], "parent_model": parent},
        outputs={
            "model": NewArtifact("Model", f"/{run}/model", {"model_name": "demo", "val_loss": 0.5, "tags": ["a", "b"], "blessed": True})
        },
    )
    return ing, ex, model["model"]


def test_record_and_walk_upstream(mlmd_url: str) -> None:
    store = LineageStore(mlmd_url)
    _ing, _ex, model = _chain(store, "r1")
    assert model.properties == {"model_name": "demo", "val_loss": 0.5, "tags": '["a", "b"]', "blessed": True}
    graph = store.upstream(model.id)
    kinds = sorted(a.kind for a in graph.artifacts())
    assert kinds == ["Examples", "LabelMap", "Manifest", "Model", "RawDataset"]
    assert graph.root.execution is not None and graph.root.execution[1] == "train"
    assert graph.root.execution[2]["run_id"] == "r1"
    text = graph.render()
    assert "Model #" in text and "<- train" in text and "<- ingest" in text and "source: RawDataset" in text


def test_parent_model_and_runs(mlmd_url: str) -> None:
    store = LineageStore(mlmd_url)
    _, _, m1 = _chain(store, "r1")
    _, _, m2 = _chain(store, "r2", parent=m1)
    graph = store.upstream(m2.id)
    assert m1.id in [a.id for a in graph.of_kind("Model")]
    assert store.run_ids("demo") == ["r1", "r2"]
    assert [e["component"] for e in store.executions(run_id="r2")] == ["ingest", "transform", "train"]
    assert all(e["state"] == "COMPLETE" for e in store.executions(run_id="r2"))
    assert {a.kind for a in store.artifacts_of_run("r1")} >= {"Manifest", "Examples", "Model"}
    assert store.latest("Model", model_name="demo").id == m2.id
    assert m2.id in store.downstream_ids(m1.id)


def test_store_persists_across_processes_and_lookup_by_uri(mlmd_url: str) -> None:
    store = LineageStore(mlmd_url)
    _chain(store, "r1")
    again = LineageStore(mlmd_url)
    found = again.find_by_uri("/r1/manifest")
    assert found is not None and found.kind == "Manifest" and found.properties["images"] == 11
    assert again.find_by_uri("/nope") is None
    updated = again.update_properties(found.id, {"images": 10, "note": "x"})
    assert updated.properties["images"] == 10 and updated.properties["note"] == "x"


def test_errors(mlmd_url: str) -> None:
    store = LineageStore(mlmd_url)
    with pytest.raises(LineageError, match="unknown artifact kind"):
        store.put_artifact("Bogus", "/x")
    with pytest.raises(LineageError, match="no artifact with id 999"):
        store.get(999)
    with pytest.raises(LineageError, match="unsupported metadata URL"):
        connection_config("postgres://x")


def test_mysql_url_parsing() -> None:
    cfg = connection_config("mysql://ml@10.0.0.5:3307/mlmd", password="secret")  # never inside the URL
    assert (cfg.mysql.host, cfg.mysql.port, cfg.mysql.database, cfg.mysql.user, cfg.mysql.password) == (
        "10.0.0.5",
        3307,
        "mlmd",
        "ml",
        "secret",
    )
