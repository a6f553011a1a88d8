"""checkov (PyPI) for linting the Kubernetes manifests, in its own environment beside the lock.

checkov cannot be installed beside the lock (its networkx pin conflicts with scikit-image's), so it lives
in ``~/.cache/cvpipe/checkov-<version>`` (``CVPIPE_CACHE_DIR`` moves it), created with ``uv`` on first use
(seconds from uv's cache, about 200 MB) and reused afterwards; a ``.complete`` marker written last and a
lock file make a half-made or concurrently made environment safe (as for Label Studio).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from .processes import ServiceUnavailable

__all__ = ["CHECKOV_VERSION", "ensure_checkov", "run_checkov"]

CHECKOV_VERSION = "3.3.30"


def _home() -> Path:
    base = Path(os.environ.get("CVPIPE_CACHE_DIR") or Path.home() / ".cache" / "cvpipe")
    return base / f"checkov-{CHECKOV_VERSION}"


def ensure_checkov(timeout_s: float = 1800.0) -> Path:
    """The ``checkov`` executable, installing it into its own environment when missing.

    Raises:
        ServiceUnavailable: uv is missing or the install failed (the message says why).
    """
    home = _home()
    exe = home / "bin" / "checkov"
    marker = home / ".complete"
    if marker.is_file() and exe.is_file():
        return exe
    here = Path(sys.executable).parent / "uv"
    uv = str(here) if here.is_file() else shutil.which("uv")
    if uv is None:
        raise ServiceUnavailable("uv is needed to install checkov into its own environment (make venv installs it)")
    home.parent.mkdir(parents=True, exist_ok=True)
    with open(home.parent / f"{home.name}.lock", "a") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        if marker.is_file() and exe.is_file():  # made by someone else while we waited
            return exe
        shutil.rmtree(home, ignore_errors=True)
        base_python = getattr(sys, "_base_executable", sys.executable)
        for cmd in (
            [uv, "venv", "--python", base_python, str(home)],
            [uv, "pip", "install", "--python", str(home / "bin" / "python"), f"checkov=={CHECKOV_VERSION}"],
        ):
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)
            if done.returncode != 0:
                raise ServiceUnavailable(f"`{' '.join(cmd)}` failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
        marker.write_text(CHECKOV_VERSION, encoding="utf-8")
    return exe


def run_checkov(exe: Path, directory: Path, timeout_s: float = 600.0) -> dict[str, Any]:
    """checkov's Kubernetes checks on every manifest in ``directory``, offline: its JSON report.

    ``--skip-download`` keeps it from fetching guidelines from its vendor's platform (no network needed).
    """
    done = subprocess.run(
        [str(exe), "-d", str(directory), "--framework", "kubernetes", "--skip-download", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
        env={**os.environ, "LOG_LEVEL": "WARNING"},
    )
    if done.returncode not in (0, 1):  # 1: some check failed (the report says which)
        raise RuntimeError(f"checkov failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    report = json.loads(done.stdout)
    assert isinstance(report, dict), "one framework, one report"
    return report
