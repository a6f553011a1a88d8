"""A worker process of a local multi-worker run: cvpipe's train step under the ``TF_CONFIG`` it was given.

Started by :class:`components.train.multiworker.LocalWorkers` (``train.workers: N``) as
``python -m components.train.worker PAYLOAD_JSON``, where the payload file holds the train
step's arguments: ``spec`` (the whole pipeline spec), ``run_id``, ``examples_dir``,
``label_map_path``, ``model_dir``, ``report_dir`` and ``hparams_dir``, the chief's own. Under
its ``TF_CONFIG`` the step knows it is not the chief (:func:`~components.train.multiworker.task_role`):
it restores from the chief's step checkpoints, trains in sync, writes its checkpoints to a
scratch directory and leaves the model, the report and the lineage to the chief.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Runs the train step as a non-chief worker.

    Args:
        argv: ``[PAYLOAD_JSON]`` (default: ``sys.argv[1:]``).

    Returns:
        0 when training finished (failures raise and exit non-zero).
    """
    from components.core.errors import TrainingError
    from components.core.log import configure_logging
    from components.core.spec import PipelineSpec
    from components.core.step import StepContext

    from .core import run
    from .multiworker import task_role

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m components.train.worker PAYLOAD_JSON", file=sys.stderr)
        return 2
    configure_logging()
    payload = json.loads(Path(args[0]).read_text())
    role = task_role()
    if role.chief:
        raise TrainingError("components.train.worker runs the non-chief workers; its TF_CONFIG names the chief")
    spec = PipelineSpec.model_validate(payload["spec"])
    ctx = StepContext(spec=spec, run_id=payload["run_id"], component="train")
    run(ctx, payload["examples_dir"], payload["label_map_path"], payload["model_dir"], payload["report_dir"], payload["hparams_dir"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
