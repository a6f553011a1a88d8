"""The continuous-evaluation pipeline: window -> sample -> import labels -> live metrics -> drift -> alert -> trigger.

:func:`build_continuous_eval_pipeline` turns a spec with a ``monitoring``
section into a KFP v2 pipeline named ``<name>-continuous-eval``, compiled
and run like the training pipeline from the same reusable components (the
spec travels as pipeline parameters: ``context``, ``monitoring``,
``evaluate`` and, for the retraining trigger, the whole ``spec``; each task
gets the KFP job name as its run id)::

    read_window ──┬──> sample ────────────────────────────────────────┐
                  ├──> import_labels ──┬──> live_metrics ──┐            │
                  │                    │                   ├──> alert ──┴──> trigger
                  └──> drift ──────────┼───────────────────┘             ▲
                                       └─────────────────────────────────┘

* ``read_window``: the production model's predictions of the last ``monitoring.window``;
* ``sample``: a labelling batch (Label Studio tasks) from the window;
* ``import_labels``: Label Studio exports waiting in ``monitoring.labels`` go into
  the prediction log as ground truth; outputs every labelled image not yet trained on;
* ``live_metrics``: the model on the uniformly sampled labelled images against its
  blessed evaluation, with confidence intervals;
* ``drift``: the window against the model's training data (class mix, image
  statistics, embeddings);
* ``alert``: group what the two found into one incident per model and cause, and record them;
* ``trigger``: a drift or degradation incident starts the training pipeline on the
  data plus the new labels (at most one in flight per model); then the incidents
  are notified, each saying what was decided (without the trigger step, ``alert``
  notifies).

Gating lives inside the components (kfp 2.13's local runner has no ``dsl.If``).
"""

# No `from __future__ import annotations` here: kfp reads the pipeline function's
# annotations at run time and would take the string 'str' for an artifact type.

from typing import Any

from components.core.spec import PipelineSpec

from .steps import CE_STEPS
from .tasks import configure_task, pipeline_parameters, with_parameters

__all__ = ["CE_STEPS", "build_continuous_eval_pipeline", "continuous_eval_parameters", "pipeline_name"]


def pipeline_name(spec: PipelineSpec) -> str:
    """The continuous-evaluation pipeline's name: ``<spec name>-continuous-eval``.

    Args:
        spec: the spec.

    Returns:
        The name.
    """
    return f"{spec.name}-continuous-eval"


def continuous_eval_parameters(spec: PipelineSpec, until: str | None = None) -> dict[str, dict[str, Any]]:
    """The continuous-evaluation pipeline's parameters and their defaults.

    ``context`` and ``monitoring``; ``evaluate`` with the live-metrics step
    (its IoU and score thresholds); the whole ``spec`` with the retraining trigger.

    Args:
        spec: the spec (with a ``monitoring`` section).
        until: last step included.

    Returns:
        Parameter name -> default (the spec's value).
    """
    steps = CE_STEPS[: CE_STEPS.index(until) + 1] if until else CE_STEPS
    sections = ["evaluate", "monitoring"] if "live_metrics" in steps else ["monitoring"]
    return pipeline_parameters(spec, sections, whole_spec="trigger" in steps)


def build_continuous_eval_pipeline(spec: PipelineSpec, until: str | None = None) -> Any:
    """Builds the continuous-evaluation KFP pipeline of a spec.

    Args:
        spec: the pipeline spec; it must have a ``monitoring`` section.
        until: last step to include (one of :data:`CE_STEPS`); None for all.

    Returns:
        A KFP pipeline function.

    Raises:
        ValueError: the spec has no ``monitoring`` section, or ``until`` is not a step.
    """
    from kfp import dsl

    from components.alert.component import alert
    from components.drift.component import drift
    from components.live_metrics.component import live_metrics
    from components.monitor.component import import_labels, read_window, sample
    from components.trigger.component import trigger

    if spec.monitoring is None:
        raise ValueError(f"spec {spec.name!r} has no monitoring section; continuous evaluation needs one")
    if until is not None and until not in CE_STEPS:
        raise ValueError(f"unknown step {until!r}; steps are {', '.join(CE_STEPS)}")
    steps = set(CE_STEPS[: CE_STEPS.index(until) + 1] if until else CE_STEPS)
    defaults = continuous_eval_parameters(spec, until)

    def continuous_eval_pipeline(**params: Any) -> None:
        run_id = dsl.PIPELINE_JOB_NAME_PLACEHOLDER
        common = {"context": params["context"], "run_id": run_id, "monitoring": params["monitoring"]}
        win = configure_task(read_window(**common), spec, "read_window")
        if "sample" not in steps:
            return
        smp = configure_task(sample(**common, window=win.outputs["window"]), spec, "sample")
        if "import_labels" not in steps:
            return
        imp = configure_task(import_labels(**common, window=win.outputs["window"]), spec, "import_labels")
        if "live_metrics" not in steps:
            return
        live = configure_task(
            live_metrics(**common, evaluate=params["evaluate"], window=win.outputs["window"], labelled=imp.outputs["labelled"]),
            spec,
            "live_metrics",
        )
        if "drift" not in steps:
            return
        dr = configure_task(drift(**common, window=win.outputs["window"]), spec, "drift")
        if "alert" not in steps:
            return
        al = configure_task(
            alert(**common, drift_report=dr.outputs["report"], live_evaluation=live.outputs["evaluation"], notify="trigger" not in steps),
            spec,
            "alert",
        )
        if "trigger" not in steps:
            return
        configure_task(
            trigger(spec=params["spec"], run_id=run_id, alerts=al.outputs["alerts"], labelled=imp.outputs["labelled"]).after(smp),
            spec,
            "trigger",
        )

    description = f"cvpipe continuous evaluation of {spec.model_name}@{spec.monitoring.model_alias}"
    return dsl.pipeline(name=pipeline_name(spec), description=description)(with_parameters(continuous_eval_pipeline, defaults))
