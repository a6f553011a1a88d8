"""One process of a multi-worker run: cvpipe's train step under the ``TF_CONFIG`` it was given.

``python -m components.train.worker PAYLOAD``, where ``PAYLOAD`` is a JSON file or inline
JSON holding the train step's arguments (:func:`components.train.core.worker_payload`): the
component's ``context`` and ``train`` parameters, ``run_id``, ``examples_dir``,
``label_map_path``, ``model_dir``, ``report_dir``, ``hparams_dir`` and ``uris``, the same for
every process. :class:`components.train.multiworker.LocalWorkers`
starts the non-chief workers of a local run this way (the train step itself is the chief);
every replica of a Vertex AI custom job (:mod:`components.train.vertex_job`) runs it too.
The step reads its role from ``TF_CONFIG`` (:func:`~components.train.multiworker.task_role`):
the chief trains, exports and records lineage; a worker restores from the chief's step
checkpoints, trains in sync, writes its checkpoints to a scratch directory and nothing else.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from components.core.step import StepContext

__all__ = ["main", "step_context"]


def step_context(payload: dict[str, Any]) -> StepContext:
    """The train step's :class:`~components.core.step.StepContext` from a payload, built as the train component builds it.

    Args:
        payload: from :func:`components.train.core.worker_payload`.

    Returns:
        The context.
    """
    from components.core.step import StepContext

    return StepContext.for_component("train", payload["run_id"], payload["context"], train=payload["train"])


def main(argv: list[str] | None = None) -> int:
    """Runs the train step as the process ``TF_CONFIG`` names.

    Args:
        argv: ``[PAYLOAD]`` (default: ``sys.argv[1:]``).

    Returns:
        0 when training finished (failures raise and exit non-zero).
    """
    from components.core.errors import TrainingError
    from components.core.log import configure_logging

    from .core import run
    from .multiworker import task_role

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m components.train.worker PAYLOAD (a JSON file or inline JSON)", file=sys.stderr)
        return 2
    configure_logging()
    raw = args[0] if args[0].lstrip().startswith("{") else Path(args[0]).read_text()
    payload = json.loads(raw)
    if task_role().num_workers < 2:
        raise TrainingError("components.train.worker runs one process of a multi-worker cluster: TF_CONFIG names no cluster")
    ctx = step_context(payload)
    run(
        ctx,
        payload["examples_dir"],
        payload["label_map_path"],
        payload["model_dir"],
        payload["report_dir"],
        payload["hparams_dir"],
        uris=payload.get("uris"),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
