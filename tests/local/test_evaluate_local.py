"""The evaluate component as KFP runs it: kfp.local runs importer -> evaluate in a subprocess (no container)."""

import json
import os
import sys
from pathlib import Path

import pytest

from components.core.lineage import LineageStore

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from evaluate_testdata import save_colour_model, write_examples

pytestmark = pytest.mark.local


def test_evaluate_component_writes_blessing_metrics_and_report(tmp_path: Path, mlmd_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from kfp import dsl, local
    from kfp.dsl import Dataset, Model

    from components.evaluate.component import evaluate

    monkeypatch.setenv("PATH", str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""))
    examples, _ = write_examples(tmp_path / "examples", "detection", [1, 2, 3, 1], [(40, 40), (32, 48), (64, 64), (30, 30)])
    model = save_colour_model(tmp_path / "model", "detection")
    # no whole spec: the pipeline context and the evaluate section, as plain dicts
    context = {"name": "demo", "task": "detection", "runtime": {"root": str(tmp_path / "runs"), "metadata": {"url": mlmd_url}}}

    @dsl.pipeline(name="evaluate-only")
    def only_evaluate() -> None:
        m = dsl.importer(artifact_uri=str(model), artifact_class=Model, reimport=False)
        e = dsl.importer(artifact_uri=str(examples), artifact_class=Dataset, reimport=False)
        evaluate(
            context=context,
            run_id="local-run",
            evaluate={"thresholds": [{"metric": "map_50", "lower": 0.5}]},
            model=m.output,
            examples=e.output,
        )

    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"), raise_on_error=True)
    only_evaluate()
    [blessing] = list((tmp_path / "root").rglob("blessing.json"))
    assert json.loads(blessing.read_text())["blessed"] is True
    [executor] = list((tmp_path / "root").rglob("evaluate/executor_output.json"))
    artifacts = json.loads(executor.read_text())["artifacts"]
    metrics = artifacts["metrics"]["artifacts"][0]["metadata"]
    assert metrics["map_50"] == pytest.approx(1.0) and metrics["blessed"] == 1.0
    matrix = artifacts["classification_metrics"]["artifacts"][0]["metadata"]["confusionMatrix"]
    assert [s["displayName"] for s in matrix["annotationSpecs"]] == ["background", "red", "green", "blue"]
    report = next((tmp_path / "root").rglob("evaluate/report"))
    assert report.is_file() and "BLESSED" in report.read_text()
    store = LineageStore(mlmd_url)
    [ex] = store.executions(run_id="local-run", component="evaluate")
    assert ex["properties"]["blessed"] is True
