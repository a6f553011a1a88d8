"""checkov (PyPI) for linting the Kubernetes manifests, in its own environment beside the lock.

checkov cannot be installed beside the lock (its networkx pin conflicts with scikit-image's), so it lives
in ``~/.cache/cvpipe/checkov-<version>`` (``CVPIPE_CACHE_DIR`` moves it), created with ``uv`` on first use
(seconds from uv's cache, about 200 MB) and reused afterwards by :func:`.venvs.cached_venv`, whose
``.complete`` marker written last and lock file make a half-made or concurrently made environment safe.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from .venvs import cached_venv

__all__ = ["CHECKOV_VERSION", "ensure_checkov", "run_checkov"]

CHECKOV_VERSION = "3.3.30"


def ensure_checkov(timeout_s: float = 1800.0) -> Path:
    """The ``checkov`` executable, installing it into its own environment when missing.

    Raises:
        ServiceUnavailable: uv is missing or the install failed (the message says why).
    """
    return cached_venv("checkov", CHECKOV_VERSION, [f"checkov=={CHECKOV_VERSION}"], "checkov", timeout_s)


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
