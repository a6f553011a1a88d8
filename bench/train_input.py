"""Benchmark: training steps fed from memory against cvpipe's TFRecord input pipeline.

Generates the demo data (shapes pasted on photographs), runs it through the
real ingest and transform steps into TFRecords, then, in this one process,
trains the same compact detector with the same compiled train step, fed:

(a) baseline: batches already in memory as tensors (images and targets
    materialised once; no input pipeline at all);
(b) cvpipe: :class:`components.train.data.InputPipeline` as training uses it
    (TFRecord reading, JPEG decoding cached in memory after the first epoch,
    resize, random flips, target building, prefetch);
(c) cvpipe without the cache (every epoch decodes every JPEG), for reference.

After one warm-up epoch each (tracing, cache fill), the variants train one
epoch at a time in rotating order, ``--epochs x --repeat`` epochs each, so
load from other processes hits all of them alike; the median epoch time of
each is kept. Prints steps/s, images/s and the ratios b/a (target >= 0.95)
and c/a::

    .venv/bin/python bench/train_input.py --images 240 --epochs 3 --repeat 3
"""

from __future__ import annotations

import argparse
import itertools
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from components.core.labelmap import LabelMap
from components.core.spec import AcceleratorSpec, DataSpec, TransformSpec
from components.ingest.core import read_source
from components.synth.core import SynthConfig, generate
from components.train.data import InputPipeline
from components.train.loop import LoopConfig, Trainer, make_optimizer
from components.train.models import build_model
from components.train.strategy import build_strategy
from components.transform.core import write_examples


def make_examples(root: Path, n: int) -> tuple[Path, LabelMap]:
    """Demo data through the real ingest and transform steps."""
    result = generate(SynthConfig(num_images=n, seed=0, image_size=(160, 160)), root / "synth")
    ingested = read_source(DataSpec(source=str(result.annotations)), "detection")
    examples = root / "examples"
    write_examples(ingested.manifest, examples, TransformSpec.model_validate({"split": {"train": 1.0, "validation": 0.0, "test": 0.0}}))
    return examples, ingested.manifest.label_map


def time_epochs(trainer: Trainer, batches: Any, epochs: int) -> tuple[float, int]:
    """Seconds and steps for ``epochs`` passes over ``batches`` (a callable epoch -> iterable)."""
    steps = 0
    start = time.perf_counter()
    for epoch in range(epochs):
        for x, y in batches(epoch):
            losses = trainer._train_step(x, y)
            steps += 1
        float(losses["loss"].numpy())  # wait for the last step
    return time.perf_counter() - start, steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=240, help="images generated (all go to the training split)")
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per variant and repeat")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--repeat", type=int, default=3, help="repeats of --epochs (medians over all)")
    args = parser.parse_args()

    size = (args.image_size, args.image_size)
    with tempfile.TemporaryDirectory(prefix="cvpipe-bench-train-") as tmp:
        examples, label_map = make_examples(Path(tmp), args.images)
        strategy, plan = build_strategy(AcceleratorSpec())
        cached = InputPipeline(str(examples), "train", "detection", label_map, size, args.batch_size, training=True, cache=True)
        uncached = InputPipeline(str(examples), "train", "detection", label_map, size, args.batch_size, training=True, cache=False)
        with strategy.scope():
            model = build_model("detection", "compact_detector", label_map.num_classes, size)
            optimizer = make_optimizer(1e-3, 1e-4, 10_000, plan.precision)
        trainer = Trainer(model, "detection", optimizer, strategy, cached, cached, LoopConfig(1, 1, 0), logging.getLogger("bench"))

        in_memory = [(x, y) for x, y in cached.dataset(0)]  # materialised once: the baseline's input costs nothing

        # As the trainer feeds them: one iterator over all epochs from the cache, one
        # dataset per epoch without it.
        epochs_needed = 1 + args.epochs * args.repeat
        run_iterator = iter(cached.epochs(0, epochs_needed))
        spe = cached.steps_per_epoch
        variants = {
            "a in-memory tensors": lambda epoch: in_memory,
            "b cvpipe TFRecord pipeline": lambda epoch: itertools.islice(run_iterator, spe),
            "c cvpipe, no decode cache": uncached.dataset,
        }
        for feed in variants.values():  # warm-up: tracing for full and last-partial batches, cache fill
            time_epochs(trainer, feed, 1)
        # One epoch of each variant per round, in rotating order, so load from other
        # processes hits all of them alike; the median epoch time of each is compared.
        times: dict[str, list[float]] = {name: [] for name in variants}
        steps: dict[str, int] = {}
        names = list(variants)
        for r in range(args.epochs * args.repeat):
            for name in names[r % len(names) :] + names[: r % len(names)]:
                seconds, n = time_epochs(trainer, variants[name], 1)
                times[name].append(seconds)
                steps[name] = n

        load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
        print(f"compact_detector {size[0]}x{size[1]}, batch {args.batch_size}, {cached.num_examples} images, {plan.description}")
        print(f"{os.cpu_count()} cores, load average {load} (other processes share the cores; compare ratios, not absolute rates)")
        rate = {}
        for name in names:
            med = statistics.median(times[name])
            rate[name] = steps[name] / med
            print(
                f"  {name:30s} {rate[name]:7.3f} steps/s  {rate[name] * args.batch_size:7.1f} images/s"
                f"  (median of {len(times[name])} epochs of {steps[name]} steps; best {steps[name] / min(times[name]):.3f} steps/s)"
            )
        a = rate["a in-memory tensors"]
        print(f"ratio b/a = {rate['b cvpipe TFRecord pipeline'] / a:.3f} (target >= 0.95)")
        print(f"ratio c/a = {rate['c cvpipe, no decode cache'] / a:.3f}")


if __name__ == "__main__":
    main()
