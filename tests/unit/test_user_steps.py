"""User steps without a pipeline run: the spec's ``steps``, ``@cvpipe.step``, the step runner's veto and lineage, and what a veto prints.

The runner is exercised on a real MLMD store (SQLite) with a step function in a
module written to a temporary directory, as a user's package would be.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageEnhance
from rich.console import Console

import cvpipe
from components.core.errors import SpecError, Veto
from components.core.lineage import LineageStore
from components.core.spec import check_local_paths, load_spec, parse_spec
from components.core.step import StepContext
from components.user_step.api import StepArtifact, check_params, is_step, load_step_function
from components.user_step.core import run
from pipelines.cli.progress import StepFeed
from pipelines.cli.runs import run_overview
from pipelines.runners.local import find_veto

REPO = Path(__file__).resolve().parents[2]
BASE = {"name": "shelf", "task": "detection", "data": {"source": "data/annotations.json"}}

GATES = """
import json
import cvpipe


@cvpipe.step
def gate(inputs, limit=3, note="x"):
    n = len(json.loads(inputs["manifest"].file("manifest.json").read_text())["images"])
    (inputs.output_dir / "count.txt").write_text(str(n))
    if n > limit:
        raise cvpipe.Veto(f"{n} images, over the limit of {limit}")
    return {"images": n, "note": note, "run_id": "shadowed"}


@cvpipe.step(name="broken")
def broken(inputs):
    raise RuntimeError("the gate has a bug")


@cvpipe.step
def wrong_return(inputs):
    return ["not", "a", "mapping"]


def plain(inputs):
    return None
"""


def _spec(steps: list[dict], **extra) -> cvpipe.PipelineSpec:
    return parse_spec({**BASE, "steps": steps, **extra})


def _problems(data: dict) -> list[tuple[str, str]]:
    with pytest.raises(SpecError) as e:
        parse_spec(data)
    return e.value.problems


def test_spec_steps_are_checked_with_key_paths() -> None:
    ok = _spec([{"name": "gate", "after": "ingest", "function": "pkg.mod:fn", "params": {"limit": 3}}])
    assert ok.steps[0].params == {"limit": 3} and ok.steps[0].after == "ingest"
    problems = _problems(
        {
            **BASE,
            "steps": [
                {"name": "both", "after": "ingest", "function": "a:b", "component": "c.yaml"},
                {"name": "gate", "after": "push", "function": "a.b"},
                {"name": "Bad_Name", "after": "train", "function": "a:b"},
            ],
        }
    )
    paths = dict(problems)
    assert "exactly one of `function`" in paths["steps.0"]
    assert "'ingest', 'validate', 'transform', 'train' or 'evaluate'" in paths["steps.1.after"]
    assert paths["steps.1.function"] == "'a.b' is not \"package.module:function\""
    assert "steps.2.name" in paths
    assert (
        "taken by a built-in step"
        in dict(_problems({**BASE, "steps": [{"name": "validate", "after": "ingest", "function": "a:b"}]}))["steps.0"]
    )
    twice = [{"name": "g", "after": "ingest", "function": "a:b"}, {"name": "g", "after": "train", "function": "a:c"}]
    assert "two user steps are named 'g'" in _problems({**BASE, "steps": twice})[0][1]


def test_a_spec_without_steps_serialises_as_before_and_component_paths_resolve(tmp_path: Path) -> None:
    assert "steps" not in parse_spec(BASE).model_dump()
    (tmp_path / "spec.yaml").write_text(
        "name: shelf\ntask: detection\ndata: {source: data/annotations.json}\n"
        "steps: [{name: mine, after: validate, component: gates/component.yaml}]\n"
    )
    spec = load_spec(tmp_path / "spec.yaml")
    assert spec.steps[0].component == str(tmp_path / "gates" / "component.yaml")
    assert ("steps.0.component", f"{tmp_path / 'gates' / 'component.yaml'} does not exist") in check_local_paths(spec)


def test_the_decorator_marks_plain_functions_and_the_loader_says_what_is_wrong(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "my_gates.py").write_text(GATES)
    monkeypatch.syspath_prepend(str(tmp_path))
    fn = load_step_function("my_gates:gate")
    assert is_step(fn) and fn.__name__ == "gate"
    with pytest.raises(ValueError, match="installed in the component image"):
        load_step_function("no_such_package.gates:gate")
    with pytest.raises(ValueError, match="has no 'nope'"):
        load_step_function("my_gates:nope")
    with pytest.raises(ValueError, match=r"decorate it with @cvpipe\.step"):
        load_step_function("my_gates:plain")
    assert check_params(fn, {"limit": 2}) == []
    assert check_params(fn, {"limt": 2}) == ["unknown parameter 'limt'; gate takes limit, note"]

    @cvpipe.step
    def needs(inputs: cvpipe.StepInputs, *, threshold: float) -> None:
        return None

    assert check_params(needs, {}) == ["needs needs parameter 'threshold'; give it in params"]


def _ctx(tmp_path: Path, mlmd_url: str, step: dict, run_id: str = "run-1") -> StepContext:
    spec = _spec([step], runtime={"root": str(tmp_path / "runs"), "metadata": {"url": mlmd_url}})
    return StepContext(spec=spec, run_id=run_id, component=step["name"])


def _artifacts(tmp_path: Path, images: int) -> dict[str, StepArtifact]:
    out = {}
    for name, kind in (("manifest", "Manifest"), ("label_map", "LabelMap"), ("quarantine", "QuarantineReport")):
        d = tmp_path / "ingest" / name
        d.mkdir(parents=True)
        out[name] = StepArtifact(name=name, kind=kind, path=d, uri=str(d))
    (out["manifest"].path / "manifest.json").write_text(json.dumps({"images": [{"image_id": str(i)} for i in range(images)]}))
    return out


def test_a_step_that_passes_is_recorded_with_what_it_read_and_wrote(tmp_path: Path, mlmd_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "my_gates.py").write_text(GATES)
    monkeypatch.syspath_prepend(str(tmp_path))
    step = {"name": "gate", "after": "ingest", "function": "my_gates:gate", "params": {"limit": 5}}
    ctx = _ctx(tmp_path, mlmd_url, step)
    arts = _artifacts(tmp_path, images=4)
    manifest_ref = ctx.store.put_artifact("Manifest", arts["manifest"].uri, {"images": 4})  # as ingest records it
    result = run(ctx, arts, tmp_path / "out")
    assert result.outcome == "passed" and result.values == {"images": 4, "note": "x", "run_id": "shadowed"}
    assert (tmp_path / "out" / "count.txt").read_text() == "4"
    assert json.loads((tmp_path / "out" / "step.json").read_text())["outcome"] == "passed"

    store = LineageStore(mlmd_url)
    [ex] = store.executions(run_id="run-1")
    assert ex["component"] == "gate" and ex["state"] == "COMPLETE"
    props = ex["properties"]
    assert (
        props["function"] == "my_gates:gate"
        and props["images"] == 4
        and props["result_run_id"] == "shadowed"
        and props["run_id"] == "run-1"
    )
    graph = store.upstream(result.artifacts["output"])
    assert graph.root.artifact.kind == "StepOutput" and graph.root.execution is not None and graph.root.execution[1] == "gate"
    read = {path: node.artifact for path, node in graph.root.inputs}
    assert set(read) == {"manifest", "label_map", "quarantine"} and read["manifest"].id == manifest_ref.id


def test_a_veto_fails_the_step_with_its_reason_in_lineage_and_the_run_overview(
    tmp_path: Path, mlmd_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "my_gates.py").write_text(GATES)
    monkeypatch.syspath_prepend(str(tmp_path))
    step = {"name": "gate", "after": "ingest", "function": "my_gates:gate", "params": {"limit": 2}}
    with pytest.raises(Veto) as e:
        run(_ctx(tmp_path, mlmd_url, step), _artifacts(tmp_path, images=3), tmp_path / "out")
    assert e.value.step == "gate" and e.value.reason == "3 images, over the limit of 2"
    assert str(e.value) == "step 'gate' vetoed the run: 3 images, over the limit of 2"
    written = json.loads((tmp_path / "out" / "step.json").read_text())
    assert written["outcome"] == "vetoed" and written["reason"] == "3 images, over the limit of 2"
    store = LineageStore(mlmd_url)
    execs = store.executions(run_id="run-1")
    assert execs[0]["state"] == "FAILED" and execs[0]["properties"]["veto"] == "3 images, over the limit of 2"
    assert find_veto(execs) == {"step": "gate", "after": "ingest", "reason": "3 images, over the limit of 2"}
    overview = run_overview(store, "run-1")
    assert overview["status"] == "failed" and overview["outcome"] == "vetoed by gate: 3 images, over the limit of 2"


@pytest.mark.parametrize(
    ("function", "params", "raised", "message"),
    [
        ("my_gates:broken", {}, RuntimeError, "the gate has a bug"),
        ("my_gates:wrong_return", {}, TypeError, "returned list; return None or a mapping"),
    ],
)
def test_a_step_that_breaks_is_recorded_failed_and_its_error_raised(
    tmp_path: Path, mlmd_url: str, monkeypatch: pytest.MonkeyPatch, function: str, params: dict, raised: type, message: str
) -> None:
    (tmp_path / "my_gates.py").write_text(GATES)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(raised, match=message):
        run(
            _ctx(tmp_path, mlmd_url, {"name": "gate", "after": "ingest", "function": function, "params": params}),
            _artifacts(tmp_path, 1),
            tmp_path / "o",
        )
    [ex] = LineageStore(mlmd_url).executions(run_id="run-1")
    assert ex["state"] == "FAILED" and message in ex["properties"]["error"] and "veto" not in ex["properties"]


def test_params_that_do_not_bind_are_a_spec_error_before_the_function_runs(
    tmp_path: Path, mlmd_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "my_gates.py").write_text(GATES)
    monkeypatch.syspath_prepend(str(tmp_path))
    ctx = _ctx(tmp_path, mlmd_url, {"name": "gate", "after": "ingest", "function": "my_gates:gate", "params": {"limt": 1}})
    with pytest.raises(SpecError) as e:
        run(ctx, _artifacts(tmp_path, 1), tmp_path / "o")
    assert e.value.problems == [("steps.0.params", "unknown parameter 'limt'; gate takes limit, note")]
    assert not (tmp_path / "o" / "step.json").exists()


def test_cvpipe_run_prints_a_veto_as_its_reason_not_a_traceback() -> None:
    out = io.StringIO()
    feed = StepFeed(Console(file=out, width=200))
    for chunk in [
        "10:00:00.001 - INFO - Executing task 'near-duplicates'\n",
        "    10:00:01 cvpipe.near-duplicates: near-duplicates after ingest: calling pkg:gate(manifest)\n",
        "    10:00:02 cvpipe.near-duplicates: vetoed the run: 6 of 30 images (20%) are near-duplicates\n",
        "    Traceback (most recent call last):\n",
        "    components.core.errors.Veto: step 'near-duplicates' vetoed the run: 6 of 30 images (20%) are near-duplicates\n",
        "10:00:03.000 - ERROR - Task 'near-duplicates' finished with status FAILURE\n",
    ]:
        feed.write(chunk)
    feed.close()
    lines = out.getvalue().splitlines()
    assert lines[1].split()[:2] == ["near-duplicates", "VETOED"] and lines[1].endswith("6 of 30 images (20%) are near-duplicates")
    assert len(lines) == 2, lines


def test_the_step_api_is_public_and_lazy() -> None:
    code = (
        "import sys, cvpipe\n"
        "@cvpipe.step\n"
        "def g(inputs: cvpipe.StepInputs) -> None:\n"
        "    raise cvpipe.Veto('no')\n"
        "assert cvpipe.StepArtifact and cvpipe.UserStepSpec and issubclass(cvpipe.Veto, cvpipe.CvpipeError)\n"
        "assert 'tensorflow' not in sys.modules and 'kfp' not in sys.modules\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert r.returncode == 0, r.stderr


# -- the example project's gate (examples/user_step), on images made here ----------------------------------


@pytest.fixture
def near_duplicates(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.syspath_prepend(str(REPO / "examples" / "user_step"))
    from shelf_gates import near_duplicates

    return near_duplicates


def test_the_example_gate_finds_a_brightened_re_encoded_copy_and_not_a_different_photo(tmp_path: Path, near_duplicates) -> None:
    from skimage import data

    for name, arr in (("a.jpg", data.astronaut()), ("b.jpg", data.coffee()), ("c.jpg", data.chelsea())):
        Image.fromarray(arr).resize((128, 128)).save(tmp_path / name, quality=90)
    with Image.open(tmp_path / "a.jpg") as im:
        ImageEnhance.Brightness(im).enhance(1.05).save(tmp_path / "a-copy.jpg", quality=70)
    hashes = np.stack([near_duplicates.dhash(tmp_path / n) for n in ("a.jpg", "b.jpg", "c.jpg", "a-copy.jpg")])
    assert near_duplicates.near_duplicate_pairs(hashes, max_distance=4) == [
        (3, 0, int(near_duplicates._POPCOUNT[hashes[3] ^ hashes[0]].sum()))
    ]
    assert near_duplicates.near_duplicate_pairs(hashes[:3], max_distance=4) == []
    assert is_step(near_duplicates.near_duplicate_gate)


def test_validate_spec_warns_and_run_refuses_a_function_step_it_cannot_import_or_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from pipelines.cli import cli

    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "annotations.json").write_text('{"images": [], "annotations": [], "categories": []}')
    (tmp_path / "my_gates.py").write_text(GATES)
    (tmp_path / "spec.yaml").write_text(
        "name: shelf\ntask: detection\ndata: {source: data/annotations.json}\n"
        "steps:\n"
        "  - {name: gone, after: ingest, function: not_installed_here.gates:gate}\n"
        "  - {name: typo, after: ingest, function: my_gates:gate, params: {limt: 1}}\n"
    )
    monkeypatch.chdir(tmp_path)  # a task imports from the working directory: so does the check
    checked = CliRunner().invoke(cli, ["validate-spec", "spec.yaml"])
    assert checked.exit_code == 0, checked.output  # valid: the package may be installed only in the cluster's image
    assert "steps: gone (after ingest), typo (after ingest)" in checked.stdout
    assert "warning: steps.0.function: cannot import 'not_installed_here.gates'" in checked.stderr
    assert "warning: steps.1.params: unknown parameter 'limt'; gate takes limit, note" in checked.stderr
    ran = CliRunner().invoke(cli, ["run", "spec.yaml"])
    assert ran.exit_code == 1 and "steps.0.function: cannot import" in ran.stderr and "steps.1.params" in ran.stderr
    assert not (tmp_path / "runs").exists()  # refused before anything ran
