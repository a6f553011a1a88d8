"""Compile a spec to KFP v2 pipeline YAML, and check what was compiled.

The YAML is what Kubeflow Pipelines and Vertex AI Pipelines run; it loads
with ``kfp.components.load_component_from_file`` and with
``google.cloud.aiplatform.PipelineJob(template_path=...)``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from components.core.io import atomic_path
from components.core.spec import PipelineSpec

__all__ = ["compile_spec", "compile_to_text"]


def compile_spec(spec: PipelineSpec, output: str | os.PathLike[str], until: str | None = None) -> Path:
    """Compiles the training pipeline of a spec to a YAML file (atomically).

    Args:
        spec: the pipeline spec.
        output: the YAML file to write.
        until: last step to include; None for the whole pipeline.

    Returns:
        The written path.
    """
    from kfp import compiler

    from .training import build_training_pipeline

    pipeline = build_training_pipeline(spec, until=until)
    with atomic_path(output, suffix=".yaml") as tmp:
        compiler.Compiler().compile(pipeline_func=pipeline, package_path=str(tmp))
    return Path(output)


def compile_to_text(spec: PipelineSpec, until: str | None = None) -> str:
    """Compiles a spec and returns the YAML text.

    Args:
        spec: the pipeline spec.
        until: last step to include.

    Returns:
        The compiled pipeline YAML.
    """
    with tempfile.TemporaryDirectory() as d:
        path = compile_spec(spec, Path(d) / "pipeline.yaml", until=until)
        return path.read_text(encoding="utf-8")
