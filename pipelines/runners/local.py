"""Run a pipeline on this machine with kfp.local (the embedded orchestrator).

Each task runs as a subprocess of the current Python environment
(``SubprocessRunner(use_venv=False)``): no container, no cluster, no pip at run
time. A run's outputs stay under ``<runtime.root>/<pipeline>/<run id>/``,
one folder per task, and its lineage goes to the spec's MLMD store, from which
the run summary is built.
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from components.core.errors import PipelineRunError
from components.core.io import atomic_write_json
from components.core.lineage import ArtifactRef, LineageStore
from components.core.spec import PipelineSpec, resolve_paths

__all__ = ["RunSummary", "run_local"]


@dataclass
class RunSummary:
    """What one local run did.

    Attributes:
        run_id: the run id (KFP job name).
        run_dir: the folder holding the run's outputs.
        succeeded: whether every task succeeded.
        seconds: wall time.
        steps: per executed step: component, state, duration and properties.
        artifacts: artifacts the run recorded in MLMD.
        error: the failure message, if any.
    """

    run_id: str
    run_dir: Path
    succeeded: bool
    seconds: float
    steps: list[dict[str, Any]] = field(default_factory=list)
    artifacts: list[ArtifactRef] = field(default_factory=list)
    error: str | None = None

    def artifact(self, kind: str) -> ArtifactRef | None:
        """The last artifact of a kind this run produced, or None."""
        found = [a for a in self.artifacts if a.kind == kind]
        return found[-1] if found else None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "run_id": self.run_id,
            "run_dir": str(self.run_dir),
            "succeeded": self.succeeded,
            "seconds": round(self.seconds, 2),
            "error": self.error,
            "steps": self.steps,
            "artifacts": [{"id": a.id, "kind": a.kind, "uri": a.uri, "properties": a.properties} for a in self.artifacts],
        }


def _new_dirs(root: Path, before: set[str], name: str) -> list[Path]:
    if not root.is_dir():
        return []
    return sorted(
        (p for p in root.iterdir() if p.is_dir() and p.name.startswith(name + "-") and p.name not in before),
        key=lambda p: p.stat().st_mtime,
    )


def run_local(
    spec: PipelineSpec, until: str | None = None, base_dir: str | os.PathLike[str] | None = None, pipeline: str = "training"
) -> RunSummary:
    """Runs the training (or continuous-evaluation) pipeline of a spec with kfp.local.

    Args:
        spec: the pipeline spec; relative paths are resolved against ``base_dir``.
        until: last step to run; None for the whole pipeline.
        base_dir: directory relative paths in the spec are resolved against (default: the working directory).
        pipeline: ``training`` or ``continuous-eval`` (the spec's ``monitoring`` section; its
            run folders go under ``<runtime.root>/<name>-continuous-eval/``).

    Returns:
        The run summary (also written to ``<run dir>/run.json``).

    Raises:
        PipelineRunError: a task failed; the message names the step and the run folder.
    """
    from kfp import local

    from ..compiler import build_pipeline, pipeline_display_name

    spec = resolve_paths(spec, base_dir or os.getcwd())
    name = pipeline_display_name(spec, pipeline)
    pipeline_root = Path(spec.runtime.root) / name
    pipeline_root.mkdir(parents=True, exist_ok=True)
    # Tasks are subprocesses; make anything that calls `python3` find this environment.
    bin_dir = str(Path(sys.executable).parent)
    if not os.environ.get("PATH", "").startswith(bin_dir + os.pathsep):
        os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")
    # kfp.local warns that the cvpipe image is "non-Python"; the subprocess runner uses this environment by design.
    warnings.filterwarnings("ignore", message="You may be attemping to run a task", category=RuntimeWarning)
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(pipeline_root), raise_on_error=True)
    pipeline_func = build_pipeline(spec, pipeline, until=until)
    before = {p.name for p in pipeline_root.iterdir()}
    start = time.monotonic()
    error: str | None = None
    try:
        pipeline_func()
    except RuntimeError as e:
        error = str(e)
    seconds = time.monotonic() - start
    new = _new_dirs(pipeline_root, before, name)
    if not new:
        raise PipelineRunError(f"pipeline {name} did not start: {error or 'no run folder was created'}")
    run_dir = new[-1]
    run_id = run_dir.name
    store = LineageStore.for_spec(spec.runtime.metadata, base_dir=spec.runtime.root)
    steps = store.executions(run_id=run_id)
    summary = RunSummary(
        run_id=run_id,
        run_dir=run_dir,
        succeeded=error is None,
        seconds=seconds,
        steps=steps,
        artifacts=store.artifacts_of_run(run_id),
        error=error,
    )
    atomic_write_json(run_dir / "run.json", summary.to_dict())
    if error is not None:
        done = [s["component"] for s in steps]
        raise PipelineRunError(
            f"pipeline {name} run {run_id} failed after {', '.join(done) or 'no step'}: {error}; "
            f"the failing step's log is printed above; outputs so far are in {run_dir}"
        )
    return summary
