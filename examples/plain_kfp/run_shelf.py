"""Runs the example pipeline here with kfp.local (no cluster): ``python run_shelf.py [WORKDIR]``.

Generates the data, runs :func:`shelf_pipeline.shelf_pipeline` with the
components in this Python environment, and prints both evaluations.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from shelf_data import make_data
from shelf_pipeline import CONTEXT, shelf_pipeline

TASKS = {"evaluate": "evaluate-held-out", "evaluate-2": "evaluate-store-b"}
"""KFP's task names (each task's folder under the pipeline root) -> the display names the pipeline gives them."""


def run(workdir: str | Path, images: int = 32) -> dict[str, Any]:
    """Runs the pipeline with kfp.local under ``workdir``.

    Args:
        workdir: where the data, the pipeline root and the lineage store go.
        images: images per store.

    Returns:
        Evaluation (display name) -> the model's evaluation (``candidate`` of its ``evaluation.json``).
    """
    from kfp import local

    work = Path(workdir).resolve()
    data = make_data(work / "data", images)
    runtime = {"root": str(work / "runs"), "metadata": {"url": f"sqlite:///{work / 'mlmd.sqlite'}"}}
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(work / "pipeline-root"), raise_on_error=True)
    shelf_pipeline(
        store_a={"source": str(data["store-a"])},
        store_b={"source": str(data["store-b"])},
        context={**CONTEXT, "runtime": runtime},
    )
    found = {
        p.parent.parent.name: json.loads(p.read_text())["candidate"] for p in (work / "pipeline-root").rglob("evaluation/evaluation.json")
    }
    return {TASKS.get(task, task): evaluation for task, evaluation in sorted(found.items())}


if __name__ == "__main__":
    for task, ev in run(sys.argv[1] if len(sys.argv) > 1 else "work").items():
        print(f"{task}: {ev['num_images']} images, map_50 = {ev['metrics'].get('map_50')}")
