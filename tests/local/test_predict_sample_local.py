"""predict_batch -> read_window -> sample, then import_labels, as KFP runs them (kfp.local subprocesses, no container)."""

import json
import os
import sys
from pathlib import Path

import pytest

from components.core.labelmap import LabelMap
from components.core.lineage import LineageStore
from components.core.params import context_parameter, section_parameter
from components.core.spec import parse_spec
from components.predict.logs import PredictionLog
from components.registry import RegisterRequest, get_registry
from components.sample.core import LabellingBatch
from components.sample.simulate import simulate_labels

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from predict_testdata import make_images, make_tiny_model

pytestmark = pytest.mark.local

LABELS = LabelMap.from_names(["circle", "square", "star"])


def test_components_predict_sample_and_import_in_kfp_local(tmp_path: Path, mlmd_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from kfp import dsl, local

    from components.monitor.component import import_labels, read_window, sample
    from components.predict.component import predict_batch

    monkeypatch.setenv("PATH", str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""))
    repo = str(tmp_path / "feast")
    exports = tmp_path / "exports"
    spec = parse_spec(
        {
            "name": "shapes",
            "task": "detection",
            "data": {"source": str(tmp_path / "annotations.json")},
            "registry": {"root": str(tmp_path / "registry")},
            "runtime": {"root": str(tmp_path / "runs"), "metadata": {"url": mlmd_url}},
            "monitoring": {"window": "1h", "prediction_log": repo, "labels": str(exports)},
        }
    )
    store = LineageStore(mlmd_url)
    registry = get_registry(spec.registry, store)
    registry.register(
        RegisterRequest(
            model_dir=make_tiny_model(tmp_path / "model", "detection", LABELS), model_name="shapes", blessed=True, aliases=["champion"]
        )
    )
    truth = make_images(tmp_path / "prod", 10, LABELS, "detection", seed=11)
    context, monitoring = context_parameter(spec), section_parameter(spec, "monitoring")

    @dsl.pipeline(name="predict-and-sample")
    def predict_and_sample(images: str) -> None:
        p = predict_batch(context=context, run_id="local-ce", model_ref="shapes@champion", images=images, feature_repo=repo, batch_size=4)
        win = read_window(context=context, run_id="local-ce", monitoring=monitoring).after(p)
        sample(context=context, run_id="local-ce", monitoring=monitoring, window=win.outputs["window"])

    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"), raise_on_error=True)
    predict_and_sample(images=str(tmp_path / "prod"))

    assert len(PredictionLog(repo).read_labels()) == 0
    # the batch prediction's log is the first PredictionLog recorded (read_window records the window as a second one)
    log_ref = min(store.artifacts("PredictionLog", model_name="shapes"), key=lambda a: a.id)
    assert log_ref.properties["rows"] == 10 and log_ref.properties.get("feature_repo") == str(Path(repo).resolve())
    batch_ref = store.latest("LabellingBatch")
    assert batch_ref is not None and log_ref.id in [a.id for a in store.upstream(batch_ref.id).of_kind("PredictionLog")]
    [batch_file] = list((tmp_path / "root").rglob("batch.json"))
    batch = LabellingBatch.load(batch_file)
    assert batch.batch_id == batch_ref.properties["batch_id"] and len(batch.items) == batch_ref.properties["items"] > 0

    exports.mkdir()
    (exports / "export.json").write_text(json.dumps(simulate_labels(batch, truth)))

    @dsl.pipeline(name="import-labels")
    def import_only() -> None:
        win = read_window(context=context, run_id="local-ce", monitoring=monitoring)
        import_labels(context=context, run_id="local-ce", monitoring=monitoring, window=win.outputs["window"])

    import_only()
    labels = PredictionLog(repo).read_labels()
    assert sorted(labels["image_sha256"]) == sorted(i.image_sha256 for i in batch.items)
    manifest_ref = store.latest("Manifest")
    assert manifest_ref is not None and manifest_ref.properties["images"] == len(batch.items)
    assert batch_ref.id in [a.id for a in store.upstream(manifest_ref.id).of_kind("LabellingBatch")]
