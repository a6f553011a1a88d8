"""cvpipe pipelines: the spec -> KFP DAG builder, the concrete pipelines, runners and the CLI.

Public entry points::

    from pipelines import build_training_pipeline, compile_spec, run_local

``build_training_pipeline(spec)`` returns a KFP pipeline function;
``compile_spec(spec, path)`` writes the compiled KFP v2 YAML;
``run_local(spec)`` runs the same DAG with kfp.local in this environment;
``build_continuous_eval_pipeline(spec)`` (and ``pipeline="continuous-eval"``
for the other two) does the same for continuous evaluation.
Imports of kfp and of the components happen inside these functions, so
``import pipelines`` stays fast.
"""

from __future__ import annotations

from typing import Any

__all__ = ["build_continuous_eval_pipeline", "build_training_pipeline", "compile_spec", "run_local"]


def build_training_pipeline(*args: Any, **kwargs: Any) -> Any:
    """See :func:`pipelines.training.build_training_pipeline`."""
    from .training import build_training_pipeline as f

    return f(*args, **kwargs)


def build_continuous_eval_pipeline(*args: Any, **kwargs: Any) -> Any:
    """See :func:`pipelines.continuous_eval.build_continuous_eval_pipeline`."""
    from .continuous_eval import build_continuous_eval_pipeline as f

    return f(*args, **kwargs)


def compile_spec(*args: Any, **kwargs: Any) -> Any:
    """See :func:`pipelines.compiler.compile_spec`."""
    from .compiler import compile_spec as f

    return f(*args, **kwargs)


def run_local(*args: Any, **kwargs: Any) -> Any:
    """See :func:`pipelines.runners.local.run_local`."""
    from .runners.local import run_local as f

    return f(*args, **kwargs)
