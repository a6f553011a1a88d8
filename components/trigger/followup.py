"""The follow-up when a triggered retraining ends: the incidents that started it hear how it went.

:func:`outcome_text` says it in one sentence (pushed as version N and which
alias moved; refused with the failed thresholds; failed with the error), and
:func:`announce_end` sends it as an update of those incidents
(:func:`components.alert.announce.follow_up`) and marks the run ``announced``
in the trigger state so it is said once. (The alias move itself is announced
by the push step, as every automatic alias move is.) The trigger
calls it when it waited for the run (``monitoring.retrain.wait``), and for a
run it finds finished on a later evaluation (local, Kubeflow or Vertex AI).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from components.core.log import get_logger
from components.core.spec import PipelineSpec

from .state import RetrainRun, TriggerState

__all__ = ["announce_end", "outcome_text", "read_push"]

_log = get_logger("retrain")


def read_push(run_dir: str | Path | None) -> dict[str, Any] | None:
    """The push step's ``push.json`` of a local run folder, if there is one.

    Args:
        run_dir: the run folder.

    Returns:
        The push outcome, or None.
    """
    if not run_dir or not Path(run_dir).is_dir():
        return None
    found = sorted(Path(run_dir).rglob("push.json"))
    if not found:
        return None
    try:
        doc = json.loads(found[-1].read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def outcome_text(run: RetrainRun, model: str, push: dict[str, Any] | None) -> str:
    """How a retraining ended, in one sentence.

    Args:
        run: the retraining run (state, error, run id).
        model: the model name.
        push: its push outcome (``push.json``), if known.

    Returns:
        The sentence.
    """
    where = f"retraining {run.trigger_id} ({run.target} run {run.run_id or run.pid or '?'})"
    if run.state != "SUCCEEDED":
        return f"{where} {run.state.lower()}: {run.error or 'no error was reported'}"
    if push is None:
        return f"{where} succeeded; its push outcome is unknown (no push.json)"
    if not push.get("pushed"):
        reasons = "; ".join(str(r) for r in push.get("reasons") or []) or "not blessed"
        return f"{where} succeeded but the model was not pushed: {reasons}. {model} in production is unchanged"
    moves = [m for m in push.get("moves") or [] if m.get("action") != "unchanged"]
    moved = ", ".join(f"alias {m['alias']} moved from version {m.get('from')} to {m.get('to')}" for m in moves) or "no alias moved"
    return f"{where} succeeded: {model} pushed as version {push.get('version')}; {moved}"


def announce_end(spec: PipelineSpec, state_path: Path, trigger_id: str, push: dict[str, Any] | None = None) -> str | None:
    """Sends the follow-up of a finished retraining to the incidents that started it, once.

    Args:
        spec: the spec whose ``monitoring.alerts`` configures the dispatcher.
        state_path: the trigger state file.
        trigger_id: the retraining's trigger id.
        push: its push outcome (default: read from the run folder recorded in the state).

    Returns:
        The text sent, or None when there was nothing to say (unknown, unfinished or already announced).
    """
    from components.alert.announce import follow_up

    if spec.monitoring is None:
        return None
    with TriggerState(state_path).locked() as st:
        run = st.run(trigger_id)
        if run is None or run.state == "RUNNING" or run.details.get("announced"):
            return None
        run.details["announced"] = True
    push = push if push is not None else read_push(run.details.get("run_dir"))
    text = outcome_text(run, spec.model_name, push)
    config = spec.monitoring.alert_config(spec.runtime.root)
    follow_up(config, run.alert_keys, text)
    _log.info("follow-up sent: %s", text)
    return text
