"""``make pytest-alone``: run a few test files, each on its own, picked by a printed seed.

Every test file must pass when it runs alone (``pytest tests/unit/test_x.py``), not only
inside the whole suite, where an earlier file may have done an import, started a server
or written a file that it silently relies on. Running every file alone costs more than
the suite itself, so CI samples: each ``make test`` picks ``--count`` files (3) from
tests/unit and tests/compile with the same seed that orders the whole suite
(pytest-randomly's ``--randomly-seed``), and runs each in a fresh pytest process with
that seed. tests/local and tests/image are left out of the sample (minutes per file),
and so are the unit files in ``HEAVY`` (minutes alone). To bound the time this adds to
CI, no further file starts once ``--budget`` seconds (60 for a sample) have passed; the
files it did not start are printed with the command that runs them.

A failure prints the command that replays it. Usage::

    python .ci/pytest_alone.py --seed N [--count 3] [--budget 60]  # the sample for seed N
    python .ci/pytest_alone.py --seed N FILE [FILE...]             # these files, each alone
    python .ci/pytest_alone.py --seed N --list                     # print the sample, run nothing

(``make pytest-alone SEED=N`` or ``make pytest-alone FILES="tests/unit/test_x.py ..."``.)
Exit status 0 when every file that ran passed alone, 1 otherwise, 2 on a bad argument.
"""

from __future__ import annotations

import argparse
import math
import random
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
POOLS = ("tests/unit", "tests/compile")
DEFAULT_BUDGET_S = 60.0
# Files that take over 2 minutes alone even with their services installed (make test runs this step after
# the suite, which has installed them): times from a run of every file alone on 2 loaded cores.
HEAVY = {
    "tests/unit/test_label_studio_real.py": "starts Label Studio (170 s alone)",
    "tests/unit/test_registry.py": "every registry test on local, Vertex and a real MLflow server (386 s alone)",
    "tests/unit/test_registry_concurrency.py": "concurrent and crashing pushes in real processes (609 s alone)",
    "tests/unit/test_beam_distributed.py": "Beam's multi-process DirectRunner and a Dask cluster of two processes (447 s alone at load 12)",
    "tests/unit/test_train_multiworker.py": "two TensorFlow worker processes training in sync (121 s alone at load 10)",
    "tests/unit/test_train_run.py": "every task's training run end to end (258 s alone at nice 15 beside a suite run)",
    "tests/unit/test_train_workers.py": "cvpipe's trainer on two worker processes, and a killed worker's rerun (196 s alone, same)",
    "tests/unit/test_train_vertex_job.py": "a Vertex AI custom job whose replicas train as real processes (147 s alone, same)",
    "tests/unit/test_train_resume.py": "a trainer killed mid-run and resumed, and a warm start (144 s alone, same)",
    "tests/unit/test_console.py": "the console served and driven in Chromium by Playwright, after a real training run (107-157 s)",
}


def candidates(root: Path = ROOT) -> list[str]:
    """The test files the sample is drawn from, sorted, as paths relative to ``root``.

    Args:
        root: The repository root.

    Returns:
        Every ``test_*.py`` under tests/unit and tests/compile except those in ``HEAVY``.
    """
    files = sorted(p.relative_to(root).as_posix() for pool in POOLS for p in (root / pool).glob("test_*.py"))
    return [f for f in files if f not in HEAVY]


def sample(seed: int, count: int, pool: Sequence[str]) -> list[str]:
    """``count`` files of ``pool`` chosen by ``seed`` (the same seed always gives the same files).

    Args:
        seed: The seed (pytest-randomly's ``--randomly-seed`` of the same CI run).
        count: How many files to pick; all of them when the pool is smaller.
        pool: The files to pick from.

    Returns:
        The picked files in the order they will run.
    """
    return random.Random(seed).sample(sorted(pool), min(count, len(pool)))


def run_alone(path: str, seed: int, python: str = sys.executable) -> tuple[int, float]:
    """Run one test file in its own pytest process.

    Args:
        path: The test file, relative to the repository root.
        seed: pytest-randomly's seed for the order inside the file.
        python: The interpreter whose pytest runs it.

    Returns:
        pytest's exit status and the seconds it took.
    """
    start = time.monotonic()
    proc = subprocess.run(
        [python, "-m", "pytest", path, "-q", "-p", "no:cacheprovider", "-p", "randomly", f"--randomly-seed={seed}"],
        cwd=ROOT,
        check=False,
    )
    return proc.returncode, time.monotonic() - start


def main(argv: Sequence[str] | None = None) -> int:
    """Pick (or take) the files, run each alone and print a summary with replay commands."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, required=True, help="pytest-randomly's seed; also picks the files")
    parser.add_argument("--count", type=int, default=3, help="how many files to sample (default 3)")
    parser.add_argument(
        "--budget",
        type=float,
        default=None,
        help="start no further file after this many seconds (default: 60 for a sample, none for given files)",
    )
    parser.add_argument("--list", action="store_true", help="print the chosen files and run nothing")
    parser.add_argument("files", nargs="*", help="run these files alone instead of a sample")
    args = parser.parse_args(argv)
    if args.count < 1:
        parser.error(f"--count must be at least 1, got {args.count}")
    missing = [f for f in args.files if not (ROOT / f).is_file()]
    if missing:
        parser.error(f"no such test file: {', '.join(missing)}")

    files = list(args.files) or sample(args.seed, args.count, candidates())
    how = "given" if args.files else f"sampled from {len(candidates())} files in {' and '.join(POOLS)}"
    print(f"pytest-alone: seed {args.seed}, {len(files)} file(s) {how}: {' '.join(files)}", flush=True)
    if args.list:
        return 0

    budget = args.budget if args.budget is not None else (math.inf if args.files else DEFAULT_BUDGET_S)
    results = []
    start = time.monotonic()
    for i, path in enumerate(files):
        if i and time.monotonic() - start > budget:
            break
        print(f"\n=== pytest-alone: {path} (alone, --randomly-seed={args.seed}) ===", flush=True)
        results.append((path, *run_alone(path, args.seed)))

    print(f"\npytest-alone summary (seed {args.seed}):")
    for path, status, seconds in results:
        print(f"  {'passed' if status == 0 else f'FAILED (exit {status})':<16} {seconds:7.1f} s  {path}")
    skipped = files[len(results) :]
    if skipped:
        print(f"  not run: the {budget:g} s budget was spent; run them with:")
        print(f'  make pytest-alone SEED={args.seed} FILES="{" ".join(skipped)}"')
    failed = [path for path, status, _ in results if status != 0]
    if failed:
        print(f"\n{len(failed)} file(s) failed when run alone; replay with:")
        for path in failed:
            print(f"  make pytest-alone SEED={args.seed} FILES={path}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
