"""Benchmark: cvpipe's COCO bbox evaluator against pycocotools (and faster-coco-eval when importable).

Generates a COCO-like set (default 5,000 images, 80 classes, ~7 ground-truth
boxes per image with 1% crowds, 100 scored detections per image), evaluates
it with pycocotools' COCOeval (evaluate/accumulate/summarize), faster-coco-eval
(if importable) and cvpipe's :func:`~components.evaluate.metrics_detection.evaluate_detection`
in one process, and prints seconds, ratios and the largest difference of the
12 statistics from pycocotools. Peak memory is each evaluator's RSS high-water
mark (``VmHWM``) above its starting point, measured in a fresh child process
per evaluator once its inputs are built, so C/C++ allocations count too.

Each evaluator starts from its own natural input: pycocotools and
faster-coco-eval from the COCO dataset dict and results list (their time
includes building the COCO index and ``loadRes``; the "evaluate only" column
leaves that out), cvpipe from columnar numpy arrays.

    .venv/bin/python bench/coco_eval.py                    # full size
    .venv/bin/python bench/coco_eval.py --images 500       # quick
    PYTHONPATH=/tmp/fce-only .venv/bin/python bench/coco_eval.py   # with faster-coco-eval from elsewhere
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from components.evaluate.metrics_detection import Detections, GroundTruth, evaluate_detection


def generate(n_images: int, n_classes: int, gt_per_image: float, dets_per_image: int, crowd: float, seed: int) -> dict[str, np.ndarray]:
    """A synthetic set as columnar arrays: detections are jittered copies of objects plus clutter."""
    rng = np.random.default_rng(seed)
    n_gt = rng.poisson(gt_per_image, n_images)
    g_img = np.repeat(np.arange(1, n_images + 1), n_gt)
    g = len(g_img)
    side = np.exp(rng.uniform(np.log(4), np.log(400), (g, 2)))  # all three COCO area ranges
    xy = rng.uniform(0, 640, (g, 2))
    g_box = np.concatenate([xy, side], axis=1)
    g_cat = rng.integers(1, n_classes + 1, g)
    g_crowd = rng.random(g) < crowd
    g_area = side[:, 0] * side[:, 1] * rng.uniform(0.6, 1.0, g)  # mask area below box area
    # detections: ~2 jittered per object (85% right class), the rest clutter, 100 per image
    d_img, d_box, d_cat, d_score = [], [], [], []
    per_obj = rng.poisson(2.0, g)
    src = np.repeat(np.arange(g), per_obj)
    jitter = rng.normal(0, 0.12, (len(src), 4))
    jb = g_box[src].copy()
    jb[:, :2] += jitter[:, :2] * jb[:, 2:]
    jb[:, 2:] *= np.exp(jitter[:, 2:])
    jc = np.where(rng.random(len(src)) < 0.85, g_cat[src], rng.integers(1, n_classes + 1, len(src)))
    js = np.clip(rng.beta(5, 2, len(src)), 0, 1)
    d_img.append(g_img[src])
    d_box.append(jb)
    d_cat.append(jc)
    d_score.append(js)
    have = np.bincount(g_img[src], minlength=n_images + 1)[1:]
    clutter = np.maximum(dets_per_image - have, 0)
    c_img = np.repeat(np.arange(1, n_images + 1), clutter)
    c = len(c_img)
    cs = np.exp(rng.uniform(np.log(4), np.log(400), (c, 2)))
    d_img.append(c_img)
    d_box.append(np.concatenate([rng.uniform(0, 640, (c, 2)), cs], axis=1))
    d_cat.append(rng.integers(1, n_classes + 1, c))
    d_score.append(rng.beta(2, 5, c))
    di = np.concatenate(d_img)
    order = np.argsort(di, kind="stable")
    # scores rounded to 3 digits, as exported results often are: plenty of ties
    return {
        "g_img": g_img,
        "g_box": np.round(g_box, 2),
        "g_cat": g_cat,
        "g_crowd": g_crowd,
        "g_area": np.round(g_area, 2),
        "d_img": di[order],
        "d_box": np.round(np.concatenate(d_box)[order], 2),
        "d_cat": np.concatenate(d_cat)[order],
        "d_score": np.round(np.concatenate(d_score)[order], 3),
        "n_images": np.array(n_images),
        "n_classes": np.array(n_classes),
    }


def to_coco(data: dict[str, np.ndarray]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The set as a COCO dataset dict and a results list (annotation ids from 1)."""
    n_images, n_classes = int(data["n_images"]), int(data["n_classes"])
    anns = [
        {"id": i + 1, "image_id": int(im), "category_id": int(c), "bbox": [float(v) for v in b], "area": float(a), "iscrowd": int(cr)}
        for i, (im, c, b, a, cr) in enumerate(
            zip(data["g_img"], data["g_cat"], data["g_box"], data["g_area"], data["g_crowd"], strict=True)
        )
    ]
    dataset = {
        "images": [{"id": i, "width": 640, "height": 640} for i in range(1, n_images + 1)],
        "annotations": anns,
        "categories": [{"id": c, "name": f"class{c}"} for c in range(1, n_classes + 1)],
    }
    results = [
        {"image_id": int(im), "category_id": int(c), "bbox": [float(v) for v in b], "score": float(s)}
        for im, c, b, s in zip(data["d_img"], data["d_cat"], data["d_box"], data["d_score"], strict=True)
    ]
    return dataset, results


def run_pycocotools(dataset: dict[str, Any], results: list[dict[str, Any]]) -> tuple[np.ndarray, float, float]:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        t0 = time.perf_counter()
        gt = COCO()
        gt.dataset = dataset
        gt.createIndex()
        dt = gt.loadRes(results)
        t1 = time.perf_counter()
        ev = COCOeval(gt, dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
        t2 = time.perf_counter()
    return np.asarray(ev.stats), t2 - t0, t2 - t1


def run_faster(dataset: dict[str, Any], results: list[dict[str, Any]]) -> tuple[np.ndarray, float, float]:
    from faster_coco_eval import COCO, COCOeval_faster

    with contextlib.redirect_stdout(io.StringIO()):
        t0 = time.perf_counter()
        gt = COCO(dataset)
        dt = gt.loadRes(results)
        t1 = time.perf_counter()
        ev = COCOeval_faster(gt, dt, "bbox", print_function=lambda *a, **k: None)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
        t2 = time.perf_counter()
    return np.asarray(ev.stats[:12]), t2 - t0, t2 - t1


def run_cvpipe(data: dict[str, np.ndarray]) -> tuple[np.ndarray, float, float]:
    t0 = time.perf_counter()
    gt = GroundTruth.from_arrays(data["g_img"], data["g_cat"], data["g_box"], data["g_area"], data["g_crowd"])
    dt = Detections.from_arrays(data["d_img"], data["d_cat"], data["d_box"], data["d_score"])
    t1 = time.perf_counter()
    m = evaluate_detection(
        gt, dt, image_ids=np.arange(1, int(data["n_images"]) + 1), category_ids=list(range(1, int(data["n_classes"]) + 1))
    )
    t2 = time.perf_counter()
    return m.stats, t2 - t0, t2 - t1


def has_faster() -> bool:
    try:
        import faster_coco_eval  # noqa: F401
    except ImportError:
        return False
    return True


def _vm(field: str) -> int:
    """A ``/proc/self/status`` size in bytes (``VmRSS``, ``VmHWM``)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(field)


def worker(name: str, path: str) -> None:
    """Child process: load the set, reset the RSS high-water mark, evaluate, print the peak increase (MiB) as JSON.

    ``ru_maxrss`` survives ``exec`` (it would report the parent's size), so the
    peak is the process's own ``VmHWM``, reset once the inputs are built.
    """
    data = dict(np.load(path))
    inputs: tuple[Any, ...] = to_coco(data) if name != "cvpipe" else (data,)
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset VmHWM to the current RSS
    except OSError:
        pass
    start = _vm("VmRSS")
    if name == "cvpipe":
        run_cvpipe(*inputs)
    elif name == "faster-coco-eval":
        run_faster(*inputs)
    else:
        run_pycocotools(*inputs)
    print(json.dumps({"peak_mib": (_vm("VmHWM") - start) / 2**20}))


def measure_memory(name: str, path: str) -> float | None:
    out = subprocess.run([sys.executable, __file__, "--worker", name, "--data", path], capture_output=True, text=True, check=False)
    try:
        return float(json.loads(out.stdout.strip().splitlines()[-1])["peak_mib"])
    except (ValueError, IndexError, KeyError):
        print(f"  memory worker for {name} failed: {out.stderr[-500:]}")
        return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=5000)
    ap.add_argument("--classes", type=int, default=80)
    ap.add_argument("--gt-per-image", type=float, default=7.0)
    ap.add_argument("--dets-per-image", type=int, default=100)
    ap.add_argument("--crowd", type=float, default=0.01)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-memory", action="store_true", help="skip the per-evaluator memory runs")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args.worker, args.data)
        return

    data = generate(args.images, args.classes, args.gt_per_image, args.dets_per_image, args.crowd, args.seed)
    dataset, results = to_coco(data)
    print(
        f"{args.images} images, {args.classes} classes, {len(data['g_img'])} ground-truth boxes ({int(data['g_crowd'].sum())} crowd), {len(results)} detections"
    )
    rows: list[tuple[str, np.ndarray, float, float]] = []
    rows.append(("pycocotools", *run_pycocotools(dataset, results)))
    if has_faster():
        rows.append(("faster-coco-eval", *run_faster(dataset, results)))
    else:
        print("faster-coco-eval: not importable, skipped")
    rows.append(("cvpipe", *run_cvpipe(data)))
    ref_stats, ref_total, ref_eval = rows[0][1], rows[0][2], rows[0][3]
    memory: dict[str, float | None] = {}
    if not args.skip_memory:
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "set.npz")
            np.savez(path, **data)
            for name, *_ in rows:
                memory[name] = measure_memory(name, path)
    print()
    print(f"{'evaluator':<18}{'total s':>9}{'eval s':>9}{'x pyc total':>12}{'x pyc eval':>11}{'max |d stat|':>14}{'peak MiB':>10}")
    for name, stats, total, ev in rows:
        mem = memory.get(name)
        print(
            f"{name:<18}{total:>9.2f}{ev:>9.2f}{ref_total / total:>12.1f}{ref_eval / ev:>11.1f}"
            f"{float(np.abs(stats - ref_stats).max()):>14.2e}{(f'{mem:.0f}' if mem is not None else 'n/a'):>10}"
        )
    by = {name: (total, ev) for name, _, total, ev in rows}
    if "faster-coco-eval" in by:
        f_total, f_eval = by["faster-coco-eval"]
        c_total, c_eval = by["cvpipe"]
        print(f"\ncvpipe vs faster-coco-eval: {f_total / c_total:.1f}x (total), {f_eval / c_eval:.1f}x (evaluate only)")
    print("stats (pycocotools):", " ".join(f"{v:.4f}" for v in ref_stats))


if __name__ == "__main__":
    main()
