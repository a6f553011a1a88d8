"""Real services for tests, started as ordinary processes on 127.0.0.1 (nothing here is a fake).

* :func:`ensure_binary` finds a program, installing its Debian package with
  apt-get when it is missing (CI machines start fresh and run as root; the dpkg
  lock of another apt-get is waited for); :func:`install_packages` is that
  install, for a caller that looks for its programs itself (fakes/mariadb.py).
* :class:`Service` starts one server process on a free port with its data
  directory in a temporary folder, waits for it by polling its readiness
  endpoint until a deadline (never a fixed sleep), and stops it.
* :func:`alertmanager`, :func:`prometheus` and :func:`pushgateway` are the
  Debian ``prometheus-alertmanager`` (0.25), ``prometheus`` (2.42) and
  ``prometheus-pushgateway`` (1.5) servers.

A missing program that cannot be installed (no apt-get, not root) raises
:class:`ServiceUnavailable`, which tests turn into a skip with its message.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import requests

__all__ = [
    "Service",
    "ServiceUnavailable",
    "alertmanager",
    "ensure_binary",
    "free_port",
    "install_packages",
    "prometheus",
    "pushgateway",
]

_DIRS = ("/usr/bin", "/usr/sbin", "/usr/local/bin", "/usr/local/sbin")


class ServiceUnavailable(RuntimeError):
    """The service's program is not installed and cannot be installed here."""


def _which(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for d in _DIRS:
        p = Path(d) / name
        if p.is_file() and os.access(p, os.X_OK):
            return str(p)
    return None


def ensure_binary(name: str, package: str, timeout_s: float = 900.0) -> str:
    """The path of a program, installing its Debian package with apt-get when missing.

    Args:
        name: the program.
        package: the Debian package that ships it.
        timeout_s: limit of each apt-get command.

    Returns:
        The program's path.

    Raises:
        ServiceUnavailable: missing, and apt-get is absent or not usable.
    """
    found = _which(name)
    if found:
        return found
    install_packages([package], name, timeout_s)
    found = _which(name)
    if found is None:
        raise ServiceUnavailable(f"{package} was installed but {name} was not found")
    return found


def install_packages(packages: Sequence[str], missing: str, timeout_s: float = 900.0) -> None:
    """Installs Debian packages with apt-get, as root or through passwordless sudo (the dpkg lock of another apt-get is waited for).

    Args:
        packages: the packages.
        missing: what is missing without them, for messages.
        timeout_s: limit of each apt-get command.

    Raises:
        ServiceUnavailable: apt-get is absent, not usable (not root, no passwordless sudo), or failed.
    """
    names = " ".join(packages)
    apt = _which("apt-get")
    if apt is None:
        raise ServiceUnavailable(f"{missing} is not installed and apt-get is not available to install {names}")
    prefix: list[str] = []
    if os.geteuid() != 0:
        sudo = _which("sudo")
        if sudo is None or subprocess.run([sudo, "-n", "true"], capture_output=True).returncode != 0:
            raise ServiceUnavailable(f"{missing} is not installed and installing {names} needs root")
        prefix = [sudo, "-n"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    lock = ["-o", "DPkg::Lock::Timeout=600"]
    for cmd in ([*prefix, apt, *lock, "update"], [*prefix, apt, *lock, "install", "-y", "--no-install-recommends", *packages]):
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout_s)
        if done.returncode != 0:
            raise ServiceUnavailable(f"`{' '.join(cmd)}` failed ({done.returncode}): {done.stderr.strip()[-2000:]}")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Service:
    """One server process; a context manager that starts it, waits until it is ready, and stops it.

    Args:
        name: for messages.
        argv: the command line.
        ready_url: polled until it answers 200.
        log: where its output goes.
        env: extra environment.
        deadline_s: how long readiness may take (generous: the machine may be loaded).
    """

    def __init__(
        self, name: str, argv: Sequence[str], ready_url: str, log: Path, env: dict[str, str] | None = None, deadline_s: float = 120.0
    ):
        self.name, self.argv, self.ready_url, self.log_path = name, list(argv), ready_url, log
        self.env = {**os.environ, **(env or {})}
        self.deadline_s = deadline_s
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Service:
        """Starts the process and waits for readiness.

        Returns:
            This service.

        Raises:
            RuntimeError: it exited, or was not ready by the deadline (with the end of its log).
        """
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(self.argv, stdout=out, stderr=subprocess.STDOUT, env=self.env, start_new_session=True)
        end = time.monotonic() + self.deadline_s
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}: {self._tail()}")
            try:
                if requests.get(self.ready_url, timeout=2).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            if time.monotonic() > end:
                self.stop()
                raise RuntimeError(f"{self.name} not ready at {self.ready_url} after {self.deadline_s:.0f} s: {self._tail()}")
            time.sleep(0.2)  # polling interval, not a wait for an outcome

    def _tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-2000:]
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        """Stops the process (SIGTERM, then SIGKILL after 10 s)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None

    def __enter__(self) -> Service:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def alertmanager(base: Path, config_yaml: str) -> tuple[Service, str]:
    """A real Alertmanager (Debian ``prometheus-alertmanager``), not clustered, data in ``base``.

    Args:
        base: a fresh directory.
        config_yaml: its configuration.

    Returns:
        ``(service, base URL)``; enter the service to start it.
    """
    binary = ensure_binary("prometheus-alertmanager", "prometheus-alertmanager")
    port = free_port()
    (base / "data").mkdir(parents=True, exist_ok=True)
    (base / "alertmanager.yml").write_text(config_yaml, encoding="utf-8")
    url = f"http://127.0.0.1:{port}"
    argv = [
        binary,
        f"--config.file={base / 'alertmanager.yml'}",
        f"--storage.path={base / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",
    ]
    return Service("alertmanager", argv, url + "/-/ready", base / "alertmanager.log"), url


def pushgateway(base: Path) -> tuple[Service, str]:
    """A real Pushgateway (Debian ``prometheus-pushgateway``), in memory.

    Args:
        base: a fresh directory (its log).

    Returns:
        ``(service, base URL)``.
    """
    binary = ensure_binary("prometheus-pushgateway", "prometheus-pushgateway")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    return Service("pushgateway", [binary, f"--web.listen-address=127.0.0.1:{port}"], url + "/-/ready", base / "pushgateway.log"), url


def prometheus(base: Path, config_yaml: str) -> tuple[Service, str]:
    """A real Prometheus server (Debian ``prometheus``), TSDB in ``base``.

    Args:
        base: a fresh directory.
        config_yaml: its configuration (rule files by absolute path).

    Returns:
        ``(service, base URL)``.
    """
    binary = ensure_binary("prometheus", "prometheus")
    port = free_port()
    (base / "data").mkdir(parents=True, exist_ok=True)
    (base / "prometheus.yml").write_text(config_yaml, encoding="utf-8")
    url = f"http://127.0.0.1:{port}"
    argv = [
        binary,
        f"--config.file={base / 'prometheus.yml'}",
        f"--storage.tsdb.path={base / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    return Service("prometheus", argv, url + "/-/ready", base / "prometheus.log"), url
