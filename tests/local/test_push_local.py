"""The push component as KFP runs it: kfp.local runs importer -> push in subprocesses (no container)."""

import json
import os
import sys
from pathlib import Path

import pytest
from fakes.models import make_blessing, make_model

from components.core.lineage import LineageStore
from components.core.params import context_parameter
from components.core.spec import parse_spec
from components.registry import LocalRegistry

pytestmark = pytest.mark.local


def test_push_component_registers_blessed_and_refuses_unblessed(tmp_path: Path, mlmd_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from kfp import dsl, local
    from kfp.dsl import Artifact, Model

    from components.push.component import push

    monkeypatch.setenv("PATH", str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""))
    spec = parse_spec(
        {
            "name": "demo",
            "task": "detection",
            "data": {"source": str(tmp_path / "annotations.json")},
            "registry": {"root": str(tmp_path / "registry")},
            "runtime": {"root": str(tmp_path / "runs"), "metadata": {"url": mlmd_url}},
        }
    )
    model_dir = make_model(tmp_path / "model", "a")
    yes = make_blessing(tmp_path / "blessed", True, metrics={"map": 0.8})
    no = make_blessing(tmp_path / "refused", False, reasons=["map 0.1 < 0.5"])

    @dsl.pipeline(name="push-only")
    def only_push(blessing_uri: str) -> None:
        model = dsl.importer(artifact_uri=str(model_dir), artifact_class=Model, reimport=False)
        blessing = dsl.importer(artifact_uri=blessing_uri, artifact_class=Artifact, reimport=False)
        push(context=context_parameter(spec), run_id="local-run", model=model.output, blessing=blessing.output)

    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"), raise_on_error=True)
    only_push(blessing_uri=str(no))
    store = LineageStore(mlmd_url)
    registry = LocalRegistry(tmp_path / "registry", store)
    assert registry.versions("demo") == []
    refused = store.latest("PushedModel", pushed=False)
    assert refused is not None and json.loads(refused.properties["reasons"]) == ["map 0.1 < 0.5"]

    only_push(blessing_uri=str(yes))
    [v] = registry.versions("demo")
    assert v.ref == "demo:1" and v.aliases == ("champion",) and v.metrics == {"map": 0.8} and registry.verify("demo", 1)
    outputs = sorted((tmp_path / "root").rglob("push.json"))
    assert [json.loads(p.read_text())["pushed"] for p in sorted(outputs, key=lambda p: p.stat().st_mtime)] == [False, True]
