"""The model registry: versions with metrics, blessing and lineage; aliases with history; archive; fork tree.

Three backends behind one interface, :class:`Registry`:

* :class:`LocalRegistry` (embedded default): files under
  ``<root>/<model_name>/<version>/``, records in ML Metadata;
* :class:`VertexRegistry`: Vertex AI Model Registry through
  ``google-cloud-aiplatform``, records in ML Metadata too;
* :class:`MLflowRegistry`: an MLflow tracking server's Model Registry
  through the MLflow client, records in ML Metadata too.

:func:`get_registry` picks one from the spec's ``registry`` section. The
functions in :mod:`components.registry.cli_ops` render what ``cvpipe models``
prints. Importing this package imports neither kfp, TensorFlow, aiplatform nor mlflow.
"""

from __future__ import annotations

from components.core.errors import RegistryError
from components.core.lineage import LineageStore
from components.core.spec import RegistrySpec

from .base import (
    AliasEvent,
    AliasMove,
    ModelVersion,
    Recorder,
    RegisterRequest,
    RegisterResult,
    Registry,
    parse_ref,
    validate_alias,
    validate_model_name,
)
from .local import LocalRegistry, check_model_dir
from .mlflow_backend import MLflowOptions, MLflowRegistry
from .tree import DatasetInfo, ForkNode, fork_tree
from .vertex import VertexOptions, VertexRegistry

__all__ = [
    "AliasEvent",
    "AliasMove",
    "DatasetInfo",
    "ForkNode",
    "LocalRegistry",
    "MLflowOptions",
    "MLflowRegistry",
    "ModelVersion",
    "Recorder",
    "RegisterRequest",
    "RegisterResult",
    "Registry",
    "VertexOptions",
    "VertexRegistry",
    "check_model_dir",
    "fork_tree",
    "get_registry",
    "parse_ref",
    "validate_alias",
    "validate_model_name",
]


def get_registry(spec: RegistrySpec, store: LineageStore, vertex: VertexOptions | None = None) -> Registry:
    """The registry a spec's ``registry`` section names.

    Args:
        spec: the registry section (``backend``, ``root``, ``project``, ``region``, ``tracking_uri``).
        store: the lineage store (where versions are recorded, for every backend).
        vertex: Vertex AI connection options (endpoint, credentials, serving image,
            retries); defaults apply when None.

    Returns:
        A :class:`LocalRegistry`, :class:`VertexRegistry` or :class:`MLflowRegistry`.

    Raises:
        RegistryError: ``vertex`` without a project or region, ``mlflow`` without a tracking URI.
    """
    if spec.backend == "local":
        return LocalRegistry(spec.root, store)
    if spec.backend == "mlflow":
        if not spec.tracking_uri:
            raise RegistryError("registry.backend 'mlflow' needs registry.tracking_uri (the MLflow tracking server, http://host:5000)")
        return MLflowRegistry(spec.tracking_uri, store)
    if not spec.project or not spec.region:
        raise RegistryError("registry.backend 'vertex' needs registry.project and registry.region")
    return VertexRegistry(spec.project, spec.region, store, vertex or VertexOptions())
