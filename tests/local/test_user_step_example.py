"""examples/user_step runs as its README says: its gates pass on clean data, and the near-duplicate gate vetoes a run.

The real CLI in subprocesses (kfp.local underneath) on a copy of the example
project, its package importable as an installed one would be (PYTHONPATH):
``datasets synth`` (24 small images), ``run --until ingest`` (both gates
pass), ``add_near_duplicates.py``, then ``run --until validate``: the gate
vetoes with its reason, validate never starts, and ``runs list`` and the
lineage store say why.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.local

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "user_step"


def _run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "CVPIPE_METADATA"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(cwd)])
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=900)


def _line(out: str, step: str, status: str) -> str:
    found = [line for line in out.splitlines() if line.split()[:2] == [step, status]]
    assert found, f"no '{step} {status}' line in:\n{out}"
    return found[0]


def test_example_gates_pass_then_the_near_duplicate_gate_vetoes(tmp_path: Path) -> None:
    project = tmp_path / "shelf"
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns("__pycache__", "data", "runs", "README.md"))
    synth = _run(project, "-m", "pipelines.cli", "datasets", "synth", "--out", "data", "--num-images", "24", "--image-size", "96x96")
    assert synth.returncode == 0, synth.stderr

    clean = _run(project, "-m", "pipelines.cli", "run", "spec.yaml", "--until", "ingest")
    assert clean.returncode == 0, clean.stdout[-3000:] + clean.stderr[-3000:]
    assert "passed: images=24, near_duplicates=0, near_duplicate_share=0" in _line(clean.stdout, "near-duplicates", "SUCCESS")
    _line(clean.stdout, "class-floor", "SUCCESS")
    assert "recorded class-floor: read manifest; wrote report" in _line(clean.stdout, "class-floor-lineage", "SUCCESS")

    added = _run(project, "add_near_duplicates.py", "data", "--count", "6")
    assert added.returncode == 0, added.stderr
    vetoed = _run(project, "-m", "pipelines.cli", "run", "spec.yaml", "--until", "validate")
    assert vetoed.returncode == 1, vetoed.stdout[-3000:] + vetoed.stderr[-3000:]
    reason = "6 of 30 images (20%) are near-duplicates, over the limit of 10%"
    assert reason in _line(vetoed.stdout, "near-duplicates", "VETOED")
    assert not any(line.startswith(("validate", "class-floor")) for line in vetoed.stdout.splitlines()), vetoed.stdout
    assert "vetoed by step 'near-duplicates' (after ingest): " + reason in vetoed.stderr
    assert "nothing after it ran or was pushed" in vetoed.stderr

    runs = _run(project, "-m", "pipelines.cli", "runs", "list", "--json", "--spec", "spec.yaml")
    assert runs.returncode == 0, runs.stderr
    outcomes = {r["outcome"] for r in json.loads(runs.stdout)}
    assert any(o.startswith("vetoed by near-duplicates: " + reason) for o in outcomes), outcomes

    from components.core.lineage import LineageStore
    from components.core.spec import load_spec

    spec = load_spec(project / "spec.yaml")
    store = LineageStore.for_spec(spec.runtime.metadata, base_dir=spec.runtime.root)
    # the clean run: the user's component is recorded too, linked to ingest's manifest and to the report it wrote
    floor_report = store.latest("StepOutput", step="class-floor", output="report")
    assert floor_report is not None and json.loads(Path(floor_report.uri).read_text())["images_per_class"]
    floor = store.upstream(floor_report.id).root
    assert floor.execution is not None and floor.execution[1] == "class-floor" and floor.execution[2]["component"] == "class_floor.yaml"
    assert {path: node.execution[1] for path, node in floor.inputs if node.execution} == {"manifest": "ingest"}
    run_dir = max((project / "runs" / "shelf-detector").iterdir(), key=lambda p: p.stat().st_mtime)
    summary = json.loads((run_dir / "run.json").read_text())
    assert summary["veto"]["step"] == "near-duplicates" and summary["veto"]["reason"].startswith(reason)
    execs = {e["component"]: e for e in store.executions(run_id=run_dir.name)}
    assert set(execs) == {"ingest", "near-duplicates"} and execs["near-duplicates"]["state"] == "FAILED"
    gate_output = store.latest("StepOutput", step="near-duplicates", outcome="vetoed")
    assert gate_output is not None
    graph = store.upstream(gate_output.id)
    read = {path: node for path, node in graph.root.inputs}
    assert read["manifest"].execution is not None and read["manifest"].execution[1] == "ingest"  # what ingest wrote
    report = json.loads((run_dir / "near-duplicates" / "output" / "near_duplicates.json").read_text())
    assert report["near_duplicates"] == 6 and {Path(p["image"]).name for p in report["pairs"]} == {f"{i:06d}-copy.jpg" for i in range(1, 7)}
