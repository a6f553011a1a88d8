"""The evaluate step end to end: real SavedModels, a real examples directory, MLMD lineage, the registry baseline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from evaluate_testdata import COLOURS, save_colour_model, write_examples

from components.core.errors import EvaluationError
from components.core.lineage import NewArtifact
from components.core.manifest import ImageRecord, Manifest
from components.core.spec import parse_spec
from components.core.step import StepContext
from components.evaluate.core import find_baseline, run


def _ctx(tmp_path: Path, task: str, evaluate: dict) -> StepContext:
    spec = parse_spec(
        {
            "name": "demo",
            "task": task,
            "data": {"source": str(tmp_path / "coco.json")},
            "evaluate": evaluate,
            "runtime": {"root": str(tmp_path), "metadata": {"url": f"sqlite:///{tmp_path / 'mlmd.sqlite'}"}},
            "registry": {"root": str(tmp_path / "registry")},
        }
    )
    return StepContext(spec=spec, run_id="run-1", component="evaluate")


def _outputs(tmp_path: Path, name: str) -> tuple[Path, Path, Path]:
    return tmp_path / name / "evaluation", tmp_path / name / "blessing", tmp_path / name / "report.html"


def test_classification_run_compares_with_the_registry_baseline(tmp_path: Path) -> None:
    classes = [1, 2, 3, 1, 2, 3, 1, 2]
    sizes = [(20, 24), (600, 600)] * 4  # small and medium images
    examples, _ = write_examples(tmp_path / "examples", "classification", classes, sizes)
    good = save_colour_model(tmp_path / "good", "classification")
    bad = save_colour_model(tmp_path / "bad", "classification", permutation=(1, 2, 0))
    ctx = _ctx(
        tmp_path,
        "classification",
        {
            "thresholds": [{"metric": "accuracy", "lower": 0.5, "change": {"direction": "higher_is_better", "absolute": 0.0}}],
            "slices": ["source.camera"],
        },
    )
    # lineage upstream of the examples: the manifest user slices come from
    store = ctx.store
    manifest = Manifest(
        task="classification",
        root=str(tmp_path),
        label_map=COLOURS,
        images=[
            ImageRecord(image_id=f"img{i}", path=f"img{i}.png", sha256="0" * 64, width=w, height=h, source={"camera": "ab"[i % 2]})
            for i, (h, w) in enumerate(sizes)
        ],
    )
    manifest.save(tmp_path / "manifest" / "manifest.json")
    m_ref = store.put_artifact("Manifest", str(tmp_path / "manifest"))
    store.record_execution(
        "transform",
        pipeline="demo",
        run_id="run-0",
        inputs={"manifest": m_ref},
        outputs={"examples": NewArtifact("Examples", str(examples))},
    )
    # the registry: version 1 (the bad model) is the latest blessed one; version 2 is not blessed
    assert find_baseline(ctx) is None
    from components.registry import get_registry
    from components.registry.base import RegisterRequest

    registry = get_registry(ctx.spec.registry, store)
    v1 = registry.register(RegisterRequest(model_dir=bad, model_name="demo", blessed=True)).version
    registry.register(RegisterRequest(model_dir=good, model_name="demo", blessed=False))
    assert find_baseline(ctx) == (v1.model_dir, "demo:1")

    ev_dir, bl_dir, report = _outputs(tmp_path, "a")
    result = run(ctx, good, examples, ev_dir, bl_dir, report)
    assert result.candidate.metrics["accuracy"] == 1.0
    assert result.baseline is not None and result.baseline.metrics["accuracy"] == 0.0
    assert result.blessing.blessed and result.blessing.baseline_id == "demo:1"
    change = result.blessing.thresholds[1]
    assert change.kind == "change" and change.baseline_value == 0.0 and change.passed
    # slices: per class, per image size, per manifest source field
    names = {s.name for s in result.candidate.slices}
    assert {"class=red", "image_size=small", "image_size=medium", "source.camera=a", "source.camera=b"} <= names
    # files
    saved = json.loads((ev_dir / "evaluation.json").read_text())
    assert saved["candidate"]["metrics"]["accuracy"] == 1.0 and saved["baseline"]["metrics"]["accuracy"] == 0.0
    blessing = json.loads((bl_dir / "blessing.json").read_text())
    assert blessing["blessed"] is True and blessing["baseline_id"] == "demo:1"
    assert "BLESSED" in report.read_text() and result.paths["report"] == report
    assert result.scalars["accuracy"] == 1.0 and result.confusion[0] == ["red", "green", "blue"]
    # lineage: one execution, model + examples + baseline in, evaluation + blessing out
    [ex] = store.executions(run_id="run-1", component="evaluate")
    outs = {a.kind: a for a in store.artifacts_of_run("run-1")}
    assert outs["ModelBlessing"].properties["blessed"] is True and outs["ModelBlessing"].properties["baseline_id"] == "demo:1"
    graph = store.upstream(outs["ModelBlessing"].id)
    assert {k for k, _ in graph.root.inputs} == {"model", "examples", "baseline_model"}
    assert ex["properties"]["blessed"] is True

    # the other way round: the bad model as candidate fails both thresholds
    ev2, bl2, rep2 = _outputs(tmp_path, "b")
    worse = run(ctx, bad, examples, ev2, bl2, rep2, baseline_model_dir=good, baseline_id="demo:2")
    assert not worse.blessing.blessed
    assert [r.passed for r in worse.blessing.thresholds] == [False, False]
    assert "NOT BLESSED" in rep2.read_text()


def test_detection_and_segmentation_runs_without_baseline(tmp_path: Path) -> None:
    classes = [1, 3, 2, 2]
    sizes = [(40, 60), (32, 32), (50, 40), (30, 30)]
    det_examples, _ = write_examples(tmp_path / "det", "detection", classes, sizes)
    det_model = save_colour_model(tmp_path / "det_model", "detection")
    ctx = _ctx(tmp_path, "detection", {"thresholds": []})
    ev_dir, bl_dir, report = _outputs(tmp_path, "det_out")
    result = run(ctx, det_model, det_examples, ev_dir, bl_dir, report, lookup_baseline=False)
    assert result.candidate.metrics["map_50"] == pytest.approx(1.0)
    assert result.candidate.metrics["map_large"] is None  # no large objects: undefined, not -1
    assert result.baseline is None
    # no change threshold in the spec: the default (not worse than the champion on map); no champion: blessed
    assert result.blessing.blessed
    assert [(t.metric, t.kind, t.skipped) for t in result.blessing.thresholds] == [("map", "change", True)]
    assert "default blessing" in result.blessing.reasons[0] and "no champion" in result.blessing.reasons[-1]
    assert result.confusion[0] == ["background", "red", "green", "blue"]
    assert report.read_text().count("data:image/png;base64,") >= 3

    # twice the model's input size: the 2-pixel border survives the resize to 16x16 and back exactly
    seg_examples, _ = write_examples(tmp_path / "seg", "segmentation", classes, [(32, 32)] * 4)
    seg_model = save_colour_model(tmp_path / "seg_model", "segmentation")
    seg_ctx = _ctx(tmp_path, "segmentation", {"thresholds": [{"metric": "mean_iou", "lower": 0.9}]})
    ev_dir, bl_dir, report = _outputs(tmp_path, "seg_out")
    seg = run(seg_ctx, seg_model, seg_examples, ev_dir, bl_dir, report, lookup_baseline=False)
    assert seg.candidate.metrics["mean_iou"] == pytest.approx(1.0)
    assert seg.blessing.blessed

    # the wrong kind of model, and an empty test split
    with pytest.raises(EvaluationError, match="is a segmentation model; the pipeline's task is detection"):
        run(ctx, seg_model, det_examples, ev_dir, bl_dir, report, lookup_baseline=False)
    empty, _ = write_examples(tmp_path / "empty", "detection", [], [])
    with pytest.raises(EvaluationError, match="test split is empty"):
        run(ctx, det_model, empty, ev_dir, bl_dir, report, lookup_baseline=False)


def test_default_blessing_compares_with_the_champion_on_the_primary_metric(tmp_path: Path) -> None:
    examples, _ = write_examples(tmp_path / "examples", "classification", [1, 2, 3, 1, 2, 3], [(20, 24)] * 6)
    good = save_colour_model(tmp_path / "good", "classification")
    bad = save_colour_model(tmp_path / "bad", "classification", permutation=(1, 2, 0))
    # the README's case: the only threshold is a value threshold that anything passes
    ctx = _ctx(tmp_path, "classification", {"thresholds": [{"metric": "accuracy", "lower": 0.0}]})
    from components.registry import get_registry
    from components.registry.base import RegisterRequest

    registry = get_registry(ctx.spec.registry, ctx.store)
    registry.register(RegisterRequest(model_dir=good, model_name="demo", blessed=True))
    registry.set_alias("demo", "champion", 1)
    registry.register(RegisterRequest(model_dir=bad, model_name="demo", blessed=True))  # newer, but not the champion
    found = find_baseline(ctx)
    assert found is not None and found[1] == "demo:1"

    ev_dir, bl_dir, report = _outputs(tmp_path, "worse")
    worse = run(ctx, bad, examples, ev_dir, bl_dir, report)
    assert not worse.blessing.blessed and worse.blessing.baseline_id == "demo:1"
    default = worse.blessing.thresholds[-1]
    assert (default.metric, default.kind, default.baseline_value, default.value, default.passed) == ("accuracy", "change", 1.0, 0.0, False)
    assert "default blessing" in worse.blessing.reasons[0] and "champion" in worse.blessing.reasons[0]

    ev_dir, bl_dir, report = _outputs(tmp_path, "equal")
    equal = run(ctx, good, examples, ev_dir, bl_dir, report)
    assert equal.blessing.blessed  # not worse is enough

    # a spec that states its own change threshold keeps it, and no default is added
    own = _ctx(tmp_path, "classification", {"thresholds": [{"metric": "top_5_accuracy", "change": {"absolute": 0.5}}]})
    ev_dir, bl_dir, report = _outputs(tmp_path, "own")
    mine = run(own, bad, examples, ev_dir, bl_dir, report)
    assert [t.metric for t in mine.blessing.thresholds] == ["top_5_accuracy"]
