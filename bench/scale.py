"""Benchmark: how ingest, validate and transform grow with the number of images, and a large COCO file.

For each size (default 1,000 and 10,000 images; add 100,000 with ``--sizes``)
the project's own generator (:mod:`components.synth`) writes a detection set
of small JPEGs (64x64, 1-3 objects with RLE masks, COCO annotations), once:
a later run reuses it. Then each step runs as the pipeline runs it (the real
``run`` with lineage in ML Metadata on SQLite), each in a fresh child process,
and the bench prints per step:

* wall seconds, CPU seconds (the step's process and every worker process it
  waited for) and peak memory (the largest resident set among them, from
  ``wait4``), and
* the growth factor per tenfold of images (target <= 12x, near linear) and
  whether peak memory stays under 2 GB.

``--large-coco N`` also writes a COCO file of ``N`` annotations (default
1,000,000) over the images of the largest generated set (10 per image over
100,000 images), with a polygon each as COCO has, and in the same run times
(a) pycocotools' ``COCO(file)`` (the load a user knows) and (b) cvpipe's ingest
of it (which does more: checks every image header, hashes every file, checks
every box and polygon, builds the label map, writes the manifest), each in a
child process, alternating over ``--repeat`` rounds; it prints the medians and
the ratio b/a (target <= 2) and both peaks (target <= 2 GB).

The machine's load average is printed beside the figures: on a shared machine
wall time moves with the load, CPU seconds much less. Examples::

    nice -n 10 .venv/bin/python bench/scale.py --sizes 1000 10000
    nice -n 10 .venv/bin/python bench/scale.py --sizes 1000 10000 100000 --large-coco 1000000 --plot docs/scaling.png

``--json FILE`` writes every figure for the docs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

STEPS = ("ingest", "validate", "transform")
GROWTH_TARGET = 12.0
MEMORY_TARGET_MB = 2048.0
IMAGE_SIZE = 64


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.1f} {five:.1f} {fifteen:.1f}"


def _measure(cmd: list[str], env: dict[str, str] | None = None) -> dict[str, float]:
    """Runs a child process; returns wall seconds, CPU seconds and peak RSS in MB of it and its waited-for children."""
    start = time.monotonic()
    proc = subprocess.Popen(cmd, env=env or {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed with exit status {proc.returncode}")
    return {"seconds": wall, "cpu_seconds": usage.ru_utime + usage.ru_stime, "peak_mb": usage.ru_maxrss / 1024.0}


# -- data -----------------------------------------------------------------------------------------


def dataset(work: Path, n: int) -> Path:
    """The generated detection set of ``n`` images under ``work`` (generated once, then reused)."""
    from components.synth.core import SynthConfig, generate

    out = work / f"data-{n}"
    cfg = SynthConfig(num_images=n, image_size=(IMAGE_SIZE, IMAGE_SIZE), min_object_size=0.3, max_object_size=0.6, seed=16)
    marker = out / "synth.json"
    if marker.is_file() and json.loads(marker.read_text()).get("config") == cfg.model_dump(mode="json"):
        return out
    start = time.monotonic()
    generate(cfg, out)
    print(f"generated {n} images in {time.monotonic() - start:.0f} s -> {out}", flush=True)
    return out


def large_coco(work: Path, images_from: Path, annotations: int) -> Path:
    """A COCO file of ``annotations`` boxes with polygons over the images of a generated set (written once)."""
    import numpy as np

    src = json.loads((images_from / "annotations.json").read_text())
    images = [{k: im[k] for k in ("id", "file_name", "width", "height")} for im in src["images"]]
    out = images_from / f"large-{annotations}.json"
    if out.is_file():
        return out
    rng = np.random.default_rng(16)
    per = annotations / len(images)
    xy = rng.uniform(0, IMAGE_SIZE / 2, (annotations, 2)).round(2)
    wh = rng.uniform(4, IMAGE_SIZE / 2, (annotations, 2)).round(2)
    cats = rng.integers(1, len(src["categories"]) + 1, annotations)
    anns = []
    for k in range(annotations):
        x, y = float(xy[k, 0]), float(xy[k, 1])
        w, h = float(wh[k, 0]), float(wh[k, 1])
        anns.append(
            {
                "id": k + 1,
                "image_id": images[min(int(k / per), len(images) - 1)]["id"],
                "category_id": int(cats[k]),
                "bbox": [x, y, w, h],
                "area": round(w * h, 2),
                "iscrowd": 0,
                "segmentation": [[x, y, x + w, y, x + w, y + h, x, y + h]],
            }
        )
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps({"images": images, "annotations": anns, "categories": src["categories"]}))
    tmp.replace(out)
    return out


# -- steps, each in its own child process ---------------------------------------------------------------


def _spec(run_dir: Path, source: Path, images: Path) -> Any:
    from components.core.spec import PipelineSpec

    return PipelineSpec.model_validate(
        {
            "name": "scale",
            "task": "detection",
            "data": {"source": str(source), "format": "coco", "images": str(images)},
            "runtime": {"root": str(run_dir / "runs"), "metadata": {"url": f"sqlite:///{run_dir / 'mlmd.sqlite'}"}},
        }
    )


def run_step(step: str, run_dir: Path, source: Path, images: Path) -> None:
    """Runs one step as the pipeline runs it, reading the previous step's outputs under ``run_dir``."""
    from components.core.step import StepContext

    spec = _spec(run_dir, source, images)
    ctx = StepContext(spec=spec, run_id="scale", component=step)
    if step == "ingest":
        from components.ingest.core import run

        run(ctx, run_dir / "manifest", run_dir / "label_map", run_dir / "ingest-quarantine")
    elif step == "validate":
        from components.validate.core import ValidateOutputs
        from components.validate.core import run as validate

        validate(ctx, run_dir / "manifest", run_dir / "label_map", ValidateOutputs.under(run_dir / "validate"))
    elif step == "transform":
        from components.transform.core import run as transform

        transform(ctx, run_dir / "validate" / "validated", run_dir / "label_map", run_dir / "examples", run_dir / "transform-quarantine")
    else:
        raise SystemExit(f"unknown step {step!r}")


def pycoco_load(source: Path) -> None:
    """pycocotools' load of a COCO file: ``json.load`` and its indexes."""
    import contextlib
    import io

    from pycocotools.coco import COCO

    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(source))
    assert len(coco.anns) > 0


def _child(*args: str) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), "--child", *args]


# -- reporting --------------------------------------------------------------------------------------


def curves(work: Path, sizes: list[int]) -> dict[str, Any]:
    results: dict[int, dict[str, dict[str, float]]] = {}
    for n in sizes:
        data = dataset(work, n)
        run_dir = work / f"run-{n}"
        shutil.rmtree(run_dir, ignore_errors=True)
        run_dir.mkdir(parents=True)
        results[n] = {}
        for step in STEPS:
            load = _load()
            m = _measure(_child("step", step, str(run_dir), str(data / "annotations.json"), str(data)))
            m["load"] = load  # type: ignore[assignment]
            results[n][step] = m
            print(
                f"{n:>7} images  {step:<9} {m['seconds']:8.1f} s  {m['cpu_seconds']:8.1f} CPU s  "
                f"{m['peak_mb']:7.0f} MB peak  (load {load})",
                flush=True,
            )
        shutil.rmtree(run_dir / "examples", ignore_errors=True)  # the shards are the bulk of the disk
    print(f"\n{'step':<10} {'images':>8} {'seconds':>9} {'CPU s':>9} {'peak MB':>8}  growth per tenfold (seconds, CPU s, memory)")
    verdicts = []
    for step in STEPS:
        prev: tuple[int, dict[str, float]] | None = None
        for n in sizes:
            m = results[n][step]
            growth = ""
            if prev is not None:
                p_n, p = prev
                tenfolds = max(1e-9, __import__("math").log10(n / p_n))
                g = {k: (m[k] / max(p[k], 1e-9)) ** (1 / tenfolds) for k in ("seconds", "cpu_seconds", "peak_mb")}
                m["growth"] = g  # type: ignore[assignment]
                ok = g["cpu_seconds"] <= GROWTH_TARGET
                verdicts.append(ok)
                growth = f"  x{g['seconds']:.1f}, x{g['cpu_seconds']:.1f}, x{g['peak_mb']:.1f}  {'ok' if ok else 'OVER TARGET'}"
            mem_ok = m["peak_mb"] <= MEMORY_TARGET_MB
            verdicts.append(mem_ok)
            print(
                f"{step:<10} {n:>8} {m['seconds']:>9.1f} {m['cpu_seconds']:>9.1f} {m['peak_mb']:>8.0f}"
                f"{'' if mem_ok else ' (over 2 GB)'}{growth}"
            )
            prev = (n, m)
    print(
        f"targets: growth <= {GROWTH_TARGET:g}x per tenfold (CPU s), peak <= {MEMORY_TARGET_MB:g} MB: {'met' if all(verdicts) else 'NOT met'}"
    )
    return {str(n): r for n, r in results.items()}


def compare_large(work: Path, images_from: Path, annotations: int, repeat: int) -> dict[str, Any]:
    source = large_coco(work, images_from, annotations)
    size_mb = source.stat().st_size / 2**20
    print(f"\nlarge COCO file: {annotations} annotations over the images of {images_from.name} ({size_mb:.0f} MB) {source}")
    rows: dict[str, list[dict[str, float]]] = {"pycocotools COCO()": [], "cvpipe ingest": []}
    for r in range(repeat):
        load = _load()
        a = _measure(_child("pycoco", str(source)))
        run_dir = work / "run-large"
        shutil.rmtree(run_dir, ignore_errors=True)
        run_dir.mkdir(parents=True)
        b = _measure(_child("step", "ingest", str(run_dir), str(source), str(images_from)))
        rows["pycocotools COCO()"].append(a)
        rows["cvpipe ingest"].append(b)
        print(
            f"round {r + 1}: pycocotools {a['seconds']:.1f} s {a['cpu_seconds']:.1f} CPU s {a['peak_mb']:.0f} MB; "
            f"cvpipe ingest {b['seconds']:.1f} s {b['cpu_seconds']:.1f} CPU s {b['peak_mb']:.0f} MB (load {load})",
            flush=True,
        )
    med = {name: {k: statistics.median(m[k] for m in ms) for k in ("seconds", "cpu_seconds", "peak_mb")} for name, ms in rows.items()}
    a, b = med["pycocotools COCO()"], med["cvpipe ingest"]
    for name, m in med.items():
        print(f"{name:<20} {m['seconds']:8.1f} s  {m['cpu_seconds']:8.1f} CPU s  {m['peak_mb']:7.0f} MB peak (median of {repeat})")
    ratio = b["seconds"] / a["seconds"]
    cpu_ratio = b["cpu_seconds"] / a["cpu_seconds"]
    ok = ratio <= 2.0 and b["peak_mb"] <= MEMORY_TARGET_MB
    print(f"cvpipe / pycocotools: x{ratio:.2f} wall, x{cpu_ratio:.2f} CPU (target <= 2, peak <= 2 GB): {'met' if ok else 'NOT met'}")
    return {"annotations": annotations, "file_mb": size_mb, "median": med, "ratio": ratio, "cpu_ratio": cpu_ratio, "rounds": rows}


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = sorted(int(n) for n in results)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for step in STEPS:
        axes[0].plot(sizes, [results[str(n)][step]["cpu_seconds"] for n in sizes], marker="o", label=step)
        axes[1].plot(sizes, [results[str(n)][step]["peak_mb"] for n in sizes], marker="o", label=step)
    lo, hi = sizes[0], sizes[-1]
    base = min(results[str(lo)][s]["cpu_seconds"] for s in STEPS)
    axes[0].plot([lo, hi], [base, base * hi / lo], "k:", label="linear")
    axes[0].set(xscale="log", yscale="log", xlabel="images", ylabel="CPU seconds", title="cost per step")
    axes[1].set(xscale="log", yscale="log", xlabel="images", ylabel="peak MB", title="peak memory per step")
    axes[1].axhline(MEMORY_TARGET_MB, color="r", linestyle="--", label="2 GB")
    for ax in axes:
        ax.legend()
        ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    print(f"plot -> {path}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    p.add_argument("--work", type=Path, default=Path("/tmp/cvpipe-scale"), help="datasets and outputs (kept for later runs)")
    p.add_argument("--large-coco", type=int, default=0, metavar="N", help="also compare ingest of N annotations with pycocotools")
    p.add_argument("--repeat", type=int, default=1, help="rounds of the large-file comparison")
    p.add_argument("--skip-curves", action="store_true", help="only the large-file comparison")
    p.add_argument("--json", type=Path, help="write the figures here")
    p.add_argument("--plot", type=Path, help="write a PNG of the curves here")
    p.add_argument("--child", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        kind, *rest = args.child
        if kind == "step":
            run_step(rest[0], Path(rest[1]), Path(rest[2]), Path(rest[3]))
        elif kind == "pycoco":
            pycoco_load(Path(rest[0]))
        return
    import logging

    logging.basicConfig(level=logging.WARNING)
    args.work.mkdir(parents=True, exist_ok=True)
    sizes = sorted(args.sizes)
    print(f"cvpipe scale bench: sizes {sizes}, {IMAGE_SIZE}x{IMAGE_SIZE} JPEGs, {os.cpu_count()} CPUs, load {_load()}", flush=True)
    out: dict[str, Any] = {"load_start": _load(), "cpus": os.cpu_count()}
    if not args.skip_curves:
        out["curves"] = curves(args.work, sizes)
        if args.plot:
            plot(out["curves"], args.plot)
    if args.large_coco:
        out["large_coco"] = compare_large(args.work, dataset(args.work, sizes[-1]), args.large_coco, args.repeat)
    out["load_end"] = _load()
    if args.json:
        args.json.write_text(json.dumps(out, indent=1, default=str))


if __name__ == "__main__":
    main()
