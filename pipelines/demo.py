"""The demo: generated data -> the whole training pipeline, locally, end to end.

``cvpipe demo`` (``make demo``) writes a small synthetic detection dataset
(logo-like shapes composed onto photographs bundled with scikit-image), a
spec for it, runs the training pipeline with kfp.local, and prints the run
summary and the lineage of what the run produced. Nothing is downloaded.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from cvpipe import load_spec

__all__ = ["DEMO_SPEC", "run_demo", "synth", "write_demo_spec"]

DEMO_SPEC: dict[str, Any] = {
    "name": "demo-detector",
    "task": "detection",
    "description": "cvpipe demo: shapes on photographs",
    "data": {"source": "data/annotations.json"},
    "validation": {"min_examples_per_class": 12},
    "transform": {"shard_size_mb": 4},
    "train": {"epochs": 12, "batch_size": 16, "image_size": [128, 128], "learning_rate": 0.002, "early_stopping_patience": 4},
    "evaluate": {"thresholds": [{"metric": "map_50", "lower": 0.2}]},
    "registry": {"backend": "local", "root": "runs/registry"},
    "runtime": {"root": "runs"},
}
"""The spec ``make demo`` runs (paths relative to the demo directory)."""


def synth(
    out_dir: Path, num_images: int = 240, seed: int = 0, task: str = "detection", image_size: int = 160, brightness: float = 1.0
) -> Path:
    """Generates a synthetic dataset (see :mod:`cvpipe.data`).

    Args:
        out_dir: output directory.
        num_images: number of images.
        seed: random seed (same seed, same bytes).
        task: detection, classification or segmentation.
        image_size: square image side in pixels.
        brightness: brightness factor (<1 darker).

    Returns:
        The annotation file (COCO JSON) or, for classification, the class-folder root.
    """
    from cvpipe.data import SynthConfig
    from cvpipe.data import generate_dataset as generate

    cfg = SynthConfig(num_images=num_images, seed=seed, task=task, image_size=(image_size, image_size), brightness=brightness)
    result = generate(cfg, out_dir)
    return Path(result.annotations or result.out_dir)


def write_demo_spec(directory: Path, overrides: dict[str, Any] | None = None) -> Path:
    """Writes the demo spec into a directory.

    Args:
        directory: the demo directory.
        overrides: top-level sections to replace.

    Returns:
        The spec file.
    """
    data = {**DEMO_SPEC, **(overrides or {})}
    path = directory / "spec.yaml"
    directory.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


STRICT_OVERRIDES: dict[str, Any] = {
    # A quick retrain that must beat the champion clearly: it will not, so it is refused.
    "train": {**DEMO_SPEC["train"], "epochs": 3},
    "evaluate": {
        "thresholds": [
            {"metric": "map_50", "lower": 0.2},
            # absolute is the allowed degradation: -0.05 means "must beat the champion by 0.05"
            {"metric": "map", "change": {"direction": "higher_is_better", "absolute": -0.05}},
        ]
    },
}
"""The second demo run: same data, a stricter evaluation (must improve mAP by 0.05 over the champion)."""


def _registry_snapshot(spec_path: Path) -> list[tuple[int, bool, tuple[str, ...]]]:
    from cvpipe import open_registry

    spec = load_spec(spec_path)
    reg = open_registry(spec)
    return [(v.version, v.blessed, tuple(sorted(v.aliases))) for v in reg.versions(spec.model_name)]


def run_demo(
    directory: Path,
    num_images: int = 240,
    until: str | None = None,
    echo: Callable[[str], Any] = print,
    strict_rerun: bool = True,
    continuous_eval: bool = True,
) -> Any:
    """Runs the demo end to end.

    1. generates the dataset (once) and runs the training pipeline: the model is
       evaluated, blessed by the spec's threshold and pushed to the local registry;
    2. unless ``until`` stops early, runs it again with a stricter change threshold
       against the champion: the new model is refused and the registry is unchanged;
    3. runs the continuous-evaluation loop (:func:`pipelines.demo_ce.run_ce_demo`):
       predictions on a darker, re-mixed held-back set are logged, a labelling batch
       is sampled and imported, drift is detected, the alert is logged and exactly
       one retraining run starts.

    Args:
        directory: where data, spec and runs go.
        num_images: size of the generated dataset.
        until: last step to run.
        echo: where to print.
        strict_rerun: run step 2.
        continuous_eval: run step 3 (needs step 2's pushed champion).

    Returns:
        The summary of the first run.
    """
    from cvpipe import LineageStore, run_local

    from .render import render_summary

    directory = directory.resolve()
    data_dir = directory / "data"
    if not (data_dir / "annotations.json").exists():
        echo(f"generating {num_images} images into {data_dir}")
        synth(data_dir, num_images=num_images, seed=0)
    spec_path = write_demo_spec(directory)
    echo(f"== 1. training pipeline: {spec_path}")
    spec = load_spec(spec_path)
    summary = run_local(spec, until=until)
    echo(render_summary(summary))
    store = LineageStore.for_spec(spec.runtime.metadata, base_dir=spec.runtime.root)
    for kind in ("PushedModel", "ModelBlessing", "Model", "Examples", "ExampleAnomalies", "Manifest"):
        art = summary.artifact(kind)
        if art is not None:
            echo(f"lineage of {kind} #{art.id} (cvpipe lineage {art.id} --spec {spec_path}):")
            echo(store.upstream(art.id).render())
            break
    if until is not None or not strict_rerun:
        return summary
    from cvpipe import open_registry, tree_text

    echo(tree_text(open_registry(spec), spec.model_name))
    before = _registry_snapshot(spec_path)
    strict_path = write_demo_spec(
        directory / "strict",
        {
            **STRICT_OVERRIDES,
            "data": {"source": str(data_dir / "annotations.json")},
            "registry": {**DEMO_SPEC["registry"], "root": str(directory / "runs" / "registry")},
            "runtime": {"root": str(directory / "runs")},
        },
    )
    echo(f"== 2. the same pipeline with a stricter threshold: {strict_path}")
    strict = run_local(load_spec(strict_path))
    blessing = strict.artifact("ModelBlessing")
    refused = blessing is not None and blessing.properties.get("blessed") is False
    after = _registry_snapshot(spec_path)
    echo(f"stricter run: {'refused' if refused else 'blessed'}; registry {'unchanged' if after == before else 'CHANGED'}: {after}")
    if continuous_eval:
        from .demo_ce import run_ce_demo

        echo("== 3. continuous evaluation: shifted production images -> labelling -> drift -> one incident per cause -> one retraining run")
        run_ce_demo(directory, echo=echo)
    return summary
