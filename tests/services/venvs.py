"""PyPI tools that cannot be installed beside the lock, each in its own cached virtual environment.

:func:`cached_venv` makes ``~/.cache/cvpipe/<name>-<version>`` (``CVPIPE_CACHE_DIR``
moves it) with ``uv`` on first use and reuses it afterwards; a ``.complete``
marker written last and a lock file (``fcntl``) make a half-made or concurrently
made environment safe. checkov and Label Studio live this way.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from .processes import ServiceUnavailable

__all__ = ["cached_venv"]


def _uv() -> str | None:
    here = Path(sys.executable).parent / "uv"
    return str(here) if here.is_file() else shutil.which("uv")


def cached_venv(name: str, version: str, requirements: Sequence[str], exe_name: str, timeout_s: float = 1800.0) -> Path:
    """An executable of a tool in its own environment, installing the environment when missing.

    Args:
        name: the tool, as the message and the folder name say it (``<name>-<version>``).
        version: its version, part of the folder name and the marker's text.
        requirements: what ``uv pip install`` is given, e.g. ``["checkov==3.3.30"]``.
        exe_name: the executable under the environment's ``bin``.
        timeout_s: limit of each install command.

    Returns:
        The executable's path.

    Raises:
        ServiceUnavailable: uv is missing or the install failed (the message says why).
    """
    base = Path(os.environ.get("CVPIPE_CACHE_DIR") or Path.home() / ".cache" / "cvpipe")
    home = base / f"{name}-{version}"
    exe = home / "bin" / exe_name
    marker = home / ".complete"
    if marker.is_file() and exe.is_file():
        return exe
    uv = _uv()
    if uv is None:
        raise ServiceUnavailable(f"uv is needed to install {name} into its own environment (make venv installs it)")
    home.parent.mkdir(parents=True, exist_ok=True)
    with open(home.parent / f"{home.name}.lock", "a") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        if marker.is_file() and exe.is_file():  # made by someone else while we waited
            return exe
        shutil.rmtree(home, ignore_errors=True)
        base_python = getattr(sys, "_base_executable", sys.executable)
        for cmd in (
            [uv, "venv", "--python", base_python, str(home)],
            [uv, "pip", "install", "--python", str(home / "bin" / "python"), *requirements],
        ):
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)
            if done.returncode != 0:
                raise ServiceUnavailable(f"`{' '.join(cmd)}` failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
        marker.write_text(version, encoding="utf-8")
    return exe
