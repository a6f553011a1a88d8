"""Compile a spec to KFP v2 pipeline YAML, and check what was compiled.

The YAML is what Kubeflow Pipelines and Vertex AI Pipelines run; it loads
with ``kfp.components.load_component_from_file`` and with
``google.cloud.aiplatform.PipelineJob(template_path=...)``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from components.core.io import atomic_path
from components.core.spec import PipelineSpec

__all__ = ["PIPELINES", "build_pipeline", "compile_spec", "compile_to_text", "compiled_parameters", "pipeline_display_name"]

PIPELINES: tuple[str, ...] = ("training", "continuous-eval")
"""The pipelines a spec describes: ``training`` and, with a ``monitoring`` section, ``continuous-eval``."""


def pipeline_display_name(spec: PipelineSpec, pipeline: str = "training") -> str:
    """The KFP pipeline name of one of a spec's pipelines.

    Args:
        spec: the spec.
        pipeline: ``training`` (the spec's name) or ``continuous-eval`` (``<name>-continuous-eval``).

    Returns:
        The name.
    """
    if pipeline not in PIPELINES:
        raise ValueError(f"unknown pipeline {pipeline!r}; pipelines are {', '.join(PIPELINES)}")
    if pipeline == "training":
        return spec.name
    from .continuous_eval import pipeline_name

    return pipeline_name(spec)


def build_pipeline(spec: PipelineSpec, pipeline: str = "training", until: str | None = None) -> Any:
    """Builds one of a spec's KFP pipelines.

    Args:
        spec: the spec.
        pipeline: ``training`` or ``continuous-eval``.
        until: last step to include; None for the whole pipeline.

    Returns:
        The KFP pipeline function.
    """
    if pipeline == "continuous-eval":
        from .continuous_eval import build_continuous_eval_pipeline

        return build_continuous_eval_pipeline(spec, until=until)
    pipeline_display_name(spec, pipeline)
    from .training import build_training_pipeline

    return build_training_pipeline(spec, until=until)


def compiled_parameters(spec: PipelineSpec, pipeline: str = "training", until: str | None = None) -> dict[str, dict[str, Any]]:
    """The parameters one of a spec's compiled pipelines takes, with their defaults (the spec's values).

    ``context`` (:class:`~components.core.params.PipelineContext`) and the spec
    sections its components take; the continuous evaluation's trigger adds ``spec``.

    Args:
        spec: the spec.
        pipeline: ``training`` or ``continuous-eval``.
        until: last step included.

    Returns:
        Parameter name -> default value.
    """
    pipeline_display_name(spec, pipeline)
    if pipeline == "continuous-eval":
        from .continuous_eval import continuous_eval_parameters

        return continuous_eval_parameters(spec, until)
    from .training import training_parameters

    return training_parameters(spec, until)


def compile_spec(spec: PipelineSpec, output: str | os.PathLike[str], until: str | None = None, pipeline: str = "training") -> Path:
    """Compiles the training (or continuous-evaluation) pipeline of a spec to a YAML file (atomically).

    Args:
        spec: the pipeline spec.
        output: the YAML file to write.
        until: last step to include; None for the whole pipeline.
        pipeline: ``training`` or ``continuous-eval``.

    Returns:
        The written path.
    """
    from kfp import compiler

    pipeline_func = build_pipeline(spec, pipeline, until=until)
    with atomic_path(output, suffix=".yaml") as tmp:
        compiler.Compiler().compile(pipeline_func=pipeline_func, package_path=str(tmp))
    return Path(output)


def compile_to_text(spec: PipelineSpec, until: str | None = None, pipeline: str = "training") -> str:
    """Compiles a spec and returns the YAML text.

    Args:
        spec: the pipeline spec.
        until: last step to include.
        pipeline: ``training`` or ``continuous-eval``.

    Returns:
        The compiled pipeline YAML.
    """
    with tempfile.TemporaryDirectory() as d:
        path = compile_spec(spec, Path(d) / "pipeline.yaml", until=until, pipeline=pipeline)
        return path.read_text(encoding="utf-8")
