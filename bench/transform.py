"""Benchmark: cvpipe's transform against two TFRecord writers a user might write, and a plain byte copy.

Generates JPEG images with boxes in a temporary directory, then, on the same
files, times:

(a) baseline: for each image PIL open, convert to RGB, re-encode JPEG, build a
    ``tf.train.Example`` with TensorFlow, write with one ``tf.io.TFRecordWriter``
    (one thread);
(d) careful baseline: the same, but an RGB JPEG's bytes are copied into the
    record as they are (PIL only reads the header to check it), what a careful
    user would write (one thread);
(b) cvpipe: :func:`components.transform.core.write_examples` (splits, shards,
    index, all cores; the lineage record of ``run`` is not timed);
(c) a plain byte copy of the same files into another directory.

All four take turns inside each of ``--repeat`` rounds, so they see the same
load from other processes. The two baselines run in one helper process that
imported TensorFlow before the rounds (cvpipe forks its workers, which is
unsafe once TensorFlow is imported in the forking process, so this process
never imports it). Prints the median wall time with the spread (min-max),
images/s, CPU time (worker processes included), the kernel's CPU pressure and
the ratios of medians b/a (target >= 5), b/d and b/c (target >= 0.5)::

    .venv/bin/python bench/transform.py --images 2000
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from components.core.io import sha256_file
from components.core.labelmap import LabelMap
from components.core.manifest import ImageRecord, Manifest, ObjectAnnotation
from components.core.spec import TransformSpec
from components.transform.core import write_examples


def generate(root: Path, n: int, size: int, seed: int = 0) -> Manifest:
    """Writes ``n`` JPEGs of ``size x size`` with 1-3 boxes each and returns their manifest."""
    rng = np.random.default_rng(seed)
    lm = LabelMap.from_names(["cat", "dog", "bird", "car"])
    yy, xx = np.mgrid[0:size, 0:size]
    records = []
    for i in range(n):
        base = rng.integers(0, 256, 3)
        px = (base + np.stack([yy * rng.integers(1, 4), xx * rng.integers(1, 4), (yy + xx) // 2], -1)) % 256
        px = np.clip(px + rng.normal(0, 12, px.shape), 0, 255).astype(np.uint8)
        path = root / f"img_{i:05d}.jpg"
        Image.fromarray(px).save(path, format="JPEG", quality=90)
        objs = []
        for _ in range(int(rng.integers(1, 4))):
            x, y = (float(v) for v in rng.integers(0, size // 2, 2))
            w, h = (float(v) for v in rng.integers(8, size // 2, 2))
            objs.append(ObjectAnnotation(class_id=int(rng.integers(1, 5)), bbox=[x, y, w, h], area=w * h))
        records.append(ImageRecord(image_id=str(i), path=path.name, sha256=sha256_file(path), width=size, height=size, objects=objs))
    return Manifest(task="detection", root=str(root), label_map=lm, images=records)


def _write_records(manifest: Manifest, out: Path, encode: Callable[[Path], tuple[bytes, int, int]]) -> None:
    """One ``tf.train.Example`` per image (``encode`` gives its JPEG bytes and size) into one TFRecordWriter."""
    import tensorflow as tf

    names = manifest.label_map.classes

    def floats(v: list[float]) -> tf.train.Feature:
        return tf.train.Feature(float_list=tf.train.FloatList(value=v))

    def ints(v: list[int]) -> tf.train.Feature:
        return tf.train.Feature(int64_list=tf.train.Int64List(value=v))

    def byts(v: list[bytes]) -> tf.train.Feature:
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=v))

    with tf.io.TFRecordWriter(str(out / "baseline.tfrecord")) as writer:
        for rec in manifest.images:
            encoded, w, h = encode(manifest.image_path(rec))
            objs = rec.objects
            feature = {
                "image/encoded": byts([encoded]),
                "image/format": byts([b"jpeg"]),
                "image/height": ints([h]),
                "image/width": ints([w]),
                "image/filename": byts([rec.path.encode()]),
                "image/source_id": byts([rec.image_id.encode()]),
                "image/key/sha256": byts([rec.sha256.encode()]),
                "image/object/bbox/xmin": floats([o.bbox[0] / w for o in objs]),
                "image/object/bbox/xmax": floats([(o.bbox[0] + o.bbox[2]) / w for o in objs]),
                "image/object/bbox/ymin": floats([o.bbox[1] / h for o in objs]),
                "image/object/bbox/ymax": floats([(o.bbox[1] + o.bbox[3]) / h for o in objs]),
                "image/object/class/label": ints([o.class_id for o in objs]),
                "image/object/class/text": byts([names[o.class_id].encode() for o in objs]),
            }
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())


def _reencode(path: Path) -> tuple[bytes, int, int]:
    import io

    with Image.open(path) as im:
        rgb = im.convert("RGB")
        buf = io.BytesIO()
        rgb.save(buf, format="JPEG", quality=95)
    return buf.getvalue(), rgb.size[0], rgb.size[1]


def _keep_bytes(path: Path) -> tuple[bytes, int, int]:
    with Image.open(path) as im:  # reads the header only
        if im.format == "JPEG" and im.mode == "RGB":
            return path.read_bytes(), im.size[0], im.size[1]
    return _reencode(path)


def baseline(manifest: Manifest, out: Path) -> None:
    """(a) PIL decode + RGB + JPEG re-encode + tf.train.Example + one TFRecordWriter."""
    _write_records(manifest, out, _reencode)


def careful_baseline(manifest: Manifest, out: Path) -> None:
    """(d) As (a), but an RGB JPEG's bytes go into the record unchanged."""
    _write_records(manifest, out, _keep_bytes)


def cvpipe(manifest: Manifest, out: Path) -> None:
    """(b) cvpipe's transform with default options (all cores)."""
    result = write_examples(manifest, out, TransformSpec.model_validate({}))
    assert sum(result.counts.values()) == len(manifest.images), "every image must reach the TFRecords"


def byte_copy(manifest: Manifest, out: Path) -> None:
    """(c) a plain byte copy of every image file."""
    for rec in manifest.images:
        shutil.copyfile(manifest.image_path(rec), out / Path(rec.path).name)


def _cpu() -> float:
    self_, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return self_.ru_utime + self_.ru_stime + kids.ru_utime + kids.ru_stime


def timed(fn: Callable[[Manifest, Path], None], manifest: Manifest, work: Path, name: str) -> tuple[float, float]:
    """Runs ``fn`` once into a fresh directory; returns its wall time and CPU time (worker processes included)."""
    out = work / name
    out.mkdir()
    cpu = _cpu()
    start = time.perf_counter()
    fn(manifest, out)
    elapsed = time.perf_counter() - start
    cpu = _cpu() - cpu
    shutil.rmtree(out)
    return elapsed, cpu


def _pressure() -> str:
    """The kernel's CPU pressure line (how much others compete for the cores), if available."""
    try:
        with open("/proc/pressure/cpu") as f:
            return f.readline().split(" total=")[0]
    except OSError:
        return "n/a"


def _tf_helper(conn: Any, manifest_json: str) -> None:
    """Helper process: imports TensorFlow once, then times the baselines it is asked for (name, work dir) -> (wall, CPU)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow  # noqa: F401

    manifest = Manifest.model_validate_json(manifest_json)
    fns = {"a": baseline, "d": careful_baseline}
    conn.send("ready")
    while True:
        msg = conn.recv()
        if msg is None:
            return
        key, work = msg
        conn.send(timed(fns[key], manifest, Path(work), f"baseline-{key}"))


def main() -> None:
    """Generates the images, times the four ways in turn, prints rates and ratios."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=5, help="rounds; each time is the median of the rounds")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file (for bench/readme_table.py)")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import logging

    logging.getLogger("cvpipe").setLevel(logging.WARNING)

    with tempfile.TemporaryDirectory(prefix="cvpipe-bench-") as tmp:
        root = Path(tmp) / "images"
        root.mkdir()
        t0 = time.perf_counter()
        manifest = generate(root, args.images, args.size)
        mb = sum(manifest.image_path(r).stat().st_size for r in manifest.images) / 2**20
        print(
            f"generated {args.images} JPEGs {args.size}x{args.size} ({mb:.1f} MiB) in {time.perf_counter() - t0:.1f}s; "
            f"cores: {os.cpu_count()}, load average {os.getloadavg()[0]:.1f}"
        )
        work = Path(tmp) / "out"
        work.mkdir()
        parent, child = mp.get_context("spawn").Pipe()
        helper = mp.get_context("spawn").Process(target=_tf_helper, args=(child, manifest.model_dump_json()), daemon=True)
        helper.start()
        assert parent.recv() == "ready"
        print(f"CPU pressure before: {_pressure()}")
        runs: dict[str, list[tuple[float, float]]] = {"a": [], "b": [], "c": [], "d": []}
        try:
            for r in range(args.repeat):
                order = "cbad"[r % 4 :] + "cbad"[: r % 4]  # rotate who goes first
                for k in order:
                    if k in "ad":
                        parent.send((k, str(work)))
                        runs[k].append(parent.recv())
                    else:
                        runs[k].append(timed(byte_copy if k == "c" else cvpipe, manifest, work, k))
        finally:
            parent.send(None)
            helper.join(timeout=60)
        print(f"CPU pressure after:  {_pressure()}")
    n = args.images
    med = {k: statistics.median(w for w, _ in v) for k, v in runs.items()}
    labels = {
        "a": "baseline PIL re-encode+tf.train.Example+TFRecordWriter",
        "d": "careful baseline: JPEG bytes copied+tf.train.Example",
        "b": "cvpipe transform",
        "c": "plain byte copy",
    }
    for k in "adbc":
        walls = [w for w, _ in runs[k]]
        cpu = statistics.median(c for _, c in runs[k])
        print(
            f"({k}) {labels[k]:<55} {n / med[k]:7.0f} images/s  (median {med[k]:.2f}s, spread {min(walls):.2f}-{max(walls):.2f}s, CPU {cpu:.2f}s)"
        )
    print(f"b/a = {med['a'] / med['b']:.1f}   (target >= 5; baseline re-encodes every image)")
    print(f"b/d = {med['d'] / med['b']:.1f}   (careful baseline: copies the JPEG bytes too, one thread)")
    print(f"b/c = {med['c'] / med['b']:.2f}  (target >= 0.5)")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "images": n,
                    "size": args.size,
                    "repeat": args.repeat,
                    "median_s": med,
                    "spread_s": {k: [min(w for w, _ in v), max(w for w, _ in v)] for k, v in runs.items()},
                    "ratios": {"b/a": med["a"] / med["b"], "b/d": med["d"] / med["b"], "b/c": med["c"] / med["b"]},
                },
                indent=1,
            )
        )


if __name__ == "__main__":
    main()
