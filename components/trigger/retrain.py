"""The local retraining process: ``python -m components.trigger.retrain --spec ... --state ... --trigger-id ...``.

Runs the derived spec's training pipeline with ``run_local`` and reports the
outcome twice: in the trigger state file (the run's ``state``, ``run_id``,
``finished_at``, ``error``) and on the dataset artifact the trigger recorded
in ML Metadata (``retrain_state``, ``retrain_run_id``), which is the state an
evaluation on another machine sharing the metadata store sees. The exit status
is 0 when the run succeeded.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from components.alert.model import utc_now
from components.core.errors import CvpipeError
from components.core.lineage import LineageStore
from components.core.log import configure_logging, get_logger
from components.core.spec import load_spec

from .followup import announce_end, read_push
from .state import RetrainRun, TriggerState

__all__ = ["finish", "main"]

_log = get_logger("retrain")


def finish(
    state_path: Path,
    trigger_id: str,
    state: str,
    *,
    run_id: str | None = None,
    error: str | None = None,
    details: dict[str, object] | None = None,
    store: LineageStore | None = None,
    artifact_id: int | None = None,
) -> RetrainRun | None:
    """Records the end of a retraining run in the state file and on its dataset artifact.

    Args:
        state_path: the trigger state file.
        trigger_id: the trigger.
        state: ``SUCCEEDED`` or ``FAILED``.
        run_id: the pipeline run id.
        error: why it failed.
        details: extras to keep (pushed version...).
        store: the lineage store holding the dataset artifact.
        artifact_id: the dataset artifact.

    Returns:
        The updated run (None when the state file does not know the trigger).
    """
    with TriggerState(state_path).locked() as st:
        run = st.run(trigger_id)
        if run is not None:
            run.state = state
            run.run_id = run_id or run.run_id
            run.error = error
            run.finished_at = utc_now().isoformat()
            run.details.update(details or {})
    if store is not None and artifact_id is not None:
        store.update_properties(artifact_id, {"retrain_state": state, "retrain_run_id": run_id or "", "retrain_error": error})
    return run


def main(argv: Sequence[str] | None = None) -> int:
    """Runs one retraining.

    Args:
        argv: command-line arguments (default: ``sys.argv[1:]``).

    Returns:
        The exit status.
    """
    parser = argparse.ArgumentParser(prog="python -m components.trigger.retrain")
    parser.add_argument("--spec", required=True)
    parser.add_argument("--state", required=True)
    parser.add_argument("--trigger-id", required=True)
    parser.add_argument("--metadata", required=True)
    parser.add_argument("--base-dir", default=".")
    parser.add_argument("--artifact-id", type=int, default=None)
    args = parser.parse_args(argv)
    configure_logging()

    from pipelines.runners.local import run_local

    spec_path = Path(args.spec)
    try:
        spec = load_spec(spec_path)
    except CvpipeError as e:  # without the spec, the store's password source is unknown: the state file only
        finish(Path(args.state), args.trigger_id, "FAILED", error=str(e))
        _log.error("retraining failed: %s", e)
        return 1
    # the password never comes on the command line: from the variable or file the spec names (inherited environment)
    store = LineageStore.for_spec(spec.runtime.metadata.model_copy(update={"url": args.metadata}), base_dir=args.base_dir)
    _log.info("retraining %s (trigger %s) from %s", spec_path, args.trigger_id, spec_path)
    try:
        summary = run_local(spec)
    except CvpipeError as e:
        finish(Path(args.state), args.trigger_id, "FAILED", error=str(e), store=store, artifact_id=args.artifact_id)
        _log.error("retraining failed: %s", e)
        _announce(spec_path, Path(args.state), args.trigger_id, None)
        return 1
    pushed = summary.artifact("PushedModel")
    details: dict[str, object] = {"run_dir": str(summary.run_dir)}
    if pushed is not None:
        details.update({"pushed_id": pushed.id, "pushed": pushed.properties.get("pushed"), "version": pushed.properties.get("version")})
    finish(
        Path(args.state), args.trigger_id, "SUCCEEDED", run_id=summary.run_id, details=details, store=store, artifact_id=args.artifact_id
    )
    _log.info("retraining run %s finished: %s", summary.run_id, details)
    _announce(spec_path, Path(args.state), args.trigger_id, read_push(summary.run_dir))
    return 0


def _announce(spec_path: Path, state_path: Path, trigger_id: str, push: dict[str, object] | None) -> None:
    """The follow-up to the incidents that started this retraining (never fails the run)."""
    try:
        announce_end(load_spec(spec_path), state_path, trigger_id, push=push)
    except CvpipeError as e:
        _log.error("the follow-up of retraining %s could not be sent: %s", trigger_id, e)


if __name__ == "__main__":
    sys.exit(main())
