"""cvpipe: declarative MLOps pipelines for computer vision on Kubeflow Pipelines.

The documented API. Everything here is re-exported from the installed
``components`` and ``pipelines`` packages and imported on first use, so
``import cvpipe`` is fast and imports neither TensorFlow nor kfp::

    import cvpipe

    spec = cvpipe.load_spec("pipeline.yaml")          # a PipelineSpec (pydantic): every problem at once
    cvpipe.compile(spec, "pipeline.yaml")             # KFP v2 YAML for Kubeflow or Vertex AI
    summary = cvpipe.run_local(spec)                  # the whole DAG here, with kfp.local
    run = cvpipe.submit(spec, cvpipe.KubeflowRunner("http://localhost:8080"))
    run = cvpipe.VertexRunner(settings=cvpipe.load_settings("infra/vertex/settings.yaml")).wait(run.run_id)

Groups of names:

* the spec: :class:`PipelineSpec` and its sections, :func:`load_spec`, :func:`parse_spec`, :func:`dump_spec`;
* user steps (docs/steps.md): the :func:`step` decorator, :class:`StepInputs`, :class:`StepArtifact`, :class:`Veto`;
* pipelines: :func:`compile`, :func:`run_local` (:class:`RunSummary`), the pipeline builders;
* runners, one :class:`Runner` protocol: :class:`LocalRunner`, :class:`KubeflowRunner`,
  :class:`VertexRunner`, :func:`submit`, :class:`SubmittedRun` (with its :class:`StepState` list), :class:`ScheduleResult`;
* lineage and the registry: :class:`LineageStore`, :class:`Registry`, :func:`get_registry`, :func:`open_registry`;
* the prediction log: :class:`PredictionLog`, :class:`PredictionRow`, :class:`LabelRow`, :func:`init_feature_repo`;
* the error tree, rooted at :class:`CvpipeError` (drawn in ``components/core/errors.py``).

Three submodules hold the step-level functions, imported only when named:
:mod:`cvpipe.steps` (ingest, validate, transform, train, evaluate, push as plain
functions), :mod:`cvpipe.data` (reading sources, generated datasets, the
TFRecords a transform wrote) and :mod:`cvpipe.monitoring` (predict, sample for
labelling, drift, alerts).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from components.core.errors import AlertError as AlertError
    from components.core.errors import AnnotationError as AnnotationError
    from components.core.errors import CvpipeError as CvpipeError
    from components.core.errors import DataError as DataError
    from components.core.errors import EvaluationError as EvaluationError
    from components.core.errors import ImageError as ImageError
    from components.core.errors import LabellingError as LabellingError
    from components.core.errors import LineageError as LineageError
    from components.core.errors import PipelineRunError as PipelineRunError
    from components.core.errors import QuarantineLimitError as QuarantineLimitError
    from components.core.errors import RegistryError as RegistryError
    from components.core.errors import RemoteRefused as RemoteRefused
    from components.core.errors import RemoteUnavailable as RemoteUnavailable
    from components.core.errors import SpecError as SpecError
    from components.core.errors import TrainingError as TrainingError
    from components.core.errors import ValidationFailed as ValidationFailed
    from components.core.errors import Veto as Veto
    from components.core.lineage import LineageStore as LineageStore
    from components.core.prediction_log import LabelRow as LabelRow
    from components.core.prediction_log import PredictionRow as PredictionRow
    from components.core.runs import Runner as Runner
    from components.core.runs import ScheduleResult as ScheduleResult
    from components.core.runs import StepState as StepState
    from components.core.runs import SubmittedRun as SubmittedRun
    from components.core.runs import runner_for as runner_for
    from components.core.spec import AcceleratorSpec as AcceleratorSpec
    from components.core.spec import DataSpec as DataSpec
    from components.core.spec import EvaluateSpec as EvaluateSpec
    from components.core.spec import MetricThreshold as MetricThreshold
    from components.core.spec import MonitoringSpec as MonitoringSpec
    from components.core.spec import PipelineSpec as PipelineSpec
    from components.core.spec import RegistrySpec as RegistrySpec
    from components.core.spec import ResourceSpec as ResourceSpec
    from components.core.spec import RetrainSpec as RetrainSpec
    from components.core.spec import RuntimeSpec as RuntimeSpec
    from components.core.spec import ScheduleSpec as ScheduleSpec
    from components.core.spec import TrainSpec as TrainSpec
    from components.core.spec import TransformSpec as TransformSpec
    from components.core.spec import UserStepSpec as UserStepSpec
    from components.core.spec import ValidationSpec as ValidationSpec
    from components.core.spec import dump_spec as dump_spec
    from components.core.spec import load_spec as load_spec
    from components.core.spec import parse_spec as parse_spec
    from components.predict.logs import PredictionLog as PredictionLog
    from components.predict.logs import init_feature_repo as init_feature_repo
    from components.registry import LocalRegistry as LocalRegistry
    from components.registry import ModelVersion as ModelVersion
    from components.registry import Registry as Registry
    from components.registry import VertexRegistry as VertexRegistry
    from components.registry import get_registry as get_registry
    from components.registry.cli_ops import open_registry as open_registry
    from components.registry.cli_ops import tree_text as tree_text
    from components.user_step.api import StepArtifact as StepArtifact
    from components.user_step.api import StepInputs as StepInputs
    from components.user_step.api import step as step
    from pipelines.compiler import compile_spec as compile
    from pipelines.compiler import compile_to_text as compile_to_text
    from pipelines.continuous_eval import build_continuous_eval_pipeline as build_continuous_eval_pipeline
    from pipelines.runners import submit as submit
    from pipelines.runners.kubeflow import KubeflowConnection as KubeflowConnection
    from pipelines.runners.kubeflow import KubeflowRunner as KubeflowRunner
    from pipelines.runners.local import LocalRunner as LocalRunner
    from pipelines.runners.local import RunSummary as RunSummary
    from pipelines.runners.local import run_local as run_local
    from pipelines.runners.vertex import VertexRunner as VertexRunner
    from pipelines.runners.vertex import VertexSettings as VertexSettings
    from pipelines.runners.vertex import load_settings as load_settings
    from pipelines.training import build_training_pipeline as build_training_pipeline

_EXPORTS: dict[str, tuple[str, str]] = {
    # the error tree
    **{
        name: ("components.core.errors", name)
        for name in (
            "AlertError",
            "AnnotationError",
            "CvpipeError",
            "DataError",
            "EvaluationError",
            "ImageError",
            "LabellingError",
            "LineageError",
            "PipelineRunError",
            "QuarantineLimitError",
            "RegistryError",
            "RemoteRefused",
            "RemoteUnavailable",
            "SpecError",
            "TrainingError",
            "ValidationFailed",
            "Veto",
        )
    },
    # the spec
    **{
        name: ("components.core.spec", name)
        for name in (
            "AcceleratorSpec",
            "DataSpec",
            "EvaluateSpec",
            "MetricThreshold",
            "MonitoringSpec",
            "PipelineSpec",
            "RegistrySpec",
            "ResourceSpec",
            "RetrainSpec",
            "RuntimeSpec",
            "ScheduleSpec",
            "TrainSpec",
            "TransformSpec",
            "UserStepSpec",
            "ValidationSpec",
            "dump_spec",
            "load_spec",
            "parse_spec",
        )
    },
    # user steps
    "step": ("components.user_step.api", "step"),
    "StepInputs": ("components.user_step.api", "StepInputs"),
    "StepArtifact": ("components.user_step.api", "StepArtifact"),
    # pipelines
    "compile": ("pipelines.compiler", "compile_spec"),
    "compile_to_text": ("pipelines.compiler", "compile_to_text"),
    "build_training_pipeline": ("pipelines.training", "build_training_pipeline"),
    "build_continuous_eval_pipeline": ("pipelines.continuous_eval", "build_continuous_eval_pipeline"),
    "run_local": ("pipelines.runners.local", "run_local"),
    "RunSummary": ("pipelines.runners.local", "RunSummary"),
    # runners
    "Runner": ("components.core.runs", "Runner"),
    "StepState": ("components.core.runs", "StepState"),
    "SubmittedRun": ("components.core.runs", "SubmittedRun"),
    "ScheduleResult": ("components.core.runs", "ScheduleResult"),
    "runner_for": ("components.core.runs", "runner_for"),
    "submit": ("pipelines.runners", "submit"),
    "LocalRunner": ("pipelines.runners.local", "LocalRunner"),
    "KubeflowConnection": ("pipelines.runners.kubeflow", "KubeflowConnection"),
    "KubeflowRunner": ("pipelines.runners.kubeflow", "KubeflowRunner"),
    "VertexRunner": ("pipelines.runners.vertex", "VertexRunner"),
    "VertexSettings": ("pipelines.runners.vertex", "VertexSettings"),
    "load_settings": ("pipelines.runners.vertex", "load_settings"),
    # lineage and the registry
    "LineageStore": ("components.core.lineage", "LineageStore"),
    "Registry": ("components.registry", "Registry"),
    "LocalRegistry": ("components.registry", "LocalRegistry"),
    "VertexRegistry": ("components.registry", "VertexRegistry"),
    "ModelVersion": ("components.registry", "ModelVersion"),
    "get_registry": ("components.registry", "get_registry"),
    "open_registry": ("components.registry.cli_ops", "open_registry"),
    "tree_text": ("components.registry.cli_ops", "tree_text"),
    # the prediction log
    "PredictionLog": ("components.predict.logs", "PredictionLog"),
    "init_feature_repo": ("components.predict.logs", "init_feature_repo"),
    "PredictionRow": ("components.core.prediction_log", "PredictionRow"),
    "LabelRow": ("components.core.prediction_log", "LabelRow"),
}

__all__ = [
    "AcceleratorSpec",
    "AlertError",
    "AnnotationError",
    "CvpipeError",
    "DataError",
    "DataSpec",
    "EvaluateSpec",
    "EvaluationError",
    "ImageError",
    "KubeflowConnection",
    "KubeflowRunner",
    "LabelRow",
    "LabellingError",
    "LineageError",
    "LineageStore",
    "LocalRegistry",
    "LocalRunner",
    "MetricThreshold",
    "ModelVersion",
    "MonitoringSpec",
    "PipelineRunError",
    "PipelineSpec",
    "PredictionLog",
    "PredictionRow",
    "QuarantineLimitError",
    "Registry",
    "RegistryError",
    "RegistrySpec",
    "RemoteRefused",
    "RemoteUnavailable",
    "ResourceSpec",
    "RetrainSpec",
    "RunSummary",
    "Runner",
    "RuntimeSpec",
    "ScheduleResult",
    "ScheduleSpec",
    "SpecError",
    "StepArtifact",
    "StepInputs",
    "StepState",
    "SubmittedRun",
    "TrainSpec",
    "TrainingError",
    "TransformSpec",
    "UserStepSpec",
    "ValidationFailed",
    "ValidationSpec",
    "VertexRegistry",
    "VertexRunner",
    "VertexSettings",
    "Veto",
    "build_continuous_eval_pipeline",
    "build_training_pipeline",
    "compile",
    "compile_to_text",
    "dump_spec",
    "get_registry",
    "init_feature_repo",
    "load_settings",
    "load_spec",
    "open_registry",
    "parse_spec",
    "run_local",
    "runner_for",
    "step",
    "submit",
    "tree_text",
]


def __getattr__(name: str) -> Any:
    """Imports an exported name on first use (PEP 562) and keeps it."""
    try:
        module, attr = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'cvpipe' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
