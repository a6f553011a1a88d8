"""cvpipe pipelines: the spec -> KFP DAG builder, the concrete pipelines, runners and the CLI.

The documented API is the ``cvpipe`` package; these names are kept for code
that imports them from here::

    from pipelines import build_training_pipeline, compile_spec, run_local

``build_training_pipeline(spec)`` returns a KFP pipeline function;
``compile_spec(spec, path)`` writes the compiled KFP v2 YAML;
``run_local(spec)`` runs the same DAG with kfp.local in this environment;
``build_continuous_eval_pipeline(spec)`` (and ``pipeline="continuous-eval"``
for the other two) does the same for continuous evaluation.
They are imported on first use (PEP 562), so ``import pipelines`` stays fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .compiler import compile_spec as compile_spec
    from .continuous_eval import build_continuous_eval_pipeline as build_continuous_eval_pipeline
    from .runners.local import run_local as run_local
    from .training import build_training_pipeline as build_training_pipeline

__all__ = ["build_continuous_eval_pipeline", "build_training_pipeline", "compile_spec", "run_local"]

_EXPORTS = {
    "build_continuous_eval_pipeline": ".continuous_eval",
    "build_training_pipeline": ".training",
    "compile_spec": ".compiler",
    "run_local": ".runners.local",
}


def __getattr__(name: str) -> Any:
    """Imports an exported function on first use."""
    if name not in _EXPORTS:
        raise AttributeError(f"module 'pipelines' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name], __name__), name)
