"""cvpipe's components, for your own KFP pipelines.

Each component is a KFP v2 component (``@dsl.component``) usable in any
``@dsl.pipeline``, in any order::

    from kfp import dsl
    from cvpipe.components import evaluate, ingest, train, transform

    @dsl.pipeline(name="my-pipeline")
    def my_pipeline(context: dict, data: dict) -> None:
        run_id = dsl.PIPELINE_JOB_NAME_PLACEHOLDER
        ing = ingest(context=context, run_id=run_id, data=data)
        ...

Every component takes ``context`` (:class:`PipelineContext` as a dict: the
pipeline ``name`` lineage groups runs by, the ``task``, and ``runtime``,
``registry``, ``tracking``), ``run_id`` and the spec sections it reads as
dicts named after their keys in the spec (``data``, ``validation``,
``transform``, ``train``, ``evaluate``, ``monitoring``); the retraining
``trigger`` takes the whole ``spec``. :func:`context_parameter`,
:func:`section_parameter` and :func:`spec_parameter` give those values from
a :class:`~cvpipe.PipelineSpec`. Outside Python, :func:`component_file` is
each component's compiled YAML (``kfp.components.load_component_from_file``).

The components (:data:`NAMES`): ingest, validate, transform, train, evaluate,
push, predict_batch, read_window, sample, import_labels, live_metrics,
drift, alert, trigger. Importing this module is fast; a component imports
kfp on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from components.core.params import PipelineContext, context_parameter, section_parameter, spec_parameter
from components.library import COMPONENTS, component_file

if TYPE_CHECKING:
    from kfp.dsl.python_component import PythonComponent

    alert: PythonComponent
    drift: PythonComponent
    evaluate: PythonComponent
    import_labels: PythonComponent
    ingest: PythonComponent
    live_metrics: PythonComponent
    predict_batch: PythonComponent
    push: PythonComponent
    read_window: PythonComponent
    sample: PythonComponent
    train: PythonComponent
    transform: PythonComponent
    trigger: PythonComponent
    validate: PythonComponent

NAMES: tuple[str, ...] = tuple(COMPONENTS)
"""The components, in the order of cvpipe's two loops."""

__all__ = [  # noqa: RUF022 (the components in the order of the loops, then the helpers)
    "ingest",
    "validate",
    "transform",
    "train",
    "evaluate",
    "push",
    "predict_batch",
    "read_window",
    "sample",
    "import_labels",
    "live_metrics",
    "drift",
    "alert",
    "trigger",
    "NAMES",
    "PipelineContext",
    "component_file",
    "context_parameter",
    "section_parameter",
    "spec_parameter",
]


def __getattr__(name: str) -> Any:
    """Imports a component (and kfp) on first use."""
    if name not in COMPONENTS:
        raise AttributeError(f"module 'cvpipe.components' has no attribute {name!r}")
    from components.library import load

    return load(name)
