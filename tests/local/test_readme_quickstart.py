"""The README's quick start, as written: the three-line spec on ``cvpipe datasets synth`` output pushes a model.

Runs the real CLI in subprocesses (kfp.local underneath): ``datasets synth``,
``run`` (its default output: one line per step start and end, no executor
JSON, no colour into a pipe), then ``models list`` and ``runs list``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.local

REPO = Path(__file__).resolve().parents[2]
THREE_LINES = "name: demo\ntask: detection\ndata: {source: data/annotations.json}\n"


def _cvpipe(cwd: Path, *args: str, timeout: float = 1500) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "CVPIPE_METADATA"}
    env["PYTHONPATH"] = str(REPO)
    return subprocess.run([sys.executable, "-m", "pipelines.cli", *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=timeout)


def test_three_line_spec_on_synth_output_pushes_a_model(tmp_path: Path) -> None:
    synth = _cvpipe(tmp_path, "datasets", "synth", "--out", "data", "--num-images", "60", "--image-size", "128x128")
    assert synth.returncode == 0, synth.stderr
    (tmp_path / "spec.yaml").write_text(THREE_LINES)

    run = _cvpipe(tmp_path, "run", "spec.yaml")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    out = run.stdout
    assert "\x1b[" not in out  # no colour into a pipe
    assert "parameterValues" not in out and "executorInput" not in out  # no executor JSON
    for step in ("ingest", "validate", "transform", "train", "evaluate", "push"):
        assert any(line.startswith(step) and "started" in line for line in out.splitlines()), step
        assert any(line.split()[:2] == [step, "SUCCESS"] for line in out.splitlines()), step
    assert "pushed demo:1" in out
    assert len(out.splitlines()) <= 20, out

    models = _cvpipe(tmp_path, "models", "list", "--spec", "spec.yaml")
    assert models.returncode == 0 and "demo" in models.stdout, models.stderr
    runs = _cvpipe(tmp_path, "runs", "list", "--spec", "spec.yaml")
    assert runs.returncode == 0 and "succeeded" in runs.stdout and "pushed demo:1" in runs.stdout, runs.stdout + runs.stderr
