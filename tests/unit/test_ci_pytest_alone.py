"""``make pytest-alone`` (.ci/pytest_alone.py): which files a seed picks, and what a run alone reports."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("cvpipe_ci_pytest_alone", ROOT / ".ci" / "pytest_alone.py")
assert _spec is not None and _spec.loader is not None
alone = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(alone)


def test_the_pool_is_unit_and_compile_files_without_the_heavy_ones():
    pool = alone.candidates()
    assert "tests/unit/test_ci_pytest_alone.py" in pool
    assert "tests/compile/test_golden.py" in pool
    assert not [f for f in pool if f.startswith(("tests/local/", "tests/image/"))]
    assert not set(alone.HEAVY) & set(pool)
    assert all(Path(f).name.startswith("test_") and (ROOT / f).is_file() for f in pool)
    for heavy in alone.HEAVY:
        assert (ROOT / heavy).is_file(), f"HEAVY names {heavy}, which does not exist"


def test_a_seed_always_picks_the_same_files():
    pool = [f"tests/unit/test_{i:02d}.py" for i in range(40)]
    picks = alone.sample(1234, 3, pool)
    assert len(picks) == 3 and len(set(picks)) == 3 and set(picks) <= set(pool)
    assert alone.sample(1234, 3, list(reversed(pool))) == picks
    assert len({tuple(alone.sample(seed, 3, pool)) for seed in range(20)}) > 1
    assert sorted(alone.sample(7, 50, pool)) == pool


def _write(path: Path, body: str) -> str:
    path.write_text(body)
    return str(path)


def test_each_file_runs_alone_and_a_failure_prints_its_replay(tmp_path):
    # The second file passes only if the first one's import was seen in the same process: alone, it fails.
    first = _write(tmp_path / "test_first.py", "import sys\n\ndef test_sets_flag():\n    sys.cvpipe_flag = True\n")
    second = _write(tmp_path / "test_second.py", "import sys\n\ndef test_needs_flag():\n    assert getattr(sys, 'cvpipe_flag', False)\n")
    together = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", first, second], cwd=tmp_path, capture_output=True, text=True
    )
    assert together.returncode == 0, together.stdout

    proc = subprocess.run(
        [sys.executable, str(ROOT / ".ci" / "pytest_alone.py"), "--seed", "42", first, second], capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    out = proc.stdout
    assert f"pytest-alone: seed 42, 2 file(s) given: {first} {second}" in out
    assert "--randomly-seed=42" in out
    summary = out[out.index("pytest-alone summary (seed 42):") :]
    assert "passed" in summary.splitlines()[1] and summary.splitlines()[1].endswith(first)
    assert "FAILED (exit 1)" in summary.splitlines()[2] and summary.splitlines()[2].endswith(second)
    assert f"1 file(s) failed when run alone; replay with:\n  make pytest-alone SEED=42 FILES={second}" in out


def test_no_further_file_starts_once_the_budget_is_spent(tmp_path):
    files = [_write(tmp_path / f"test_{name}.py", "def test_ok():\n    pass\n") for name in ("a", "b")]
    proc = subprocess.run(
        [sys.executable, str(ROOT / ".ci" / "pytest_alone.py"), "--seed", "3", "--budget", "0", *files],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"=== pytest-alone: {files[0]} " in proc.stdout and f"=== pytest-alone: {files[1]} " not in proc.stdout
    assert f'not run: the 0 s budget was spent; run them with:\n  make pytest-alone SEED=3 FILES="{files[1]}"' in proc.stdout


def test_bad_arguments_are_named(tmp_path):
    script = str(ROOT / ".ci" / "pytest_alone.py")
    proc = subprocess.run([sys.executable, script, "--seed", "1", "tests/unit/test_nope.py"], capture_output=True, text=True)
    assert proc.returncode == 2 and "no such test file: tests/unit/test_nope.py" in proc.stderr
    proc = subprocess.run([sys.executable, script, "--seed", "1", "--count", "0"], capture_output=True, text=True)
    assert proc.returncode == 2 and "--count must be at least 1, got 0" in proc.stderr
    proc = subprocess.run([sys.executable, script, "--seed", "9", "--list"], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.startswith("pytest-alone: seed 9, 3 file(s) sampled from")
    assert "=== pytest-alone:" not in proc.stdout
