"""Benchmark: the compact detector (the default) against keras-hub's RetinaNet on the same data.

Generates the demo data (shapes pasted on photographs, 160x160), runs it
through the real ingest and transform steps, then trains each detector with
the real train step (same split, input size, epochs, batch size, seed) and
scores it with the real evaluate step (pycocotools COCO metrics on the test
split). Prints, per detector: parameters, median wall seconds per epoch, the
train step's process CPU seconds per epoch, mAP@0.5 and mAP@[.5:.95], and
the RetinaNet/compact ratios::

    .venv/bin/python bench/detectors.py --images 240 --epochs 12 --backbone resnet18

Both start from random weights (nothing is downloaded here); with a
pretrained preset (``train.pretrained_weights``) RetinaNet would start from
ImageNet or COCO features instead.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from components.core.spec import DataSpec, TransformSpec, parse_spec
from components.core.step import StepContext
from components.evaluate.core import run as evaluate
from components.ingest.core import read_source
from components.synth.core import SynthConfig, generate
from components.train.core import run as train
from components.transform.core import write_examples


def make_examples(root: Path, n: int) -> tuple[Path, Path]:
    """Demo data through the real ingest and transform steps (default 80/10/10 split)."""
    result = generate(SynthConfig(num_images=n, seed=0, image_size=(160, 160)), root / "synth")
    ingested = read_source(DataSpec(source=str(result.annotations)), "detection")
    examples = root / "examples"
    write_examples(ingested.manifest, examples, TransformSpec())
    label_map = ingested.manifest.label_map.save(root / "label_map.json")
    return examples, label_map


def measure(root: Path, examples: Path, label_map: Path, name: str, train_section: dict[str, Any]) -> dict[str, Any]:
    """Trains and evaluates one detector; its figures."""
    spec = parse_spec(
        {
            "name": f"bench-{name}",
            "task": "detection",
            "data": {"source": str(root / "synth" / "annotations.json")},
            "train": train_section,
            "registry": {"root": str(root / "registry")},
            "runtime": {"root": str(root / "runs"), "metadata": {"url": f"sqlite:///{root / f'{name}.sqlite'}"}},
        }
    )
    out = root / name
    cpu0, wall0 = time.process_time(), time.monotonic()
    result = train(StepContext(spec=spec, run_id=name, component="train"), examples, label_map, out / "m", out / "r", out / "h")
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    import json

    report = json.loads((result.report_dir / "training_report.json").read_text())
    epoch_s = statistics.median(r["seconds"] for r in report["history"])
    ev = evaluate(
        StepContext(spec=spec, run_id=name, component="evaluate"),
        result.model_dir,
        examples,
        out / "ev",
        out / "bl",
        out / "report.html",
        lookup_baseline=False,
    )
    import keras

    from components.train.models import build_model

    params = build_model(
        "detection", result.architecture, 4, tuple(train_section["image_size"]), {"backbone": train_section.get("backbone")}
    )
    return {
        "name": name,
        "params": int(sum(int(keras.ops.size(w)) for w in params.weights)),
        "epoch_s": epoch_s,
        "cpu_per_epoch_s": cpu / max(1, result.epochs_run),
        "train_wall_s": wall,
        "epochs": result.epochs_run,
        "map_50": ev.candidate.metrics["map_50"],
        "map": ev.candidate.metrics["map"],
        "test_images": ev.candidate.num_images,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=240)
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--image-size", type=int, default=128)
    ap.add_argument("--backbone", default="resnet18")
    ap.add_argument("--learning-rate", type=float, default=0.002)
    args = ap.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.basicConfig(level=logging.WARNING)
    common = {
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "image_size": [args.image_size, args.image_size],
        "learning_rate": args.learning_rate,
        "early_stopping_patience": args.epochs,
    }
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        examples, label_map = make_examples(root, args.images)
        rows = [
            measure(root, examples, label_map, "compact", {**common, "model": "compact_detector"}),
            measure(root, examples, label_map, "retinanet", {**common, "model": "retinanet", "backbone": args.backbone}),
        ]
    print(f"{args.images} images, {args.epochs} epochs, batch {args.batch_size}, {args.image_size}x{args.image_size}, CPU")
    print(f"{'detector':<24}{'params':>10}{'s/epoch':>10}{'cpu s/epoch':>13}{'mAP@0.5':>10}{'mAP':>8}")
    for r in rows:
        label = "compact_detector" if r["name"] == "compact" else f"retinanet/{args.backbone}"
        print(f"{label:<24}{r['params']:>10,}{r['epoch_s']:>10.1f}{r['cpu_per_epoch_s']:>13.1f}{r['map_50']:>10.3f}{r['map']:>8.3f}")
    c, rn = rows
    print(
        f"retinanet/compact: time per epoch x{rn['epoch_s'] / c['epoch_s']:.1f}, cpu per epoch x{rn['cpu_per_epoch_s'] / c['cpu_per_epoch_s']:.1f}"
    )
    print(f"test images: {c['test_images']}")


if __name__ == "__main__":
    main()
