"""A real Label Studio server for tests: PyPI ``label-studio`` in its own environment beside the lock.

Label Studio pins Django and many other packages the lock cannot share, so it
lives in a separate virtual environment, ``~/.cache/cvpipe/label-studio-<version>``
(``CVPIPE_CACHE_DIR`` moves it), created with ``uv`` on first use (seconds from
uv's cache, about 800 MB) and reused afterwards by :func:`.venvs.cached_venv`,
whose ``.complete`` marker written last and lock file make a half-made or
concurrently made environment safe.

The server runs as a process on 127.0.0.1 with its data in a temporary
directory: ``label-studio start --no-browser --host 127.0.0.1 --port P
--username U --password W --user-token T``; ``LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN``
lets the legacy ``Authorization: Token T`` header (what
:class:`components.sample.labelstudio.LabelStudioClient` sends) authenticate.
It takes about 30 s to answer ``/health``: start it once per session.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from .processes import Service, free_port
from .venvs import cached_venv

__all__ = ["LS_VERSION", "USER", "ensure_label_studio", "label_studio"]

LS_VERSION = "1.23.2"
USER = "cvpipe@example.com"
_PASSWORD = "cvpipe-test-password"


def ensure_label_studio(timeout_s: float = 1800.0) -> Path:
    """The ``label-studio`` executable, installing it into its own environment when missing.

    Args:
        timeout_s: limit of each install command.

    Returns:
        The executable's path.

    Raises:
        ServiceUnavailable: uv is missing or the install failed (the message says why).
    """
    return cached_venv("label-studio", LS_VERSION, [f"label-studio=={LS_VERSION}"], "label-studio", timeout_s)


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
