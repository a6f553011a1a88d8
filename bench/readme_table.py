"""Runs the benchmarks at their documented sizes and writes the README's benchmark table from their own output.

Each bench writes its figures with ``--json``; this script turns them into
the table between the ``<!-- bench:begin -->`` and ``<!-- bench:end -->``
markers of README.md, with the date, the core count and the load average
before and after (and a note that the machine was shared when the load
average exceeded the core count). The benches' full output is kept beside
the JSON in ``bench/results/`` (ignored by git)::

    make bench                                  # all, documented sizes
    .venv/bin/python bench/readme_table.py --quick   # small sizes, README untouched unless --write
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"

# The documented sizes (what the README quotes), and small ones for a quick look.
SIZES: dict[str, dict[str, list[str]]] = {
    "full": {
        "coco_eval": ["--images", "300", "--repeat", "3"],
        "drift": ["--rows", "200000", "--repeat", "3"],
        "transform": ["--images", "500", "--repeat", "3"],
    },
    "quick": {
        "coco_eval": ["--images", "100", "--repeat", "2"],
        "drift": ["--rows", "50000", "--repeat", "2", "--emb-rows", "500"],
        "transform": ["--images", "100", "--repeat", "2"],
    },
}


# Benches not run by `make bench` (they start servers and take their own time); their rows are kept as measured.
SEPARATE_ROWS = [
    "| `bench/serve.py` | the model's batched predict in process on decoded images | measured on its own, not by `make bench`: "
    "b/a 0.74 under 32 HTTP clients; logged rows = 2xx answers; one parquet file per flush interval; 10,000 requests with a SIGKILL: "
    "every acknowledged row logged once ([Serving](#serving)) |",
]


def run_bench(name: str, args: list[str], out_dir: Path) -> dict[str, Any]:
    """Runs ``bench/NAME.py`` with ``args``; returns its JSON figures (its output goes to ``out_dir/NAME.txt``)."""
    json_path = out_dir / f"{name}.json"
    cmd = [sys.executable, str(REPO / "bench" / f"{name}.py"), *args, "--json", str(json_path)]
    print("$", " ".join(cmd[1:]), flush=True)
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=REPO)
    (out_dir / f"{name}.txt").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        raise SystemExit(f"bench/{name}.py failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    print(proc.stdout, flush=True)
    return dict(json.loads(json_path.read_text()))


def _x(v: float) -> str:
    return f"{v:.1f}x" if v < 100 else f"{v:.0f}x"


def coco_row(c: dict[str, Any]) -> list[str]:
    sets = {s["scores"]: s for s in c["sets"]}
    names = set(sets[next(iter(sets))]["median_s"])
    baseline = (
        f"pycocotools COCOeval{' and faster-coco-eval' if 'faster-coco-eval' in names else ''}, "
        f"both sides from the same COCO JSON files ({c['images']:,} images, {c['classes']} classes, {c['detections']:,} detections), "
        f"median of {c['repeat']}"
    )
    parts = []
    worst = max(max(s["max_stat_diff"].values()) for s in c["sets"])
    parts.append("identical 12 statistics" if worst == 0 else f"12 statistics within {worst:.1e} of pycocotools'")
    for kind, s in sets.items():
        r = s["ratios"]["pycocotools"]
        t = s["median_s"]
        parts.append(
            f"{kind} scores ({s['above_f1_threshold']:.0%} above the F1 threshold): {_x(r['total'])} from the files, "
            f"{_x(r['eval'])} evaluate only ({t['cvpipe']['total']:.2f} s vs {t['pycocotools']['total']:.1f} s)"
        )
        if "faster-coco-eval" in s["ratios"]:
            parts[-1] += f"; {_x(s['ratios']['faster-coco-eval']['total'])} faster-coco-eval"
    mem = next((s.get("peak_mib") for s in c["sets"] if s.get("peak_mib")), None)
    if mem and mem.get("cvpipe") and mem.get("pycocotools"):
        parts.append(f"peak {mem['cvpipe']:.0f} MiB vs {mem['pycocotools']:.0f} MiB")
    return ["`bench/coco_eval.py`", baseline, "; ".join(parts)]


def transform_row(t: dict[str, Any]) -> list[str]:
    m, r = t["median_s"], t["ratios"]
    baseline = (
        f"(a) PIL open + RGB + re-encode + one TFRecordWriter, one thread; (d) the same copying the JPEG bytes, one thread; "
        f"(c) a plain byte copy ({t['images']:,} JPEGs {t['size']}x{t['size']}, in turn, median of {t['repeat']})"
    )
    result = (
        f"cvpipe {t['images'] / m['b']:.0f} images/s: {_x(r['b/a'])} baseline (a), {_x(r['b/d'])} careful baseline (d), "
        f"{r['b/c']:.2f}x the byte copy"
    )
    return ["`bench/transform.py`", baseline, result]


def drift_row(d: dict[str, Any]) -> list[str]:
    med = d["median_s"]
    threads = d["threads"]
    cv = "cvpipe check_drift: PSI+KS+JS per feature"
    baseline = (
        f"scipy ks_2samp / numpy PSI per feature ({d['rows']:,} rows x 20 features per side), "
        f"on the same {' and '.join(str(t) for t in threads)} thread(s) as cvpipe, median of {d['repeat']}"
    )
    exact = all(d["exact"].values())
    parts = ["every method flags exactly the 5 shifted features" if exact else "not every method flags exactly the 5 shifted features"]
    parts.append("cvpipe (PSI, KS and JS) " + ", ".join(f"{med[f'{cv} | {t}']:.2f} s on {t} thread(s)" for t in threads))
    for name, by in d["ratios"].items():
        short = "scipy KS" if name.startswith("scipy") else "numpy PSI"
        parts.append(f"vs {short}: " + ", ".join(f"{_x(v)} ({t} thread(s))" for t, v in by.items()))
    rows, dims, perms = d["emb"]
    m = d["mmd"]["mean +0.2 in 32 dims"]
    parts.append(f"MMD {perms} permutations on {rows:,}x{dims} in {m['median_s']:.2f} s ({m['status']})")
    return ["`bench/drift.py`", baseline, "; ".join(parts)]


def table(results: dict[str, dict[str, Any]], when: str, cores: int, load: tuple[float, float]) -> str:
    rows = [coco_row(results["coco_eval"]), transform_row(results["transform"]), drift_row(results["drift"])]
    shared = max(load) > cores
    lines = [
        BEGIN,
        f"Measured {when} by `make bench` on {cores} cores; load average {load[0]:.1f} before, {load[1]:.1f} after"
        + (" (the machine was shared with other work: absolute times are slow, ratios are of medians taken in turn)." if shared else "."),
        "",
        "| script | baseline | result |",
        "|---|---|---|",
        *(f"| {' | '.join(cell.replace('|', '/') for cell in row)} |" for row in rows),
        "| `bench/train_input.py` | the same model fed from in-memory tensors | not run by `make bench` (it measures the training input pipeline, which needs an accelerator to mean much) |",
        *SEPARATE_ROWS,
        END,
    ]
    return "\n".join(lines)


def write_readme(text: str, readme: Path) -> None:
    content = readme.read_text()
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
    if not pattern.search(content):
        raise SystemExit(f"{readme}: no {BEGIN} ... {END} block to replace")
    readme.write_text(pattern.sub(lambda _: text, content))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes; prints the table without touching README.md unless --write")
    ap.add_argument("--write", action="store_true", help="with --quick, write README.md anyway")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results", help="where the benches' output and JSON go")
    ap.add_argument("--from-json", action="store_true", help="rebuild the table from the JSON already in --out, without running")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    cores = os.cpu_count() or 1
    sizes = SIZES["quick" if args.quick else "full"]
    meta_path = args.out / "meta.json"
    if args.from_json:
        results = {name: json.loads((args.out / f"{name}.json").read_text()) for name in sizes}
        meta = json.loads(meta_path.read_text())
    else:
        before = os.getloadavg()[0]
        when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        results = {name: run_bench(name, sizes[name], args.out) for name in ("coco_eval", "transform", "drift")}
        meta = {"when": when, "cores": cores, "load": [before, os.getloadavg()[0]]}
        meta_path.write_text(json.dumps(meta))
    text = table(results, meta["when"], meta["cores"], (meta["load"][0], meta["load"][1]))
    print(text)
    if not args.quick or args.write:
        write_readme(text, REPO / "README.md")
        print("README.md: benchmark table rewritten")


if __name__ == "__main__":
    main()
