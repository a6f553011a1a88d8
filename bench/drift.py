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
    Jensen-Shannon for every feature, thresholds and decisions included).

Like with like: (a), (b) and (d) each run on one thread and on the same
``--workers`` threads (the baselines map their per-feature function over a
thread pool of that size, as a user would), take turns inside each of
``--repeat`` rounds, and report the median with the spread (min-max); every
ratio is a ratio of medians at the same thread count. Evidently runs once
(its own threading; it is outside the lock).

Then MMD² with ``--permutations`` permutations on ``--emb-rows`` x ``--emb-dims``
embeddings per side: a pair with a mean shift of 0.2 in 32 dimensions and an
unshifted pair. Targets: cvpipe flags exactly the 5 shifted features, the 20
features in <= 1 s, one MMD test in <= 1 s::

    .venv/bin/python bench/drift.py
    .venv/bin/python bench/drift.py --rows 100000 --repeat 3   # quick
    /tmp/ev-venv/bin/python bench/drift.py   # a throwaway venv with evidently installed beside the lock's pins
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
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


def median_of(repeat: int, fn: Callable[[], Any]) -> tuple[float, list[float], Any]:
    """Runs ``fn`` ``repeat`` times; returns the median time, all times and the last result."""
    times, out = [], None
    for _ in range(max(1, repeat)):
        secs, out = timed(fn)
        times.append(secs)
    return statistics.median(times), times, out


def _per_feature(
    fn: Callable[[np.ndarray, np.ndarray], bool], ref: dict[str, np.ndarray], cur: dict[str, np.ndarray], workers: int
) -> list[str]:
    """The features ``fn`` flags, mapped over a thread pool of ``workers`` (in the calling thread for 1)."""
    names = list(ref)
    if workers <= 1:
        hits = [fn(ref[f], cur[f]) for f in names]
    else:
        with ThreadPoolExecutor(workers) as pool:
            hits = list(pool.map(lambda f: fn(ref[f], cur[f]), names))
    return [f for f, hit in zip(names, hits, strict=True) if hit]


def _ks(r: np.ndarray, c: np.ndarray) -> bool:
    from scipy.stats import ks_2samp

    return bool(ks_2samp(r, c).pvalue < 0.01)


def _psi(r: np.ndarray, c: np.ndarray) -> bool:
    edges = np.unique(np.quantile(r, np.arange(1, 10) / 10))
    rp = np.bincount(np.searchsorted(edges, r, side="left"), minlength=len(edges) + 1) / len(r)
    cp = np.bincount(np.searchsorted(edges, c, side="left"), minlength=len(edges) + 1) / len(c)
    rp, cp = np.maximum(rp, 1e-4), np.maximum(cp, 1e-4)
    return float(np.sum((cp - rp) * np.log(cp / rp))) > 0.2


def scipy_ks(ref: dict[str, np.ndarray], cur: dict[str, np.ndarray], workers: int = 1) -> list[str]:
    return _per_feature(_ks, ref, cur, workers)


def numpy_psi(ref: dict[str, np.ndarray], cur: dict[str, np.ndarray], workers: int = 1) -> list[str]:
    return _per_feature(_psi, ref, cur, workers)


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
    ap.add_argument("--repeat", type=int, default=5, help="rounds; each time is the median of the rounds")
    ap.add_argument("--workers", type=int, default=0, help="threads of the parallel runs, baselines and cvpipe alike (0: cvpipe's auto)")
    ap.add_argument("--emb-rows", type=int, default=2000)
    ap.add_argument("--emb-dims", type=int, default=512)
    ap.add_argument("--permutations", type=int, default=100)
    ap.add_argument("--skip-evidently", action="store_true")
    ap.add_argument("--json", type=Path, help="also write the figures to this JSON file (for bench/readme_table.py)")
    args = ap.parse_args()

    ref, cur = generate(args.rows, 1, False), generate(args.rows, 2, True)
    cfg = DriftConfig(workers=args.workers, mmd_permutations=args.permutations)
    par = cfg.worker_count()
    print(
        f"{args.rows:,} rows per side x {len(ref)} numeric features; shifted: {', '.join(SHIFTED)}; "
        f"{args.repeat} round(s); cores: {os.cpu_count()}, load average {os.getloadavg()[0]:.1f}"
    )

    def cvpipe(workers: int) -> list[str]:
        report = check_drift(DriftInputs(features=ref), DriftInputs(features=cur), cfg.model_copy(update={"workers": workers}))
        return report.drifted_features()

    methods: dict[str, Callable[[int], list[str]]] = {
        "scipy.stats.ks_2samp per feature (p < 0.01)": partial(scipy_ks, ref, cur),
        "numpy PSI per feature (PSI > 0.2)": partial(numpy_psi, ref, cur),
        "cvpipe check_drift: PSI+KS+JS per feature": cvpipe,
    }
    threads = [1] if par == 1 else [1, par]
    times: dict[tuple[str, int], list[float]] = {(m, t): [] for m in methods for t in threads}
    flagged: dict[tuple[str, int], list[str]] = {}
    for _ in range(max(1, args.repeat)):
        for (name, t), runs in times.items():  # all methods in turn inside each round
            secs, flagged[(name, t)] = timed(partial(methods[name], t))
            runs.append(secs)
    med = {k: statistics.median(v) for k, v in times.items()}
    cv = "cvpipe check_drift: PSI+KS+JS per feature"

    width = max(len(m) for m in methods) + 12
    print(f"\n{'method':<{width}}  {'median s':>8}  {'(spread)':>13}  {'x cvpipe':>8}  flagged")
    for (name, t), runs in times.items():
        found = flagged[(name, t)]
        exact = "exactly the 5 shifted" if sorted(found) == sorted(SHIFTED) else f"{len(found)}: {', '.join(found)}"
        label = f"{name}, {t} thread{'s' if t > 1 else ''}"
        print(f"{label:<{width}}  {med[(name, t)]:8.3f}  {min(runs):6.3f}-{max(runs):6.3f}  {med[(name, t)] / med[(cv, t)]:8.1f}  {exact}")
    ev = None if args.skip_evidently else evidently_drift(ref, cur)
    if ev is not None:
        print(
            f"{ev[0]} (once, its own threads): {ev[1]:.3f} s = {ev[1] / med[(cv, par)]:.1f}x cvpipe on {par} threads; flagged {len(ev[2])}"
        )
    else:
        why = "--skip-evidently" if args.skip_evidently else "not importable here (not in the lock; see the module docstring)"
        print(f"evidently DataDriftPreset: skipped: {why}")
    print("\nratios at the same thread count (baseline median / cvpipe median):")
    ratios: dict[str, dict[str, float]] = {}
    for name in list(methods)[:2]:
        ratios[name] = {str(t): med[(name, t)] / med[(cv, t)] for t in threads}
        print(f"  {name}: " + ", ".join(f"{r:.1f}x on {t} thread(s)" for t, r in ratios[name].items()))

    rng = np.random.default_rng(3)
    x = rng.normal(size=(args.emb_rows, args.emb_dims)).astype(np.float32)
    y = rng.normal(size=(args.emb_rows, args.emb_dims)).astype(np.float32)
    y_shift = y.copy()
    y_shift[:, :32] += 0.2
    embedding_check(x[:100], y[:100], cfg)  # warm-up (BLAS threads, page faults)
    print(f"\nMMD² (RBF, median heuristic), {args.emb_rows} x {args.emb_dims} per side, {args.permutations} permutations:")
    mmd_out: dict[str, dict[str, Any]] = {}
    for label, other in (("mean +0.2 in 32 dims", y_shift), ("unshifted", y)):
        median, runs, (check, mmd) = median_of(args.repeat, partial(embedding_check, x, other, cfg))
        mmd_out[label] = {"median_s": median, "spread_s": [min(runs), max(runs)], "status": check.status}
        print(
            f"  {label:<22} {median:6.3f} s (spread {min(runs):.3f}-{max(runs):.3f})  MMD²={mmd.mmd2:.3g}  p={mmd.p_value:.4f}  -> {check.status}"
        )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "rows": args.rows,
                    "repeat": args.repeat,
                    "threads": threads,
                    "median_s": {f"{n} | {t}": v for (n, t), v in med.items()},
                    "spread_s": {f"{n} | {t}": [min(v), max(v)] for (n, t), v in times.items()},
                    "exact": {f"{n} | {t}": sorted(v) == sorted(SHIFTED) for (n, t), v in flagged.items()},
                    "ratios": ratios,
                    "mmd": mmd_out,
                    "emb": [args.emb_rows, args.emb_dims, args.permutations],
                },
                indent=1,
            )
        )


if __name__ == "__main__":
    main()
