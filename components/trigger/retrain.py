"""The end of a retraining run, recorded twice.

:func:`finish` writes the outcome to the trigger state file (the run's
``state``, ``run_id``, ``finished_at``, ``error``) and to the dataset artifact
the trigger recorded in ML Metadata (``retrain_state``, ``retrain_run_id``),
which is the state an evaluation on another machine sharing the metadata
store sees.
"""

from __future__ import annotations

from pathlib import Path

from components.core.clock import utc_now
from components.core.lineage import LineageStore

from .state import RetrainRun, TriggerState

__all__ = ["finish"]


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
