"""The predict -> sample -> (people) -> import loop end to end, with lineage, on a tiny real model and a real Feast repository."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

from predict_testdata import make_images, make_tiny_model

from components.core.labelmap import LabelMap
from components.core.manifest import Manifest
from components.core.quarantine import QuarantineReport
from components.core.spec import parse_spec
from components.core.step import StepContext
from components.predict.core import PREDICT_FILE
from components.predict.core import run as predict_run
from components.predict.logs import PredictionLog
from components.registry import RegisterRequest, get_registry
from components.sample.core import LabellingBatch, SamplingConfig, run, run_import, sampling_config
from components.sample.simulate import simulate_labels

LABELS = LabelMap.from_names(["circle", "square", "star"])


def _ctx(tmp_path: Path, mlmd_url: str, component: str) -> StepContext:
    spec = parse_spec(
        {
            "name": "shapes",
            "task": "detection",
            "data": {"source": str(tmp_path / "annotations.json")},
            "registry": {"root": str(tmp_path / "registry")},
            "runtime": {"root": str(tmp_path / "runs"), "metadata": {"url": mlmd_url}},
        }
    )
    return StepContext(spec=spec, run_id="ce-run", component=component)


def test_predict_sample_label_import_loop_with_lineage(tmp_path: Path, mlmd_url: str) -> None:
    ctx = _ctx(tmp_path, mlmd_url, "predict_batch")
    registry = get_registry(ctx.spec.registry, ctx.store)
    model_dir = make_tiny_model(tmp_path / "model", "detection", LABELS, model_name="shapes")
    registry.register(RegisterRequest(model_dir=model_dir, model_name="shapes", blessed=True, aliases=["champion"]))
    truth = make_images(tmp_path / "production", 24, LABELS, "detection", seed=7)
    (tmp_path / "production" / "broken.jpg").write_bytes(b"not an image")
    repo = tmp_path / "feast"

    predicted = predict_run(ctx, "shapes@champion", str(tmp_path / "production"), repo, tmp_path / "out" / "predict", batch_size=8)
    assert len(predicted.rows) == 24 and [i.kind for i in predicted.quarantine.items] == ["undecodable_image"]
    summary = json.loads((tmp_path / "out" / "predict" / PREDICT_FILE).read_text())
    assert summary["predictions"] == 24 and summary["model_version"] == 1 and summary["rejected"] == 1
    assert QuarantineReport.load(tmp_path / "out" / "predict").items[0].file.endswith("broken.jpg")
    log_ref = predicted.artifacts["prediction_log"]
    assert log_ref.kind == "PredictionLog" and log_ref.properties["rows"] == 24
    assert ctx.store.upstream(log_ref.id).of_kind("PushedModel")  # the registry version it came from

    cfg = SamplingConfig(per_class=3, uncertain=4, random_share=0.25, max_items=16, seed=0)
    sampled = run(
        _ctx(tmp_path, mlmd_url, "sample"),
        repo,
        "shapes@champion",
        tmp_path / "out" / "batch",
        window=timedelta(hours=1),
        config=cfg,
    )
    batch = LabellingBatch.load(tmp_path / "out" / "batch")
    assert batch == sampled.batch and batch.task == "detection" and batch.label_map == LABELS
    assert batch.window_images == 24 and 0 < len(batch.items) <= 16 and batch.counts()["random"] == 4
    assert {p.name for p in (tmp_path / "out" / "batch").iterdir()} == {
        "batch.json",
        "tasks.json",
        "label_config.xml",
        "predictions_coco.json",
    }
    batch_ref = sampled.artifacts["batch"]
    assert batch_ref.kind == "LabellingBatch" and batch_ref.properties["batch_id"] == batch.batch_id
    assert log_ref.id in [a.id for a in ctx.store.upstream(batch_ref.id).of_kind("PredictionLog")]

    export = simulate_labels(batch, truth, completed_at=datetime.now(UTC) + timedelta(seconds=1))
    export[0]["annotations"][0]["result"][0]["value"]["rectanglelabels"] = ["hexagon"]
    (tmp_path / "export.json").write_text(json.dumps(export))
    imported = run_import(
        _ctx(tmp_path, mlmd_url, "import_labels"),
        tmp_path / "export.json",
        tmp_path / "out" / "batch",
        repo,
        tmp_path / "out" / "labelled",
        tmp_path / "out" / "quarantine",
        uris={"batch": batch_ref.uri},
    )
    assert len(imported.labels.labels) == len(batch.items) - 1
    assert QuarantineReport.load(tmp_path / "out" / "quarantine").by_kind()["unknown_class"] == 1
    manifest = Manifest.load(tmp_path / "out" / "labelled" / "manifest.json")
    assert len(manifest.images) == len(batch.items) - 1
    manifest_ref = imported.artifacts["manifest"]
    assert batch_ref.id in [a.id for a in ctx.store.upstream(manifest_ref.id).of_kind("LabellingBatch")]

    # the labels join the logged predictions through Feast, each with its stratum
    joined = PredictionLog(repo).joined(
        batch.window_start, batch.window_end, model_name="shapes", as_of=datetime.now(UTC) + timedelta(minutes=5)
    )
    labelled = joined[joined["labelled"]].set_index("image_sha256")
    assert len(labelled) == len(batch.items) - 1
    for item in batch.items[1:]:
        assert labelled.loc[item.image_sha256, "stratum"] == item.stratum
        assert labelled.loc[item.image_sha256, "labelling_batch_id"] == batch.batch_id

    # a second draw skips what people already labelled, except in the random share
    again = run(
        _ctx(tmp_path, mlmd_url, "sample"), repo, "shapes@champion", tmp_path / "out" / "batch2", window=timedelta(hours=1), config=cfg
    )
    done = set(labelled.index)
    assert not any(i.image_sha256 in done for i in again.batch.items if i.stratum != "random")


def test_sampling_configuration_comes_from_the_spec_monitoring_section_when_present() -> None:
    assert sampling_config(SimpleNamespace(monitoring=None)) == SamplingConfig()
    assert sampling_config(SimpleNamespace()) == SamplingConfig()
    sampling = SimpleNamespace(per_class=0, uncertain=2, random_share=0.1, max_items=5, seed=9)
    got = sampling_config(SimpleNamespace(monitoring=SimpleNamespace(sampling=sampling)))
    assert got == SamplingConfig(per_class=0, uncertain=2, random_share=0.1, max_items=5, seed=9)
