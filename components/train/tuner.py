"""Optional hyperparameter search with KerasTuner (``train.tuner``).

The search space is the spec's ``tuner.learning_rates`` crossed with a weight
decay of 1e-4 or 0. Each trial trains a fresh model for a few epochs with the
same loop as the final training and reports its best validation loss; the
oracle is a grid search when the grid fits in ``max_trials``, a seeded random
search otherwise. The tuner's directory lives in the trainer's work
directory with ``overwrite=False``, so a restarted trainer keeps the trials
that had finished.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from components.core.io import atomic_write_json
from components.core.spec import TunerSpec

__all__ = ["HPARAMS_FILE", "TunerOutcome", "search", "trial_epochs"]

HPARAMS_FILE = "hyperparameters.json"
"""File the best hyperparameters are written to (in the HyperParameters artifact directory)."""
WEIGHT_DECAYS = (1e-4, 0.0)


@dataclass
class TunerOutcome:
    """Result of a search.

    Attributes:
        best: the best hyperparameter values (``learning_rate``, ``weight_decay``).
        best_val_loss: the best trial's validation loss.
        trials: one dict per finished trial: ``trial_id``, ``values``, ``val_loss``.
        epochs_per_trial: epochs each trial trained.
        oracle: ``grid`` or ``random``.
    """

    best: dict[str, float]
    best_val_loss: float
    trials: list[dict[str, Any]] = field(default_factory=list)
    epochs_per_trial: int = 1
    oracle: str = "grid"


def trial_epochs(epochs: int) -> int:
    """Epochs per trial: a quarter of the final run's, between 1 and 5."""
    return max(1, min(5, math.ceil(epochs / 4)))


def search(
    spec: TunerSpec, train_trial: Callable[[dict[str, float], int], float], epochs: int, directory: Path, seed: int = 0, log: Any = None
) -> TunerOutcome:
    """Runs the search.

    Args:
        spec: ``train.tuner``.
        train_trial: trains a fresh model with the given hyperparameters for the given
            epochs and returns its best validation loss.
        epochs: epochs of the final training (trials get :func:`trial_epochs` of it).
        directory: the tuner's state directory.
        seed: random-search seed.
        log: a logger for per-trial lines.

    Returns:
        The best hyperparameters and every trial.
    """
    import keras_tuner as kt

    hp = kt.HyperParameters()
    hp.Choice("learning_rate", [float(v) for v in spec.learning_rates])
    hp.Choice("weight_decay", list(WEIGHT_DECAYS))
    grid_size = len(set(spec.learning_rates)) * len(WEIGHT_DECAYS)
    per_trial = trial_epochs(epochs)
    objective = kt.Objective("val_loss", direction="min")
    use_grid = grid_size <= spec.max_trials
    base: Any = kt.GridSearch if use_grid else kt.RandomSearch

    class _Search(base):  # type: ignore[misc, valid-type]
        def run_trial(self, trial: Any, *args: Any, **kwargs: Any) -> dict[str, float]:
            values = {k: float(v) for k, v in trial.hyperparameters.values.items()}
            if log is not None:
                log.info("tuner trial %s: %s for %d epoch(s)", trial.trial_id, values, per_trial)
            loss = float(train_trial(values, per_trial))
            if log is not None:
                log.info("tuner trial %s: val_loss %.4f", trial.trial_id, loss)
            return {"val_loss": loss if math.isfinite(loss) else 1e30}

    tuner = _Search(
        hypermodel=None,
        objective=objective,
        max_trials=min(spec.max_trials, grid_size),
        hyperparameters=hp,
        tune_new_entries=False,
        seed=seed,
        directory=str(directory),
        project_name="search",
        overwrite=False,
    )
    tuner.search()
    trials = []
    for t in tuner.oracle.trials.values():
        if t.score is None:
            continue
        trials.append(
            {"trial_id": t.trial_id, "values": {k: float(v) for k, v in t.hyperparameters.values.items()}, "val_loss": float(t.score)}
        )
    trials.sort(key=lambda r: r["val_loss"])
    if not trials:
        from components.core.errors import TrainingError

        raise TrainingError("the hyperparameter search finished no trial")
    best = trials[0]
    return TunerOutcome(
        best=best["values"],
        best_val_loss=best["val_loss"],
        trials=trials,
        epochs_per_trial=per_trial,
        oracle="grid" if use_grid else "random",
    )


def write_hyperparameters(outcome: TunerOutcome, hparams_dir: Path) -> Path:
    """Writes ``hyperparameters.json`` into the HyperParameters artifact directory.

    Args:
        outcome: the search result.
        hparams_dir: the artifact directory.

    Returns:
        The file written.
    """
    hparams_dir.mkdir(parents=True, exist_ok=True)
    return atomic_write_json(
        hparams_dir / HPARAMS_FILE,
        {
            "values": outcome.best,
            "objective": {"name": "val_loss", "direction": "min", "best": outcome.best_val_loss},
            "oracle": outcome.oracle,
            "epochs_per_trial": outcome.epochs_per_trial,
            "trials": outcome.trials,
        },
    )
