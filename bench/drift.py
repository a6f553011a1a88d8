"""Benchmark: cvpipe's drift checks against scipy's ks_2samp, a straightforward numpy PSI and Evidently.

Generates image statistics for a reference and a current window (``--rows``
rows each, 20 numeric features, 5 of them shifted) and, in this one process
and on the same arrays, times:

(a) ``scipy.stats.ks_2samp`` per feature (flags p < 0.01);
(b) a straightforward numpy PSI per feature: ``np.quantile`` deciles of the
    reference, ``searchsorted`` counts (flags PSI > 0.2);
(c) Evidently's ``DataDriftPreset`` when Evidently is importable (it is not in
    the lock; see below), else prints ``skipped``;
(d) cvpipe: :func:`components.drift.check_drift` on the features (PSI, KS and
    Jensen-Shannon for every feature, thresholds and decisions included), best
    of ``--repeat``, with the configured threads and with one.

Then MMD² with ``--permutations`` permutations on ``--emb-rows`` x ``--emb-dims``
embeddings per side: a pair with a mean shift of 0.2 in 32 dimensions and an
unshifted pair. Targets: cvpipe flags exactly the 5 shifted features, the 20
features in <= 1 s, one MMD test in <= 1 s::

    .venv/bin/python bench/drift.py
    /tmp/ev-venv/bin/python bench/drift.py   # a throwaway venv with evidently installed beside the lock's pins
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from components.drift import DriftConfig, DriftInputs, check_drift, embedding_check

SHIFTED = ("brightness", "contrast", "width", "sharpness", "jpeg_quality")


def generate(rows: int, seed: int, shifted: bool) -> dict[str, np.ndarray]:
    """Twenty image statistics; with ``shifted`` the five in :data:`SHIFTED` move."""
    rng = np.random.default_rng(seed)
    s = shifted
    return {
        "brightness": rng.normal(120 + (15 if s else 0), 30, rows),  # +0.5 sd
        "contrast": rng.normal(50, 12 * (1.8 if s else 1), rows),  # wider spread
        "saturation": rng.beta(2, 5, rows),
        "hue": rng.uniform(0, 360, rows),
        "sharpness": rng.lognormal(3 + (0.35 if s else 0), 0.6, rows),  # blurrier / sharper camera
        "entropy": rng.normal(7, 0.5, rows),
        "width": rng.choice([640, 1024, 1280, 1920], rows, p=[0.1, 0.2, 0.3, 0.4] if s else [0.4, 0.3, 0.2, 0.1]).astype(np.float64),
        "height": rng.choice([480, 768, 720, 1080], rows, p=[0.4, 0.3, 0.2, 0.1]).astype(np.float64),
        "aspect_ratio": rng.normal(1.5, 0.1, rows),
        "file_size_kb": rng.lognormal(5, 0.8, rows),
        "jpeg_quality": np.clip(np.round(rng.normal(90 - (6 if s else 0), 5, rows)), 1, 100),
        "noise": rng.gamma(2, 2, rows),
        "edge_density": rng.beta(3, 3, rows),
        "colorfulness": rng.normal(40, 15, rows),
        "red_mean": rng.normal(118, 25, rows),
        "green_mean": rng.normal(121, 25, rows),
        "blue_mean": rng.normal(110, 25, rows),
        "dark_fraction": rng.beta(1, 9, rows),
        "bright_fraction": rng.beta(1, 12, rows),
        "blur": rng.exponential(1.0, rows),
    }


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def best_of(repeat: int, fn: Callable[[], Any]) -> tuple[float, Any]:
    """Runs ``fn`` ``repeat`` times; returns the best time and the last result."""
    times, out = [], None
    for _ in range(max(1, repeat)):
        secs, out = timed(fn)
        times.append(secs)
    return min(times), out


def scipy_ks(ref: dict[str, np.ndarray], cur: dict[str, np.ndarray]) -> list[str]:
    from scipy.stats import ks_2samp

    return [f for f in ref if ks_2samp(ref[f], cur[f]).pvalue < 0.01]


def numpy_psi(ref: dict[str, np.ndarray], cur: dict[str, np.ndarray]) -> list[str]:
    flagged = []
    for f in ref:
        edges = np.unique(np.quantile(ref[f], np.arange(1, 10) / 10))
        r = np.bincount(np.searchsorted(edges, ref[f], side="left"), minlength=len(edges) + 1) / len(ref[f])
        c = np.bincount(np.searchsorted(edges, cur[f], side="left"), minlength=len(edges) + 1) / len(cur[f])
        r, c = np.maximum(r, 1e-4), np.maximum(c, 1e-4)
        if float(np.sum((c - r) * np.log(c / r))) > 0.2:
            flagged.append(f)
    return flagged


def evidently_drift(ref: dict[str, np.ndarray], cur: dict[str, np.ndarray]) -> tuple[str, float, list[str]] | None:
    try:
        import evidently
        import pandas as pd
        from evidently import DataDefinition, Dataset, Report
        from evidently.presets import DataDriftPreset
    except ImportError:
        return None
    t = time.perf_counter()
    definition = DataDefinition(numerical_columns=list(ref))
    snapshot = Report([DataDriftPreset()]).run(
        current_data=Dataset.from_pandas(pd.DataFrame(cur), data_definition=definition),
        reference_data=Dataset.from_pandas(pd.DataFrame(ref), data_definition=definition),
    )
    seconds = time.perf_counter() - t
    flagged, methods = [], set()
    for m in snapshot.dict()["metrics"]:
        cfg = m.get("config", {})
        if cfg.get("type", "").endswith("ValueDrift"):
            methods.add(cfg["method"])
            value, threshold = float(m["value"]), float(cfg["threshold"])
            # Distance methods drift at value >= threshold; p-value methods below it.
            drifted = value < threshold if "p_value" in cfg["method"] else value >= threshold
            if drifted:
                flagged.append(cfg["column"])
    return f"evidently {evidently.__version__} DataDriftPreset ({', '.join(sorted(methods))})", seconds, flagged


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000, help="rows per side")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--workers", type=int, default=0, help="threads of the numeric checks (0: auto)")
    ap.add_argument("--emb-rows", type=int, default=2000)
    ap.add_argument("--emb-dims", type=int, default=512)
    ap.add_argument("--permutations", type=int, default=100)
    ap.add_argument("--skip-evidently", action="store_true")
    args = ap.parse_args()

    ref, cur = generate(args.rows, 1, False), generate(args.rows, 2, True)
    print(f"{args.rows:,} rows per side x {len(ref)} numeric features; shifted: {', '.join(SHIFTED)}")
    results: list[tuple[str, float, list[str]]] = []

    secs, flagged = timed(lambda: scipy_ks(ref, cur))
    results.append(("scipy.stats.ks_2samp per feature (p < 0.01)", secs, flagged))
    secs, flagged = timed(lambda: numpy_psi(ref, cur))
    results.append(("numpy PSI per feature (PSI > 0.2)", secs, flagged))
    ev = None if args.skip_evidently else evidently_drift(ref, cur)
    if ev is not None:
        results.append(ev)

    cfg = DriftConfig(workers=args.workers, mmd_permutations=args.permutations)
    for workers in (cfg.worker_count(), 1):
        run = partial(check_drift, DriftInputs(features=ref), DriftInputs(features=cur), cfg.model_copy(update={"workers": workers}))
        best, report = best_of(args.repeat, run)
        results.append((f"cvpipe check_drift: PSI+KS+JS, {workers} thread(s), best of {args.repeat}", best, report.drifted_features()))

    width = max(len(r[0]) for r in results)
    cvpipe_s = results[-2][1]
    print(f"\n{'method':<{width}}  {'seconds':>8}  {'x cvpipe':>8}  flagged")
    for name, secs, flagged in results:
        exact = "exactly the 5 shifted" if sorted(flagged) == sorted(SHIFTED) else f"{len(flagged)}: {', '.join(flagged)}"
        print(f"{name:<{width}}  {secs:8.3f}  {secs / cvpipe_s:8.1f}  {exact}")
    if ev is None:
        why = "--skip-evidently" if args.skip_evidently else "not importable here (not in the lock; see the module docstring)"
        print(f"evidently DataDriftPreset: skipped: {why}")

    rng = np.random.default_rng(3)
    x = rng.normal(size=(args.emb_rows, args.emb_dims)).astype(np.float32)
    y = rng.normal(size=(args.emb_rows, args.emb_dims)).astype(np.float32)
    y_shift = y.copy()
    y_shift[:, :32] += 0.2
    embedding_check(x[:100], y[:100], cfg)  # warm-up (BLAS threads, page faults)
    print(f"\nMMD² (RBF, median heuristic), {args.emb_rows} x {args.emb_dims} per side, {args.permutations} permutations:")
    for label, other in (("mean +0.2 in 32 dims", y_shift), ("unshifted", y)):
        best, (check, mmd) = best_of(args.repeat, partial(embedding_check, x, other, cfg))
        print(f"  {label:<22} {best:6.3f} s  MMD²={mmd.mmd2:.3g}  p={mmd.p_value:.4f}  -> {check.status}")


if __name__ == "__main__":
    main()
