"""The fork hierarchy of registered models, read from lineage.

A model warm-started from a parent is a fork of it. Lineage says so: the
version's ``Model`` artifact was produced by a ``train`` execution whose
``parent_model`` input is the parent's ``Model`` (or ``PushedModel``)
artifact, and whose ``examples`` input leads back to the dataset's manifest.
:func:`fork_tree` follows those links for every registered version and
returns a forest whose nodes are ``Model`` artifacts, each with the versions
pushed from it and the dataset it was trained on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from components.core.errors import LineageError
from components.core.lineage import ArtifactRef, LineageNode, LineageStore

from .versions import ModelVersion

__all__ = ["PARENT_KEYS", "DatasetInfo", "ForkNode", "VersionSource", "fork_tree", "training_inputs"]

PARENT_KEYS = ("parent_model", "parent", "base_model", "warm_start")
"""Input names of a train execution that name the model it was warm-started from."""


class VersionSource(Protocol):
    """What the fork tree reads from a registry (:class:`~components.registry.base.Registry` is one)."""

    @property
    def store(self) -> LineageStore:
        """The lineage store the versions are recorded in."""
        ...

    def models(self) -> list[str]:
        """Registered model names."""
        ...

    def versions(self, model_name: str, include_archived: bool = False) -> list[ModelVersion]:
        """A model's versions."""
        ...


@dataclass(frozen=True)
class DatasetInfo:
    """The data a model was trained on.

    Attributes:
        examples: the ``Examples`` artifact (TFRecords) the train step read.
        manifest: the ``Manifest`` those examples were made from.
    """

    examples: ArtifactRef | None = None
    manifest: ArtifactRef | None = None

    def describe(self) -> str:
        """One line: the manifest (with its image count) and the examples."""
        parts = []
        if self.manifest is not None:
            images = self.manifest.properties.get("images")
            parts.append(f"Manifest #{self.manifest.id}" + (f" ({images} images)" if images is not None else ""))
        if self.examples is not None:
            parts.append(f"Examples #{self.examples.id}")
        return " via ".join(parts) if parts else "unknown"


@dataclass
class ForkNode:
    """One trained model in the fork hierarchy.

    Attributes:
        model: the ``Model`` artifact.
        versions: registry versions made from it (usually one; none for an unregistered parent).
        dataset: what it was trained on, when lineage says.
        run_id: the pipeline run that trained it.
        parent_model_id: the ``Model`` it was warm-started from, if any.
        children: models warm-started from it.
    """

    model: ArtifactRef
    versions: list[ModelVersion] = field(default_factory=list)
    dataset: DatasetInfo | None = None
    run_id: str | None = None
    parent_model_id: int | None = None
    children: list[ForkNode] = field(default_factory=list)

    def walk(self) -> list[ForkNode]:
        """This node and every node below it, depth first."""
        out = [self]
        for c in self.children:
            out.extend(c.walk())
        return out


def _find_kind(node: LineageNode, kind: str) -> ArtifactRef | None:
    frontier = [node]
    seen: set[int] = set()
    while frontier:
        n = frontier.pop(0)
        if n.artifact.id in seen:
            continue
        seen.add(n.artifact.id)
        if n.artifact.kind == kind:
            return n.artifact
        frontier.extend(child for _, child in n.inputs)
    return None


def training_inputs(store: LineageStore, model_id: int) -> tuple[int | None, DatasetInfo | None, str | None]:
    """What lineage says about how a ``Model`` was trained.

    Args:
        store: the lineage store.
        model_id: the ``Model`` artifact.

    Returns:
        ``(parent Model id or None, dataset or None, run id or None)``. A
        ``PushedModel`` parent is mapped to the ``Model`` it was pushed from.
    """
    graph = store.upstream(model_id, max_depth=2)
    root = graph.root
    if root.execution is None:
        return None, None, None
    run_id = root.execution[2].get("run_id")
    parent: int | None = None
    examples: ArtifactRef | None = None
    manifest: ArtifactRef | None = None
    for key, child in root.inputs:
        art = child.artifact
        if key in PARENT_KEYS and art.kind in ("Model", "PushedModel"):
            src = art.properties.get("source_model_id") if art.kind == "PushedModel" else art.id
            parent = int(src) if isinstance(src, int) else None
        elif art.kind == "Examples" and examples is None:
            examples = art
            manifest = _find_kind(child, "Manifest")
        elif art.kind == "Manifest" and manifest is None:
            manifest = art
    dataset = DatasetInfo(examples, manifest) if (examples or manifest) else None
    return parent, dataset, str(run_id) if run_id is not None else None


def fork_tree(registry: VersionSource, model_name: str | None = None) -> list[ForkNode]:
    """The forest of registered models, each under the model it was warm-started from.

    Parents that were never registered still appear (with no versions), so a
    chain through an unregistered model is not cut.

    Args:
        registry: the registry.
        model_name: only trees that contain a version of this model.

    Returns:
        The roots, oldest first; children oldest first.
    """
    store = registry.store
    by_model: dict[int, list[ModelVersion]] = {}
    for name in registry.models():
        for v in registry.versions(name, include_archived=True):
            by_model.setdefault(v.artifact_id, []).append(v)
    nodes: dict[int, ForkNode] = {}

    def build(model_id: int, visiting: frozenset[int]) -> ForkNode | None:
        if model_id in nodes:
            return nodes[model_id]
        try:
            art = store.get(model_id)
        except LineageError:
            return None
        parent, dataset, run_id = training_inputs(store, model_id)
        node = ForkNode(model=art, versions=by_model.get(model_id, []), dataset=dataset, run_id=run_id, parent_model_id=parent)
        nodes[model_id] = node
        if parent is not None and parent not in visiting:
            up = build(parent, visiting | {model_id})
            if up is not None:
                up.children.append(node)
            else:
                node.parent_model_id = None
        return node

    for mid in sorted(by_model):
        build(mid, frozenset())
    roots = [n for n in nodes.values() if n.parent_model_id is None or n.parent_model_id not in nodes]
    for n in nodes.values():
        n.children.sort(key=lambda c: c.model.id)
    roots.sort(key=lambda n: n.model.id)
    if model_name is not None:
        roots = [r for r in roots if any(v.model_name == model_name for n in r.walk() for v in n.versions)]
    return roots
