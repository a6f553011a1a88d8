"""examples/user_model runs as its README says: cvpipe trains, evaluates, pushes and serves the project's own model.

The real CLI in subprocesses (kfp.local underneath) on a copy of the example
project, its package importable as an installed one would be (PYTHONPATH):
``datasets synth`` (24 small images), ``run spec.yaml`` (ingest ... push, 2
epochs at 64x64 of ``shelf_models.models:build``), then ``predict`` with the
pushed model.
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
EXAMPLE = REPO / "examples" / "user_model"


def _run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "CVPIPE_METADATA"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(cwd)])
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=900)


def test_example_trains_evaluates_pushes_and_serves_the_user_model(tmp_path: Path) -> None:
    project = tmp_path / "shelf"
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns("__pycache__", "data", "runs", "README.md"))
    synth = _run(project, "-m", "pipelines.cli", "datasets", "synth", "--out", "data", "--num-images", "24", "--image-size", "64x64")
    assert synth.returncode == 0, synth.stderr

    run = _run(project, "-m", "pipelines.cli", "run", "spec.yaml")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "pushed" in run.stdout.lower(), run.stdout[-3000:]

    run_dir = max((project / "runs" / "shelf-detector").iterdir(), key=lambda p: p.stat().st_mtime)
    [info_file] = list(run_dir.rglob("model/model_info.json"))
    info = json.loads(info_file.read_text())
    assert info["architecture"] == "shelf_models.models:build" and info["epochs_run"] == 2
    assert info["model_hyperparameters"] == {"width": 24} and info["embedding_dim"] == 96
    [evaluation] = list(run_dir.rglob("evaluation.json"))
    metrics = json.loads(evaluation.read_text())["candidate"]["metrics"]
    assert 0.0 <= metrics["map_50"] <= 1.0

    served = _run(project, "-m", "pipelines.cli", "predict", "shelf-detector@champion", "data/images", "--spec", "spec.yaml")
    assert served.returncode == 0, served.stdout[-2000:] + served.stderr[-2000:]
    assert "24 predictions of shelf-detector:1 logged" in served.stdout + served.stderr
