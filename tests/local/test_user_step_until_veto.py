"""``--until`` a user step, and a user *component* step's veto, through the real CLI (kfp.local underneath).

A project of the test's own, written to a temporary directory: a function step
(a module on PYTHONPATH, as an installed package would be) and a lightweight
KFP component compiled here, both after ingest, then another function step.

* ``cvpipe run --until floor`` runs ingest, the function step listed before
  ``floor``, ``floor`` and its ``floor-lineage`` recorder, and nothing after:
  neither the step listed after it nor validate.
* When ``floor`` raises ``cvpipe.Veto``, its reason is in the step's line and
  the failure message of ``cvpipe run``, in ``run.json``, and in ML Metadata
  (SQLite) as the FAILED execution of ``floor`` with a ``veto`` property, as a
  function step's veto is; so ``runs list`` and the console's run page say it.
"""

# No `from __future__ import annotations`: kfp reads the component's annotations at run time.

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from kfp import compiler, dsl
from kfp.dsl import Artifact, Dataset, Input, Output

pytestmark = pytest.mark.local

REPO = Path(__file__).resolve().parents[2]

GATES = """
import cvpipe


@cvpipe.step
def count(inputs):
    return {"images": len(inputs.manifest())}
"""


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def floor(manifest: Input[Dataset], min_images: int, report: Output[Artifact]) -> None:
    """Vetoes the run when the manifest has fewer than ``min_images`` images."""
    import json

    with open(manifest.path + "/manifest.json", encoding="utf-8") as f:
        n = len(json.load(f)["images"])
    with open(report.path, "w", encoding="utf-8") as f:
        json.dump({"images": n}, f)
    if n < min_images:
        import cvpipe

        raise cvpipe.Veto(f"{n} images, fewer than {min_images}")
    print(f"{n} images")


def _spec(min_images: int) -> str:
    return f"""name: floor-test
task: detection
data: {{source: data/annotations.json}}
steps:
  - {{name: before, after: ingest, function: "my_gates:count"}}
  - {{name: floor, after: ingest, component: floor.yaml, params: {{min_images: {min_images}}}}}
  - {{name: later, after: ingest, function: "my_gates:count"}}
"""


def _cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "CVPIPE_METADATA"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(cwd)])
    return subprocess.run([sys.executable, "-m", "pipelines.cli", *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=900)


def _ran(out: str) -> dict[str, str]:
    """Step -> its final status, from ``cvpipe run``'s lines."""
    return {p[0]: p[1] for p in (line.split() for line in out.splitlines()) if len(p) > 1 and p[1] in ("SUCCESS", "FAILURE", "VETOED")}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("floor")
    (root / "my_gates.py").write_text(GATES)
    compiler.Compiler().compile(floor, str(root / "floor.yaml"))
    synth = _cli(root, "datasets", "synth", "--out", "data", "--num-images", "6", "--image-size", "64x64")
    assert synth.returncode == 0, synth.stderr
    return root


def test_until_a_user_step_runs_the_steps_before_it_and_it_then_stops(project: Path) -> None:
    (project / "passes.yaml").write_text(_spec(min_images=1))
    r = _cli(project, "run", "passes.yaml", "--until", "floor")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert _ran(r.stdout) == {"ingest": "SUCCESS", "before": "SUCCESS", "floor": "SUCCESS", "floor-lineage": "SUCCESS"}, r.stdout
    assert "stopped after floor" in r.stdout

    from components.core.lineage import LineageStore
    from components.core.spec import load_spec

    spec = load_spec(project / "passes.yaml")
    store = LineageStore.for_spec(spec.runtime.metadata, base_dir=spec.runtime.root)
    run_dir = max((project / "runs" / "floor-test").iterdir(), key=lambda p: p.stat().st_mtime)
    assert [e["component"] for e in store.executions(run_id=run_dir.name)] == ["ingest", "before", "floor"]


def test_a_component_steps_veto_reaches_the_cli_the_run_summary_and_lineage(project: Path) -> None:
    (project / "vetoes.yaml").write_text(_spec(min_images=100))
    r = _cli(project, "run", "vetoes.yaml", "--until", "validate")
    assert r.returncode == 1, r.stdout[-3000:] + r.stderr[-3000:]
    reason = "6 images, fewer than 100"
    assert _ran(r.stdout) == {"ingest": "SUCCESS", "before": "SUCCESS", "floor": "VETOED"}, r.stdout
    assert [line for line in r.stdout.splitlines() if line.startswith("floor ")][-1].endswith(reason)
    assert "vetoed by step 'floor' (after ingest): " + reason + "; nothing after it ran or was pushed" in r.stderr

    from components.core.lineage import LineageStore
    from components.core.spec import load_spec
    from pipelines.cli.runs import run_overview
    from pipelines.runners.local import find_veto

    spec = load_spec(project / "vetoes.yaml")
    store = LineageStore.for_spec(spec.runtime.metadata, base_dir=spec.runtime.root)
    run_dir = max((project / "runs" / "floor-test").iterdir(), key=lambda p: p.stat().st_mtime)
    assert json.loads((run_dir / "run.json").read_text())["veto"] == {"step": "floor", "after": "ingest", "reason": reason}
    execs = {e["component"]: e for e in store.executions(run_id=run_dir.name)}
    assert set(execs) == {"ingest", "before", "floor"}
    props = execs["floor"]["properties"]
    assert execs["floor"]["state"] == "FAILED"
    assert {k: props[k] for k in ("user_step", "component", "after", "outcome", "veto")} == {
        "user_step": True,
        "component": "floor.yaml",
        "after": "ingest",
        "outcome": "vetoed",
        "veto": reason,
    }
    assert find_veto(list(execs.values())) == {"step": "floor", "after": "ingest", "reason": reason}
    overview = run_overview(store, run_dir.name)
    assert overview["status"] == "failed" and overview["outcome"] == f"vetoed by floor: {reason}"
    # linked to what the component was given: ingest's manifest, the one artifact input it takes
    manifest = store.latest("Manifest")
    assert manifest is not None
    assert [e.artifact_id for e in store.mlmd.get_events_by_execution_ids([execs["floor"]["id"]])] == [manifest.id]
