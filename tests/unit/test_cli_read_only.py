"""Read-only commands never create a metadata store; they say where they looked and how to point at the right one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _cvpipe(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if k != "CVPIPE_METADATA"}
    full.update({"PYTHONPATH": str(REPO), **(env or {})})
    return subprocess.run([sys.executable, "-m", "pipelines.cli", *args], cwd=cwd, capture_output=True, text=True, env=full, timeout=300)


@pytest.mark.parametrize("command", [["runs", "list"], ["lineage", "demo:1"]])
def test_a_read_only_command_in_another_folder_creates_nothing(tmp_path: Path, command: list[str]) -> None:
    r = _cvpipe(tmp_path, *command)
    assert r.returncode == 1, r.stdout + r.stderr
    looked = tmp_path / "runs" / "mlmd.sqlite"
    assert f"no ML Metadata store at {looked}" in r.stderr
    assert "--spec" in r.stderr and "--metadata" in r.stderr and "CVPIPE_METADATA" in r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "runs").exists()  # nothing created


def test_models_list_with_a_spec_whose_store_does_not_exist_creates_nothing(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text("name: demo\ntask: detection\ndata: {source: data/annotations.json}\n")
    r = _cvpipe(tmp_path, "models", "list", "--spec", str(spec))
    assert r.returncode == 1 and f"no ML Metadata store at {tmp_path / 'runs' / 'mlmd.sqlite'}" in r.stderr
    assert not (tmp_path / "runs").exists()


def test_the_environment_variable_points_at_the_store(tmp_path: Path) -> None:
    from components.core.lineage import LineageStore

    db = tmp_path / "elsewhere" / "mlmd.sqlite"
    LineageStore(f"sqlite:///{db}")  # a store that exists (a run created it)
    r = _cvpipe(tmp_path, "runs", "list", env={"CVPIPE_METADATA": f"sqlite:///{db}"})
    assert r.returncode == 0, r.stderr
    assert not (tmp_path / "runs").exists()
