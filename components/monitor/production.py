"""The model in production, the evaluation it was blessed on, and the data it was trained on.

The registry names the production version (``name@alias``); the version
records the ``ModelBlessing`` artifact its push read (``blessing_id``). The
evaluate execution that wrote that blessing also wrote the
``ModelEvaluation`` (``evaluation.json``): that evaluation's ``candidate`` is
what the model was promoted on, and what live metrics are compared with
(:func:`blessed_model`).

Upstream of the version's ``Model`` artifact, lineage holds the manifests
its training run ingested and validated (:func:`training_manifest`): the
drift reference is sampled from the validated one, and retraining extends
the ingested one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.core.errors import EvaluationError, LineageError
from components.core.lineage import ArtifactRef, LineageNode, LineageStore
from components.core.manifest import Manifest
from components.core.spec import PipelineSpec
from components.evaluate.evaluation import ModelEvaluation
from components.registry import ModelVersion, get_registry

__all__ = ["BlessedModel", "blessed_model", "producer_outputs", "training_manifest", "upstream_of_kind"]


@dataclass
class BlessedModel:
    """The production model version and its blessed evaluation.

    Attributes:
        version: the registry version.
        evaluation: the evaluation it was blessed on (the ``candidate`` of ``evaluation.json``),
            or one built from the blessing's metrics when ``evaluation.json`` is unreachable.
        evaluation_artifact: the ``ModelEvaluation`` artifact, when found in lineage.
        blessing_artifact: the ``ModelBlessing`` artifact, when the version records one.
        iou_threshold: IoU the evaluation used for precision/recall (detection).
        score_threshold: score threshold the evaluation used.
        source: where the blessed metrics came from (a file path, ``blessing``, ``registry``).
    """

    version: ModelVersion
    evaluation: ModelEvaluation | None
    evaluation_artifact: ArtifactRef | None = None
    blessing_artifact: ArtifactRef | None = None
    iou_threshold: float | None = None
    score_threshold: float | None = None
    source: str = ""


def producer_outputs(store: LineageStore, artifact_id: int) -> dict[str, ArtifactRef]:
    """The outputs of the execution that produced an artifact (the artifact itself included).

    Args:
        store: the lineage store.
        artifact_id: the artifact.

    Returns:
        Output event name -> artifact; empty for an external input.
    """
    from ml_metadata.proto import metadata_store_pb2

    mlmd = store.mlmd
    produced = [e for e in mlmd.get_events_by_artifact_ids([int(artifact_id)]) if e.type == metadata_store_pb2.Event.OUTPUT]
    if not produced:
        return {}
    out: dict[str, ArtifactRef] = {}
    for e in mlmd.get_events_by_execution_ids([produced[0].execution_id]):
        if e.type == metadata_store_pb2.Event.OUTPUT:
            key = e.path.steps[0].key if e.path.steps else str(e.artifact_id)
            out[key] = store.get(e.artifact_id)
    return out


def _evaluation_file(uri: str) -> Path:
    p = Path(uri.removeprefix("file://"))
    return p / "evaluation.json" if p.is_dir() or not p.suffix else p


def _read_evaluation(path: Path) -> tuple[ModelEvaluation, dict[str, Any]]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise EvaluationError(f"{path}: cannot read the blessed evaluation: {e}") from None
    candidate = doc.get("candidate") if isinstance(doc, dict) and "candidate" in doc else doc
    evaluation = ModelEvaluation.model_validate(candidate)
    return evaluation, dict(evaluation.extra)


def blessed_model(spec: PipelineSpec, store: LineageStore, alias: str | None = None) -> BlessedModel:
    """The production version of the spec's model and the evaluation it was blessed on.

    Args:
        spec: the pipeline spec (registry, model name, ``monitoring.model_alias``).
        store: the lineage store.
        alias: the alias to resolve (default: ``monitoring.model_alias``, else the registry's alias).

    Returns:
        The version and its blessed evaluation (``evaluation`` is None when neither the
        evaluation nor the blessing's metrics can be found).

    Raises:
        RegistryError: no version holds the alias.
    """
    registry = get_registry(spec.registry, store)
    wanted = alias or (spec.monitoring.model_alias if spec.monitoring else spec.registry.alias)
    version = registry.resolve(f"{spec.model_name}@{wanted}")
    out = BlessedModel(version=version, evaluation=None)
    if version.blessing_id is not None:
        try:
            out.blessing_artifact = store.get(version.blessing_id)
            siblings = producer_outputs(store, version.blessing_id)
        except LineageError:
            siblings = {}
        ev_ref = next((a for a in siblings.values() if a.kind == "ModelEvaluation"), None)
        if ev_ref is not None:
            path = _evaluation_file(ev_ref.uri)
            if path.is_file():
                out.evaluation, extra = _read_evaluation(path)
                out.evaluation_artifact = ev_ref
                out.iou_threshold = extra.get("iou_threshold")
                out.score_threshold = extra.get("score_threshold")
                out.source = str(path)
                return out
        if out.blessing_artifact is not None:
            blessing_file = _evaluation_file(out.blessing_artifact.uri).with_name("blessing.json")
            if blessing_file.is_file():
                metrics = json.loads(blessing_file.read_text(encoding="utf-8")).get("metrics") or {}
                if metrics:
                    out.evaluation = ModelEvaluation(task=spec.task, num_images=0, metrics=dict(metrics))
                    out.source = "blessing"
                    return out
    if version.metrics:
        out.evaluation = ModelEvaluation(task=spec.task, num_images=0, metrics={k: float(v) for k, v in version.metrics.items()})
        out.source = "registry"
    return out


def _walk(node: LineageNode) -> list[LineageNode]:
    out: list[LineageNode] = []
    stack, seen = [node], set()
    while stack:
        n = stack.pop(0)
        if n.artifact.id in seen:
            continue
        seen.add(n.artifact.id)
        out.append(n)
        stack.extend(child for _, child in n.inputs)
    return out


def upstream_of_kind(store: LineageStore, artifact_id: int, kind: str, producer: str | None = None) -> list[ArtifactRef]:
    """Artifacts of one kind upstream of an artifact, nearest first; those ``producer`` wrote come first.

    Args:
        store: the lineage store.
        artifact_id: where to start (a ``Model`` artifact, say).
        kind: the artifact kind wanted.
        producer: a component name whose outputs are preferred (``ingest``, ``validate``).

    Returns:
        The artifacts.
    """
    nodes = [n for n in _walk(store.upstream(artifact_id).root) if n.artifact.kind == kind and n.artifact.id != artifact_id]
    nodes.sort(key=lambda n: 0 if producer is not None and n.execution is not None and n.execution[1] == producer else 1)
    return [n.artifact for n in nodes]


def training_manifest(store: LineageStore, model_artifact_id: int, producer: str = "ingest") -> tuple[Manifest, ArtifactRef] | None:
    """The manifest of the run that trained a model.

    Args:
        store: the lineage store.
        model_artifact_id: the ``Model`` artifact.
        producer: ``ingest`` for the dataset as ingested (what retraining extends) or
            ``validate`` for what training actually saw (what the drift reference samples).

    Returns:
        The manifest and its artifact, or None when lineage holds none that can be read here.
    """
    for ref in upstream_of_kind(store, model_artifact_id, "Manifest", producer):
        p = Path(ref.uri.removeprefix("file://"))
        path = p / "manifest.json" if p.is_dir() else p
        if path.is_file():
            return Manifest.load(path), ref
    return None
