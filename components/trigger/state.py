"""The retraining trigger's memory: cooldowns per alert key and the run in flight, in a locked JSON file.

One state file per model (``<runtime.root>/<pipeline>/retrain/state.json``),
read and written under an exclusive ``fcntl`` lock on ``state.json.lock``, so
two evaluations deciding at the same moment (two schedulers, a retry) start
one retraining, not two. The file holds:

* ``keys``: alert dedup key -> when it last started a retraining (its cooldown runs from there);
* ``runs``: every retraining started, newest last, with its target, process id
  or remote run id, dataset artifact and state.

A run recorded as ``RUNNING`` is checked before it is believed: a local run's
process must still be alive (and be the retraining of that trigger), a
Kubeflow or Vertex AI run must not have reached a terminal state, and the
dataset artifact in ML Metadata must not carry a terminal ``retrain_state``.
A run that died without saying so is marked ``LOST`` and no longer blocks.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from components.core.io import atomic_write_json, read_json
from components.core.runs import pid_alive

__all__ = ["TERMINAL", "RetrainRun", "TriggerState", "pid_alive"]

TERMINAL = frozenset({"SUCCEEDED", "FAILED", "CANCELLED", "LOST", "SKIPPED"})
"""Run states that no longer block a new retraining."""


@dataclass
class RetrainRun:
    """One retraining the trigger started.

    Attributes:
        trigger_id: the trigger's id (also in the dataset artifact and the derived spec).
        target: ``local``, ``kubeflow`` or ``vertex``.
        started_at: when it was started (ISO 8601, UTC).
        state: ``RUNNING``, ``SUCCEEDED``, ``FAILED``, ``CANCELLED`` or ``LOST``.
        pid: the local process running it.
        run_id: the pipeline run id (local run folder name, KFP run id or Vertex job id).
        dataset_artifact_id: the RawDataset artifact the trigger recorded.
        spec_path: the derived spec the run trains from.
        alert_keys: the alerts that started it.
        finished_at: when it ended.
        error: why it failed.
        details: target-specific extras (host, project, region, pushed model...).
    """

    trigger_id: str
    target: str
    started_at: str
    state: str = "RUNNING"
    pid: int | None = None
    run_id: str | None = None
    dataset_artifact_id: int | None = None
    spec_path: str = ""
    alert_keys: list[str] = field(default_factory=list)
    finished_at: str | None = None
    error: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return dict(vars(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RetrainRun:
        """Reads :meth:`to_dict`'s output (unknown keys are ignored)."""
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


class TriggerState:
    """The state file of one model's retraining trigger.

    Use :meth:`locked` around a read-decide-write sequence.

    Args:
        path: the state file (its directory is created on first write).
    """

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self.keys: dict[str, dict[str, Any]] = {}
        self.runs: list[RetrainRun] = []

    @contextlib.contextmanager
    def locked(self) -> Iterator[TriggerState]:
        """Holds the exclusive lock, loads the state, and saves it on a clean exit.

        Yields:
            This state, loaded.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_name(self.path.name + ".lock"), "a") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                self.load()
                yield self
                self.save()
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)

    def load(self) -> TriggerState:
        """Reads the file (an absent file is an empty state).

        Returns:
            This state.
        """
        if self.path.is_file():
            data = read_json(self.path)
            self.keys = dict(data.get("keys", {}))
            self.runs = [RetrainRun.from_dict(r) for r in data.get("runs", [])]
        else:
            self.keys, self.runs = {}, []
        return self

    def save(self) -> None:
        """Writes the file atomically."""
        atomic_write_json(self.path, {"format_version": 1, "keys": self.keys, "runs": [r.to_dict() for r in self.runs]})

    def run(self, trigger_id: str) -> RetrainRun | None:
        """The run a trigger started, if any."""
        return next((r for r in self.runs if r.trigger_id == trigger_id), None)

    def cooling(self, key: str, now: datetime, cooldown_s: float) -> bool:
        """Whether an alert key started a retraining less than ``cooldown_s`` ago.

        Args:
            key: the alert's dedup key.
            now: the current time (timezone-aware).
            cooldown_s: the cooldown.

        Returns:
            True while it cools down.
        """
        entry = self.keys.get(key)
        if not entry:
            return False
        last = datetime.fromisoformat(str(entry["last_trigger_at"]))
        return (now - last).total_seconds() < cooldown_s

    def in_flight(self, check: Callable[[RetrainRun], str | None] | None = None) -> RetrainRun | None:
        """The retraining still running, after checking runs recorded as ``RUNNING``.

        Args:
            check: returns a run's current state (None when it cannot tell); runs found
                terminal are updated in place.

        Returns:
            The run in flight, or None.
        """
        for r in reversed(self.runs):
            if r.state in TERMINAL:
                continue
            current = check(r) if check is not None else None
            if current is not None and current != r.state:
                r.state = current
            if r.state not in TERMINAL:
                return r
        return None
