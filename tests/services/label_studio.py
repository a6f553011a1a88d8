"""A real Label Studio server for tests: PyPI ``label-studio`` in its own environment beside the lock.

Label Studio pins Django and many other packages the lock cannot share, so it
lives in a separate virtual environment, ``~/.cache/cvpipe/label-studio-<version>``
(``CVPIPE_CACHE_DIR`` moves it), created with ``uv`` on first use (seconds from
uv's cache, about 800 MB) and reused afterwards; a ``.complete`` marker written
last and a lock file make a half-made or concurrently made environment safe.

The server runs as a process on 127.0.0.1 with its data in a temporary
directory: ``label-studio start --no-browser --host 127.0.0.1 --port P
--username U --password W --user-token T``; ``LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN``
lets the legacy ``Authorization: Token T`` header (what
:class:`components.sample.labelstudio.LabelStudioClient` sends) authenticate.
It takes about 30 s to answer ``/health``: start it once per session.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from .processes import Service, ServiceUnavailable, free_port

__all__ = ["LS_VERSION", "USER", "ensure_label_studio", "label_studio"]

LS_VERSION = "1.23.2"
USER = "cvpipe@example.com"
_PASSWORD = "cvpipe-test-password"


def _home() -> Path:
    base = Path(os.environ.get("CVPIPE_CACHE_DIR") or Path.home() / ".cache" / "cvpipe")
    return base / f"label-studio-{LS_VERSION}"


def _uv() -> str | None:
    here = Path(sys.executable).parent / "uv"
    return str(here) if here.is_file() else shutil.which("uv")


def ensure_label_studio(timeout_s: float = 1800.0) -> Path:
    """The ``label-studio`` executable, installing it into its own environment when missing.

    Args:
        timeout_s: limit of each install command.

    Returns:
        The executable's path.

    Raises:
        ServiceUnavailable: uv is missing or the install failed (the message says why).
    """
    home = _home()
    exe = home / "bin" / "label-studio"
    marker = home / ".complete"
    if marker.is_file() and exe.is_file():
        return exe
    uv = _uv()
    if uv is None:
        raise ServiceUnavailable("uv is needed to install label-studio into its own environment (make venv installs it)")
    home.parent.mkdir(parents=True, exist_ok=True)
    with open(home.parent / f"{home.name}.lock", "a") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        if marker.is_file() and exe.is_file():  # made by someone else while we waited
            return exe
        shutil.rmtree(home, ignore_errors=True)
        base_python = getattr(sys, "_base_executable", sys.executable)
        for cmd in (
            [uv, "venv", "--python", base_python, str(home)],
            [uv, "pip", "install", "--python", str(home / "bin" / "python"), f"label-studio=={LS_VERSION}"],
        ):
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
            if done.returncode != 0:
                raise ServiceUnavailable(f"`{' '.join(cmd)}` failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
        marker.write_text(LS_VERSION, encoding="utf-8")
    return exe


@contextlib.contextmanager
def label_studio(base: Path, token: str, deadline_s: float = 600.0) -> Iterator[str]:
    """Runs a Label Studio server with one user whose legacy API token is ``token``.

    Args:
        base: a fresh directory for its data and log.
        token: the user's API token.
        deadline_s: how long it may take to answer ``/health`` (about 30 s on an idle machine).

    Yields:
        Its base URL.
    """
    exe = ensure_label_studio()
    port = free_port()
    data = base / "data"
    data.mkdir(parents=True, exist_ok=True)
    env = {
        "LABEL_STUDIO_BASE_DATA_DIR": str(data),
        "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
        "LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED": "false",
        "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "true",
        "SENTRY_DSN": "",
        "FRONTEND_SENTRY_DSN": "",
        "COLLECT_ANALYTICS": "false",
    }
    argv = [
        str(exe),
        "start",
        "--no-browser",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--username",
        USER,
        "--password",
        _PASSWORD,
        "--user-token",
        token,
    ]
    url = f"http://127.0.0.1:{port}"
    with Service("label-studio", argv, url + "/health", base / "label-studio.log", env=env, deadline_s=deadline_s):
        yield url
