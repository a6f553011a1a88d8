"""Benchmark: cvpipe's COCO bbox evaluator against pycocotools (and faster-coco-eval when importable).

Generates a COCO-like set (default 5,000 images, 80 classes, ~7 ground-truth
boxes per image with 1% crowds, 100 detections per image) and writes it as
the two COCO JSON files a user has (``instances.json`` and ``results.json``).
Every evaluator starts from those files, in this one process: pycocotools
and faster-coco-eval load them with their ``COCO`` and ``loadRes``; cvpipe
with ``json.load`` and :meth:`GroundTruth.from_coco` / :meth:`Detections.from_coco`,
then :func:`~components.evaluate.metrics_detection.evaluate_detection` (which
also computes the confusion matrix, precision, recall and F1 at its score
threshold, work pycocotools does not do). The "evaluate" column leaves the
loading out on every side.

The same boxes are scored three ways (``--scores``):

* ``synthetic``: matched boxes Beta(5,2), clutter Beta(2,5) (the original set);
* ``detector``: like a real detector's output, most boxes low and a few high
  (matched: 60% Beta(6,2), 40% Beta(1,6); clutter Beta(0.6,12));
* ``uniform``: every score uniform on [0, 1], so far more boxes pass the F1
  score threshold.

The evaluators take turns inside each of ``--repeat`` rounds (so all see the
same load from other processes); each time is the median of the rounds, with
the spread (min-max) beside it, and every ratio is printed (ratio of medians).
Peak memory is each evaluator's RSS high-water mark (``VmHWM``) above its
starting point, measured once on the first score set in a fresh child process
per evaluator once its input files are read, so C/C++ allocations count too.

    .venv/bin/python bench/coco_eval.py                          # full size
    .venv/bin/python bench/coco_eval.py --images 300 --repeat 2  # quick
    PYTHONPATH=/tmp/fce-only .venv/bin/python bench/coco_eval.py # with faster-coco-eval from elsewhere
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from components.evaluate.metrics_detection import Detections, GroundTruth, evaluate_detection

SCORE_SETS = ("synthetic", "detector", "uniform")


def generate(n_images: int, n_classes: int, gt_per_image: float, dets_per_image: int, crowd: float, seed: int) -> dict[str, np.ndarray]:
    """A synthetic set as columnar arrays: detections are jittered copies of objects (``d_matched``) plus clutter."""
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
    per_obj = rng.poisson(2.0, g)
    src = np.repeat(np.arange(g), per_obj)
    jitter = rng.normal(0, 0.12, (len(src), 4))
    jb = g_box[src].copy()
    jb[:, :2] += jitter[:, :2] * jb[:, 2:]
    jb[:, 2:] *= np.exp(jitter[:, 2:])
    jc = np.where(rng.random(len(src)) < 0.85, g_cat[src], rng.integers(1, n_classes + 1, len(src)))
    have = np.bincount(g_img[src], minlength=n_images + 1)[1:]
    clutter = np.maximum(dets_per_image - have, 0)
    c_img = np.repeat(np.arange(1, n_images + 1), clutter)
    c = len(c_img)
    cs = np.exp(rng.uniform(np.log(4), np.log(400), (c, 2)))
    di = np.concatenate([g_img[src], c_img])
    order = np.argsort(di, kind="stable")
    return {
        "g_img": g_img,
        "g_box": np.round(g_box, 2),
        "g_cat": g_cat,
        "g_crowd": g_crowd,
        "g_area": np.round(g_area, 2),
        "d_img": di[order],
        "d_box": np.round(np.concatenate([jb, np.concatenate([rng.uniform(0, 640, (c, 2)), cs], axis=1)])[order], 2),
        "d_cat": np.concatenate([jc, rng.integers(1, n_classes + 1, c)])[order],
        "d_matched": np.concatenate([np.ones(len(src), bool), np.zeros(c, bool)])[order],
        "n_images": np.array(n_images),
        "n_classes": np.array(n_classes),
    }


def scores(data: dict[str, np.ndarray], kind: str, seed: int) -> np.ndarray:
    """Scores for the detections of ``data`` (see the module docstring), rounded to 3 digits as exported results often are."""
    rng = np.random.default_rng([seed, SCORE_SETS.index(kind)])
    matched = data["d_matched"]
    n = len(matched)
    if kind == "synthetic":
        s = np.where(matched, rng.beta(5, 2, n), rng.beta(2, 5, n))
    elif kind == "detector":
        confident = rng.random(n) < 0.6
        s = np.where(matched, np.where(confident, rng.beta(6, 2, n), rng.beta(1, 6, n)), rng.beta(0.6, 12, n))
    elif kind == "uniform":
        s = rng.random(n)
    else:
        raise ValueError(f"unknown score set {kind!r}; choose from {', '.join(SCORE_SETS)}")
    return np.round(np.clip(s, 0, 1), 3)


def write_coco(data: dict[str, np.ndarray], score: np.ndarray, directory: Path) -> tuple[Path, Path]:
    """Writes ``instances.json`` (the dataset) and ``results.json`` (the detections); annotation ids from 1."""
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
        for im, c, b, s in zip(data["d_img"], data["d_cat"], data["d_box"], score, strict=True)
    ]
    directory.mkdir(parents=True, exist_ok=True)
    gt_path, dt_path = directory / "instances.json", directory / "results.json"
    gt_path.write_text(json.dumps(dataset))
    dt_path.write_text(json.dumps(results))
    return gt_path, dt_path


# Each evaluator: (gt_path, dt_path) -> (12 stats, total seconds, evaluate-only seconds).


def run_pycocotools(gt_path: Path, dt_path: Path) -> tuple[np.ndarray, float, float]:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        t0 = time.perf_counter()
        gt = COCO(str(gt_path))
        dt = gt.loadRes(str(dt_path))
        t1 = time.perf_counter()
        ev = COCOeval(gt, dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
        t2 = time.perf_counter()
    return np.asarray(ev.stats), t2 - t0, t2 - t1


def run_faster(gt_path: Path, dt_path: Path) -> tuple[np.ndarray, float, float]:
    from faster_coco_eval import COCO, COCOeval_faster

    with contextlib.redirect_stdout(io.StringIO()):
        t0 = time.perf_counter()
        gt = COCO(str(gt_path))
        dt = gt.loadRes(str(dt_path))
        t1 = time.perf_counter()
        ev = COCOeval_faster(gt, dt, "bbox", print_function=lambda *a, **k: None)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
        t2 = time.perf_counter()
    return np.asarray(ev.stats[:12]), t2 - t0, t2 - t1


def run_cvpipe(gt_path: Path, dt_path: Path) -> tuple[np.ndarray, float, float]:
    t0 = time.perf_counter()
    with open(gt_path) as f:
        dataset = json.load(f)
    with open(dt_path) as f:
        results = json.load(f)
    gt = GroundTruth.from_coco(dataset["annotations"])
    dt = Detections.from_coco(results)
    t1 = time.perf_counter()
    m = evaluate_detection(gt, dt, image_ids=[im["id"] for im in dataset["images"]], category_ids=[c["id"] for c in dataset["categories"]])
    t2 = time.perf_counter()
    return m.stats, t2 - t0, t2 - t1


EVALUATORS: dict[str, Callable[[Path, Path], tuple[np.ndarray, float, float]]] = {
    "pycocotools": run_pycocotools,
    "faster-coco-eval": run_faster,
    "cvpipe": run_cvpipe,
}


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


def worker(name: str, gt_path: str, dt_path: str) -> None:
    """Child process: reset the RSS high-water mark, evaluate from the files, print the peak increase (MiB) as JSON.

    ``ru_maxrss`` survives ``exec`` (it would report the parent's size), so the
    peak is the process's own ``VmHWM``, reset just before the evaluator runs.
    """
    fn = EVALUATORS[name]
    if name == "faster-coco-eval":
        import faster_coco_eval  # noqa: F401  (imports are not the evaluator's memory)
    elif name == "pycocotools":
        import pycocotools.cocoeval  # noqa: F401
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset VmHWM to the current RSS
    except OSError:
        pass
    start = _vm("VmRSS")
    fn(Path(gt_path), Path(dt_path))
    print(json.dumps({"peak_mib": (_vm("VmHWM") - start) / 2**20}))


def measure_memory(name: str, gt_path: Path, dt_path: Path) -> float | None:
    out = subprocess.run(
        [sys.executable, __file__, "--worker", name, "--data", str(gt_path), str(dt_path)], capture_output=True, text=True, check=False
    )
    try:
        return float(json.loads(out.stdout.strip().splitlines()[-1])["peak_mib"])
    except (ValueError, IndexError, KeyError):
        print(f"  memory worker for {name} failed: {out.stderr[-500:]}")
        return None


def _spread(values: list[float]) -> str:
    return f"{min(values):.2f}-{max(values):.2f}"


def bench_set(kind: str, gt_path: Path, dt_path: Path, names: list[str], repeat: int) -> dict[str, Any]:
    """Runs the evaluators in turn ``repeat`` times on one score set; prints the table and returns the figures."""
    times: dict[str, list[tuple[float, float]]] = {n: [] for n in names}
    stats: dict[str, np.ndarray] = {}
    for r in range(repeat):
        # rotate who goes first, so no evaluator always runs right after another's garbage
        for name in names[r % len(names) :] + names[: r % len(names)]:
            st, total, ev = EVALUATORS[name](gt_path, dt_path)
            times[name].append((total, ev))
            stats[name] = st
    med = {n: (statistics.median(t for t, _ in v), statistics.median(e for _, e in v)) for n, v in times.items()}
    ref = stats["pycocotools"]
    print(f"\n[{kind} scores] median of {repeat} (min-max)")
    print(f"{'evaluator':<18}{'total s':>9}{'(spread)':>14}{'eval s':>9}{'(spread)':>14}{'max |d stat|':>14}")
    for n in names:
        tot = [t for t, _ in times[n]]
        evs = [e for _, e in times[n]]
        d = float(np.abs(stats[n] - ref).max())
        print(f"{n:<18}{med[n][0]:>9.2f}{_spread(tot):>14}{med[n][1]:>9.2f}{_spread(evs):>14}{d:>14.2e}")
    ratios: dict[str, dict[str, float]] = {}
    for base in names:
        if base == "cvpipe":
            continue
        ratios[base] = {"total": med[base][0] / med["cvpipe"][0], "eval": med[base][1] / med["cvpipe"][1]}
        print(f"cvpipe vs {base}: {ratios[base]['total']:.1f}x from the JSON files, {ratios[base]['eval']:.1f}x evaluate only")
    return {
        "scores": kind,
        "median_s": {n: {"total": med[n][0], "eval": med[n][1]} for n in names},
        "spread_s": {n: {"total": [min(t for t, _ in v), max(t for t, _ in v)]} for n, v in times.items()},
        "ratios": ratios,
        "max_stat_diff": {n: float(np.abs(stats[n] - ref).max()) for n in names},
        "stats": [float(v) for v in ref],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=5000)
    ap.add_argument("--classes", type=int, default=80)
    ap.add_argument("--gt-per-image", type=float, default=7.0)
    ap.add_argument("--dets-per-image", type=int, default=100)
    ap.add_argument("--crowd", type=float, default=0.01)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=3, help="rounds; each time is the median of the rounds")
    ap.add_argument("--scores", default=",".join(SCORE_SETS), help=f"score sets to run, from {', '.join(SCORE_SETS)}")
    ap.add_argument("--skip-memory", action="store_true", help="skip the per-evaluator memory runs")
    ap.add_argument("--json", type=Path, help="also write the figures to this JSON file (for bench/readme_table.py)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--data", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args.worker, *args.data)
        return

    kinds = [k.strip() for k in args.scores.split(",") if k.strip()]
    data = generate(args.images, args.classes, args.gt_per_image, args.dets_per_image, args.crowd, args.seed)
    names = ["pycocotools", *(["faster-coco-eval"] if has_faster() else []), "cvpipe"]
    print(
        f"{args.images} images, {args.classes} classes, {len(data['g_img'])} ground-truth boxes ({int(data['g_crowd'].sum())} crowd), "
        f"{len(data['d_img'])} detections; {args.repeat} round(s); cores: {os.cpu_count()}, load average {os.getloadavg()[0]:.1f}"
    )
    if "faster-coco-eval" not in names:
        print("faster-coco-eval: not importable, skipped")
    out: dict[str, Any] = {"images": args.images, "classes": args.classes, "detections": len(data["d_img"]), "repeat": args.repeat}
    out["sets"] = []
    with tempfile.TemporaryDirectory(prefix="cvpipe-coco-") as tmp:
        for i, kind in enumerate(kinds):
            score = scores(data, kind, args.seed)
            gt_path, dt_path = write_coco(data, score, Path(tmp) / kind)
            above = float((score >= 0.3).mean())
            print(f"\n{kind}: {above:.0%} of detections score >= 0.3 (cvpipe's F1 threshold)")
            result = bench_set(kind, gt_path, dt_path, names, args.repeat)
            result["above_f1_threshold"] = above
            if i == 0 and not args.skip_memory:
                result["peak_mib"] = {n: measure_memory(n, gt_path, dt_path) for n in names}
                print(
                    "peak MiB above start: "
                    + ", ".join(f"{n} {m:.0f}" if m is not None else f"{n} n/a" for n, m in result["peak_mib"].items())
                )
            out["sets"].append(result)
    print("\nstats (pycocotools, first set):", " ".join(f"{v:.4f}" for v in out["sets"][0]["stats"]))
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
