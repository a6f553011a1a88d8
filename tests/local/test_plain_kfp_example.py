"""examples/plain_kfp: a user's plain KFP pipeline of cvpipe components (no validate, two evaluations) runs with kfp.local.

Tiny data (32 images of 64x64 per store) and one epoch: the point is the wiring and the lineage, not the model.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from components.core.lineage import LineageStore

pytestmark = pytest.mark.local

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "plain_kfp"


def test_plain_kfp_pipeline_of_cvpipe_components_runs_and_records_lineage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""))
    monkeypatch.syspath_prepend(str(EXAMPLE))
    from run_shelf import run

    evaluations = run(tmp_path, images=32)

    assert set(evaluations) == {"evaluate-held-out", "evaluate-store-b"}
    held_out, store_b = evaluations["evaluate-held-out"], evaluations["evaluate-store-b"]
    assert store_b["num_images"] == 32  # every image of store B is in its test split
    assert 0 < held_out["num_images"] < 32  # store A's held-out split only
    assert {"map", "map_50"} <= set(held_out["metrics"]) and {"map", "map_50"} <= set(store_b["metrics"])

    store = LineageStore(f"sqlite:///{tmp_path / 'mlmd.sqlite'}")
    [run_id] = store.run_ids("shelf-plain")
    components = sorted(e["component"] for e in store.executions(run_id=run_id))
    assert components == ["evaluate", "evaluate", "ingest", "ingest", "train", "transform", "transform"]  # no validate
    model = store.latest("Model", pipeline="shelf-plain")
    assert model is not None
    sources = {a.uri for a in store.upstream(model.id).of_kind("RawDataset")}
    assert sources == {str(tmp_path / "data" / "store-a" / "annotations.json")}
    # each evaluation links the one model and its own test set's examples, back to its own source
    evaluated = {}
    for ev in store.artifacts("ModelEvaluation"):
        graph = store.upstream(ev.id)
        assert [m.id for m in graph.of_kind("Model")] == [model.id]
        evaluated[ev.id] = {Path(a.uri).parent.name for a in graph.of_kind("RawDataset")}
    assert sorted(map(sorted, evaluated.values())) == [["store-a"], ["store-a", "store-b"]]
