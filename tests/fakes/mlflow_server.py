"""A real MLflow tracking server for tests, started as an ordinary process.

Nothing here is a fake: it is the full ``mlflow`` package (the lock holds
only the client, ``mlflow-skinny``; the full package does not resolve beside
the lock's pins), installed into its own virtual environment beside the lock
(``~/.cache/cvpipe/mlflow-<version>``, reused when present) with ``uv`` or
pip, serving on 127.0.0.1 on a free port with a SQLite backend store and a
local artifact directory, and stopped at the end.

Usage::

    with MLflowServer(tmp_dir) as server:
        MlflowClient(server.uri)        # http://127.0.0.1:PORT
        server.wipe()                   # delete every registered model and experiment run

:func:`ensure_mlflow` raises :class:`MLflowUnavailable` (tests turn it into a
skip with its message) only when the package cannot be installed.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

__all__ = ["MLFLOW_VERSION", "MLflowServer", "MLflowUnavailable", "ensure_mlflow"]

MLFLOW_VERSION = "3.17.0"
"""The server's version (3.18 server wheels are not on the index this project uses; the 3.18 client talks to it)."""


class MLflowUnavailable(RuntimeError):
    """The mlflow server package is not installed and cannot be installed here."""


def _env_dir() -> Path:
    base = Path(os.environ.get("CVPIPE_CACHE", Path.home() / ".cache" / "cvpipe"))
    return base / f"mlflow-{MLFLOW_VERSION}"


def ensure_mlflow(timeout_s: float = 900.0) -> Path:
    """The ``mlflow`` executable of the server environment, installing it when missing.

    Args:
        timeout_s: limit for the install.

    Returns:
        The path of ``bin/mlflow``.

    Raises:
        MLflowUnavailable: the environment cannot be created or the package installed.
    """
    env = _env_dir()
    exe = env / "bin" / "mlflow"
    if exe.is_file() and (env / ".complete").is_file():
        return exe
    tmp = env.with_name(env.name + f".partial-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    uv = shutil.which("uv") or str(Path(sys.executable).with_name("uv"))
    if Path(uv).is_file():
        steps = [
            [uv, "venv", "-q", "--python", sys.executable, str(tmp)],
            [uv, "pip", "install", "-q", "--python", str(tmp / "bin" / "python"), f"mlflow=={MLFLOW_VERSION}"],
        ]
    else:
        steps = [
            [sys.executable, "-m", "venv", str(tmp)],
            [str(tmp / "bin" / "python"), "-m", "pip", "install", "-q", f"mlflow=={MLFLOW_VERSION}"],
        ]
    for cmd in steps:
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
        except (OSError, subprocess.TimeoutExpired) as e:
            shutil.rmtree(tmp, ignore_errors=True)
            raise MLflowUnavailable(f"`{' '.join(cmd)}` failed: {e}") from None
        if done.returncode != 0:
            shutil.rmtree(tmp, ignore_errors=True)
            raise MLflowUnavailable(f"`{' '.join(cmd)}` failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    # the venv's scripts name their interpreter by absolute path: fix them up for the final name
    for script in (tmp / "bin").iterdir():
        if script.is_file() and not script.is_symlink():
            try:
                text = script.read_text()
            except (UnicodeDecodeError, OSError):
                continue
            if str(tmp) in text:
                script.write_text(text.replace(str(tmp), str(env)))
    (tmp / ".complete").touch()
    try:
        os.rename(tmp, env)
    except OSError:  # another session installed it first
        shutil.rmtree(tmp, ignore_errors=True)
    if not exe.is_file():
        raise MLflowUnavailable(f"mlflow was installed but {exe} is missing")
    return exe


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class MLflowServer:
    """One ``mlflow server`` process with its database and artifacts under ``base_dir``.

    Args:
        base_dir: a fresh directory for the SQLite store, artifacts and log.
        port: TCP port on 127.0.0.1 (default: a free one).
        start_timeout_s: how long to wait for ``/health`` (about 30 s on an idle
            machine; minutes on a loaded one).
    """

    def __init__(self, base_dir: str | os.PathLike[str], port: int | None = None, start_timeout_s: float = 600.0):
        self.base = Path(base_dir)
        self.port = port or _free_port()
        self.start_timeout_s = start_timeout_s
        self.log = self.base / "mlflow-server.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def uri(self) -> str:
        """The tracking URI (``http://127.0.0.1:PORT``)."""
        return f"http://127.0.0.1:{self.port}"

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as r:
                return bool(r.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def start(self) -> MLflowServer:
        """Starts the server and waits until ``/health`` answers.

        Raises:
            MLflowUnavailable: the package cannot be installed.
            RuntimeError: the server exited or did not answer in time (with the log's tail).
        """
        exe = ensure_mlflow()
        self.base.mkdir(parents=True, exist_ok=True)
        cmd = [
            str(exe),
            "server",
            "--backend-store-uri",
            f"sqlite:///{self.base / 'mlflow.db'}",
            "--artifacts-destination",
            str(self.base / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            "1",
        ]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "VIRTUAL_ENV"))}
        with open(self.log, "wb") as log:
            self._proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=self.base, env=env, start_new_session=True)
        deadline = time.monotonic() + self.start_timeout_s
        while not self._healthy():
            if self._proc.poll() is not None:
                raise RuntimeError(f"mlflow server exited ({self._proc.returncode}):\n{self._tail()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"mlflow server did not answer /health within {self.start_timeout_s:g}s:\n{self._tail()}")
            time.sleep(0.5)
        return self

    def _tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-3000:]
        except OSError:
            return ""

    def stop(self) -> None:
        """Stops the server and its workers (its own process group)."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            os.killpg(self._proc.pid, signal.SIGTERM)
            try:
                self._proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self._proc.pid, signal.SIGKILL)
                self._proc.wait(timeout=30)
        self._proc = None

    def client(self) -> Any:
        """An ``MlflowClient`` for this server."""
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)

    def wipe(self) -> None:
        """Deletes every registered model and every run, so the next test starts from an empty server."""
        from mlflow.entities import ViewType

        c = self.client()
        for rm in c.search_registered_models():
            c.delete_registered_model(rm.name)
        for exp in c.search_experiments(view_type=ViewType.ACTIVE_ONLY):
            for run in c.search_runs([exp.experiment_id], run_view_type=ViewType.ACTIVE_ONLY, max_results=50000):
                c.delete_run(run.info.run_id)

    def __enter__(self) -> MLflowServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
