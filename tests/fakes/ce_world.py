"""A small production world for continuous-evaluation tests: a blessed model in the registry and its whole lineage.

Everything is real except training: the dataset is written as COCO and goes
through the real ingest, validate and transform steps (in-process), the model
is a tiny real SavedModel (``tests/unit/predict_testdata.py``) recorded as the
train step's output, and the real evaluate and push steps bless and register
it as ``<name>@champion``. The prediction log is a Feast repository rendered
by ``init_feature_repo``. Production traffic comes from :meth:`World.log_traffic`
(the real batch predictor over generated images).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from unit.predict_testdata import make_images, make_tiny_model

from components.core.labelmap import LabelMap
from components.core.lineage import LineageStore, NewArtifact
from components.core.manifest import Manifest
from components.core.spec import PipelineSpec, parse_spec
from components.core.step import StepContext
from components.trigger.dataset import merge_datasets

__all__ = ["LABELS", "World", "build_world", "spec_data"]

LABELS = LabelMap.from_names(["circle", "square", "star"])


def spec_data(root: Path, name: str = "shelf", **monitoring: Any) -> dict[str, Any]:
    """The spec of the world (as a dict), with a monitoring section built from ``monitoring``."""
    mon: dict[str, Any] = {
        "window": "24h",
        "labels": str(root / "labels"),
        "reference_samples": 60,
        "drift": {"min_samples": 20, "mmd_permutations": 100},
        "min_labelled": 10,
        "bootstrap": 50,
        "sampling": {"per_class": 3, "uncertain": 3, "random_share": 0.6, "max_items": 40},
        "retrain": {"target": "local", "cooldown": "24h"},
    }
    mon.update(monitoring)
    return {
        "name": name,
        "task": "detection",
        "data": {"source": str(root / "data" / "annotations.json")},
        "validation": {"min_examples_per_class": 1},
        "transform": {"split": {"train": 0.5, "validation": 0.2, "test": 0.3}, "num_workers": 1},
        "train": {"epochs": 1, "batch_size": 8, "image_size": [32, 32]},
        "evaluate": {"thresholds": [{"metric": "map_50", "lower": 0.0}]},
        "registry": {"root": str(root / "registry")},
        "runtime": {"root": str(root / "runs"), "metadata": {"url": f"sqlite:///{root / 'mlmd.sqlite'}"}},
        "schedule": {"cron": "0 * * * *"},
        "monitoring": mon,
    }


@dataclass
class World:
    """The world :func:`build_world` made.

    Attributes:
        root: its directory.
        spec: the spec (monitoring included).
        store: the lineage store.
        train: the training manifest (true labels).
        model_dir: the production model's directory.
        run_id: the training run's id.
        artifacts: recorded artifacts by name (``manifest``, ``examples``, ``model``, ``blessing``, ``pushed``...).
    """

    root: Path
    spec: PipelineSpec
    store: LineageStore
    train: Manifest
    model_dir: Path
    run_id: str
    artifacts: dict[str, Any] = field(default_factory=dict)

    @property
    def log_dir(self) -> Path:
        """The prediction log's Feast repository."""
        assert self.spec.monitoring is not None
        return self.spec.monitoring.log_dir(self.spec.runtime.root)

    def images(self, name: str, n: int, seed: int, brightness: float = 1.0) -> Manifest:
        """Generated images with their true labels (a manifest), under ``root/name``."""
        return make_images(self.root / name, n, LABELS, "detection", seed=seed, brightness=brightness)

    def log_traffic(self, manifest: Manifest, run_id: str = "serve") -> list[Any]:
        """Predicts on a manifest's images with ``<name>@champion`` and logs every prediction (the real batch predictor).

        Returns:
            The logged rows.
        """
        from components.predict.core import run as predict

        path = manifest.save(self.root / f"{run_id}-manifest.json")
        ctx = StepContext(spec=self.spec, run_id=run_id, component="predict_batch", _store=self.store)
        return list(predict(ctx, f"{self.spec.model_name}@champion", str(path), self.log_dir, self.root / run_id).rows)


def build_world(root: Path, spec: dict[str, Any] | None = None, train_images: int = 48, seed: int = 0) -> World:
    """Trains nothing, but records a complete training run of a tiny model, blessed and pushed as ``@champion``.

    Args:
        root: the directory (created).
        spec: the spec as a dict (default: :func:`spec_data`).
        train_images: training images.
        seed: image seed.

    Returns:
        The world.
    """
    from components.evaluate.core import run as evaluate
    from components.ingest.core import run as ingest
    from components.predict.logs import init_feature_repo
    from components.push.core import run as push
    from components.transform.core import run as transform
    from components.validate.core import ValidateOutputs
    from components.validate.core import run as validate

    root.mkdir(parents=True, exist_ok=True)
    truth = make_images(root / "train_images", train_images, LABELS, "detection", seed=seed)
    merge_datasets(truth, Manifest(task="detection", root="", label_map=LABELS, images=[]), root / "data")
    parsed = parse_spec(spec or spec_data(root))
    store = LineageStore(parsed.runtime.metadata.url)
    run_id = "shelf-train-1"
    out = Path(parsed.runtime.root) / parsed.name / run_id

    def ctx(component: str) -> StepContext:
        return StepContext(spec=parsed, run_id=run_id, component=component, _store=store)

    ing = ingest(ctx("ingest"), out / "manifest", out / "label_map", out / "quarantine", {})
    validate(ctx("validate"), out / "manifest", out / "label_map", ValidateOutputs.under(out / "validate"))
    transform(
        ctx("transform"),
        out / "validate" / "validated",
        out / "label_map",
        out / "examples",
        out / "transform_quarantine",
        {"statistics": str(out / "validate" / "statistics"), "schema": str(out / "validate" / "schema")},
    )
    examples = store.find_by_uri(str(out / "examples"), "Examples")
    model_dir = make_tiny_model(out / "model", "detection", ing.label_map, seed=seed, model_name=parsed.name)
    trained = store.record_execution(
        "train",
        pipeline=parsed.name,
        run_id=run_id,
        inputs={"examples": examples},
        outputs={"model": NewArtifact("Model", str(model_dir), {"model_name": parsed.name, "pipeline": parsed.name, "run_id": run_id})},
    )
    ev = evaluate(
        ctx("evaluate"), model_dir, out / "examples", out / "evaluation", out / "blessing", out / "report.html", lookup_baseline=False
    )
    assert ev.blessing.blessed, ev.blessing.reasons
    pushed = push(ctx("push"), model_dir, out / "blessing", out / "pushed", {})
    init_feature_repo(parsed.monitoring.log_dir(parsed.runtime.root) if parsed.monitoring else root / "prediction_log")
    return World(
        root=root,
        spec=parsed,
        store=store,
        train=truth,
        model_dir=model_dir,
        run_id=run_id,
        artifacts={"model": trained["model"], "examples": examples, "evaluation": ev.artifacts["evaluation"], "pushed": pushed},
    )
