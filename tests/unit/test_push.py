"""The push step: blessed models are registered and take the spec's alias; others are recorded as not pushed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fakes.models import make_blessing, make_model, record_training

from components.core.errors import RegistryError
from components.core.io import read_json
from components.core.spec import parse_spec
from components.core.step import StepContext
from components.push import PUSH_FILE, read_blessing, run
from components.registry import LocalRegistry, ModelVersion, get_registry
from components.registry.cli_ops import open_registry, rollback_text


def _num(v: ModelVersion | None) -> int | None:
    return v.version if v is not None else None


def _ctx(tmp_path: Path, mlmd_url: str, run_id: str, alias: str = "champion") -> StepContext:
    spec = parse_spec(
        {
            "name": "demo",
            "task": "detection",
            "data": {"source": str(tmp_path / "data" / "annotations.json")},
            "registry": {"backend": "local", "root": str(tmp_path / "registry"), "alias": alias},
            "runtime": {"root": str(tmp_path / "runs"), "metadata": {"url": mlmd_url}},
        }
    )
    return StepContext(spec=spec, run_id=run_id, component="push")


def _run(tmp_path: Path, mlmd_url: str, run_id: str, seed: str, blessed: bool, **kw):
    ctx = _ctx(tmp_path, mlmd_url, run_id, **kw)
    model_dir = make_model(tmp_path / run_id / "model", seed)
    lin = record_training(ctx.store, run_id, model_dir, blessed=blessed)
    blessing_dir = make_blessing(
        tmp_path / run_id / "blessing",
        blessed,
        metrics={"map": 0.7 if blessed else 0.2},
        reasons=[] if blessed else ["map 0.2 < lower bound 0.5", "map dropped 0.5 against baseline #3"],
    )
    uris = {"model": str(model_dir), "blessing": f"/runs/{run_id}/blessing", "pushed": str(tmp_path / run_id / "pushed")}
    pushed_dir = tmp_path / run_id / "pushed"
    pushed_dir.mkdir(parents=True)
    return ctx, lin, run(ctx, model_dir, blessing_dir, pushed_dir, uris), pushed_dir


def test_blessed_model_is_pushed_and_takes_the_alias(tmp_path: Path, mlmd_url: str) -> None:
    ctx, lin, result, pushed_dir = _run(tmp_path, mlmd_url, "r1", "a", blessed=True)
    assert result.pushed and result.created and result.version is not None
    v = result.version
    assert v.ref == "demo:1" and v.aliases == ("champion",) and v.metrics == {"map": 0.7}
    assert v.artifact_id == lin["model"].id and v.blessing_id == lin["blessing"].id
    assert (tmp_path / "registry" / "demo" / "1" / "saved_model" / "saved_model.pb").is_file()
    out = read_json(pushed_dir / PUSH_FILE)
    assert out["pushed"] is True and out["ref"] == "demo:1" and out["aliases"] == ["champion"] and out["created"] is True
    # one execution for the step, reading the model and the blessing, writing the PushedModel
    execs = ctx.store.executions(run_id="r1", component="push")
    assert len(execs) == 1 and execs[0]["properties"]["pushed"] is True
    assert result.artifacts["pushed"].id == v.pushed_id
    upstream = {a.id for a in ctx.store.upstream(v.pushed_id).artifacts()}
    assert {lin["model"].id, lin["blessing"].id} <= upstream
    # the training engineer's warm start and the evaluator's baseline
    registry = get_registry(ctx.spec.registry, ctx.store)
    assert registry.resolve("demo@champion").model_dir == v.model_dir
    assert open_registry(ctx.spec).resolve("demo:1").pushed_id == v.pushed_id  # what the CLI opens
    assert _num(registry.latest("demo", blessed_only=True)) == 1


def test_not_blessed_is_recorded_with_reasons_and_succeeds(tmp_path: Path, mlmd_url: str) -> None:
    ctx, _lin, result, pushed_dir = _run(tmp_path, mlmd_url, "r1", "a", blessed=False)
    assert not result.pushed and result.version is None
    assert result.reasons == ["map 0.2 < lower bound 0.5", "map dropped 0.5 against baseline #3"]
    out = read_json(pushed_dir / PUSH_FILE)
    assert out == {
        "pushed": False,
        "reasons": result.reasons,
        **{k: out[k] for k in ("model_name", "registry", "backend", "source_model_id")},
    }
    rec = result.artifacts["pushed"]
    assert rec.kind == "PushedModel" and rec.properties["pushed"] is False and rec.uri == str(pushed_dir)
    assert json.loads(rec.properties["reasons"]) == result.reasons
    registry = get_registry(ctx.spec.registry, ctx.store)
    assert registry.versions("demo") == [] and registry.latest("demo", blessed_only=True) is None
    assert not (tmp_path / "registry" / "demo").exists()
    assert len(ctx.store.executions(run_id="r1", component="push")) == 1


def test_runs_move_the_alias_and_rollback(tmp_path: Path, mlmd_url: str) -> None:
    _run(tmp_path, mlmd_url, "r1", "a", blessed=True)
    _run(tmp_path, mlmd_url, "r2", "b", blessed=False)
    ctx, _, r3, _ = _run(tmp_path, mlmd_url, "r3", "c", blessed=True)
    assert r3.version is not None and r3.version.ref == "demo:2"
    assert [(m.alias, m.previous, m.version) for m in r3.moves] == [("champion", 1, 2)]
    registry = get_registry(ctx.spec.registry, ctx.store)
    assert rollback_text(registry, "demo") == "demo@champion rolled back to version 1 (was version 2)"
    # another application pins its own alias through its own spec
    _, _, r4, _ = _run(tmp_path, mlmd_url, "r4", "d", blessed=True, alias="mobile")
    assert r4.version is not None and r4.version.aliases == ("mobile",)
    assert registry.resolve("demo@champion").version == 1 and registry.resolve("demo@mobile").version == 3


def test_pushing_the_same_model_again_finds_its_version(tmp_path: Path, mlmd_url: str) -> None:
    ctx, lin, _first, _pushed_dir = _run(tmp_path, mlmd_url, "r1", "a", blessed=True)
    blessing_dir = tmp_path / "r1" / "blessing"
    again_dir = tmp_path / "again"
    again_dir.mkdir()
    again = run(ctx, Path(lin["model"].uri), blessing_dir, again_dir, {"model": lin["model"].uri, "blessing": "/runs/r1/blessing"})
    assert again.pushed and not again.created and again.version is not None and again.version.version == 1
    assert read_json(again_dir / PUSH_FILE)["created"] is False
    registry = LocalRegistry(tmp_path / "registry", ctx.store)
    assert [v.version for v in registry.versions("demo")] == [1]
    execs = ctx.store.executions(run_id="r1", component="push")
    assert len(execs) == 2 and execs[1]["properties"]["deduplicated"] is True


def test_unreadable_blessing_fails_clearly(tmp_path: Path, mlmd_url: str) -> None:
    (tmp_path / "b1").mkdir()
    with pytest.raises(RegistryError, match="cannot read the blessing"):
        read_blessing(tmp_path / "b1")
    (tmp_path / "b1" / "blessing.json").write_text("{not json")
    with pytest.raises(RegistryError, match="not valid JSON"):
        read_blessing(tmp_path / "b1")
    (tmp_path / "b1" / "blessing.json").write_text('{"blessed": "yes"}')
    with pytest.raises(RegistryError, match="boolean 'blessed'"):
        read_blessing(tmp_path / "b1")
    b = read_blessing(make_blessing(tmp_path / "b2", True, metrics={"map": 1, "ok": True}))  # type: ignore[dict-item]
    assert b.blessed and b.metrics == {"map": 1.0}


def test_component_interface() -> None:
    from components.push.component import push

    spec = push.component_spec
    assert set(spec.inputs) == {"context", "run_id", "monitoring", "model", "blessing"}
    assert spec.inputs["model"].type == "system.Model@0.0.1" and spec.inputs["blessing"].type == "system.Artifact@0.0.1"
    assert set(spec.outputs) == {"pushed"}
    assert "from components.push.core import run" in spec.implementation.container.command[-1]
