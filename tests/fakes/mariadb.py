"""A real MariaDB server for tests, started as an ordinary process with its own data directory.

Nothing here is a fake: it is Debian's ``mariadb-server`` (MariaDB 10.11 on
bookworm), installed with apt-get when missing (CI machines start fresh and
run as root), initialised into a temporary directory, listening on
127.0.0.1 on a free port, and shut down at the end. The system service is
never used or touched.

Usage::

    with MariaDB(tmp_dir) as db:
        url = db.create_database("mlmd")   # mysql://cvpipe@127.0.0.1:PORT/mlmd: never a password inside
        os.environ["CVPIPE_MLMD_PASSWORD"] = db.password   # where cvpipe reads it (or a spec's password_file)
        LineageStore(url)

:func:`ensure_mariadb` raises :class:`MariaDBUnavailable` (tests turn it into
a skip with its message) only when the server is missing and cannot be
installed: not root and no passwordless sudo, or no apt-get.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

from services.processes import ServiceUnavailable, free_port, install_packages

__all__ = ["MariaDB", "MariaDBUnavailable", "ensure_mariadb"]

_SBIN = ("/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin")
USER = "cvpipe"
PASSWORD = "cvpipe-Test-pw-5e1c9a"
"""The ``cvpipe`` user's password: a real one, given to cvpipe the way a deployment does (variable or file)."""


class MariaDBUnavailable(RuntimeError):
    """MariaDB is not installed and cannot be installed here."""


def _find(*names: str) -> str | None:
    for name in names:
        found = shutil.which(name)
        if found:
            return found
        for d in _SBIN:
            p = Path(d) / name
            if p.is_file() and os.access(p, os.X_OK):
                return str(p)
    return None


def _server_binaries() -> tuple[str, str, str] | None:
    server = _find("mariadbd", "mysqld")
    install = _find("mariadb-install-db", "mysql_install_db")
    client = _find("mariadb", "mysql")
    return (server, install, client) if server and install and client else None


def ensure_mariadb(timeout_s: float = 900.0) -> tuple[str, str, str]:
    """Returns the server, install-db and client binaries, installing ``mariadb-server`` with apt-get if needed.

    Args:
        timeout_s: limit for the apt-get commands (they wait for the dpkg lock
            when another process holds it).

    Returns:
        ``(mariadbd, mariadb-install-db, mariadb)`` paths.

    Raises:
        MariaDBUnavailable: not installed, and apt-get is missing or not usable (not root, no sudo).
    """
    found = _server_binaries()
    if found:
        return found
    try:
        install_packages(["mariadb-server", "mariadb-client"], "MariaDB", timeout_s)
    except ServiceUnavailable as e:
        raise MariaDBUnavailable(str(e)) from e
    found = _server_binaries()
    if not found:
        raise MariaDBUnavailable("mariadb-server was installed but mariadbd/mariadb-install-db/mariadb were not found")
    return found


class MariaDB:
    """One MariaDB server process with its data directory under ``base_dir``.

    Args:
        base_dir: a fresh directory for the data directory, socket, pid file and log.
        port: TCP port on 127.0.0.1 (default: a free one).
    """

    def __init__(self, base_dir: str | os.PathLike[str], port: int | None = None):
        self.base = Path(base_dir)
        self.port = port or free_port()
        self.datadir = self.base / "data"
        self.socket = self.base / "mysqld.sock"
        self.log = self.base / "mysqld.err"
        self._proc: subprocess.Popen[bytes] | None = None
        self._client = ""

    # -- lifecycle -------------------------------------------------------------------
    def start(self, timeout_s: float = 120.0) -> MariaDB:
        """Installs if needed, initialises the data directory, starts the server and waits until it answers.

        Raises:
            MariaDBUnavailable: see :func:`ensure_mariadb`.
            RuntimeError: the server did not start (the message holds the end of its log).
        """
        server, install_db, self._client = ensure_mariadb()
        self.base.mkdir(parents=True, exist_ok=True)
        user = ["--user=root"] if os.geteuid() == 0 else []
        init = subprocess.run(
            [
                install_db,
                "--no-defaults",
                f"--datadir={self.datadir}",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                *user,
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
        if init.returncode != 0:
            raise RuntimeError(f"mariadb-install-db failed: {init.stderr.strip()[-2000:]}")
        self._proc = subprocess.Popen(
            [
                server,
                "--no-defaults",
                f"--datadir={self.datadir}",
                f"--socket={self.socket}",
                f"--port={self.port}",
                "--bind-address=127.0.0.1",
                f"--pid-file={self.base / 'mysqld.pid'}",
                f"--log-error={self.log}",
                "--innodb-buffer-pool-size=32M",
                "--max-connections=200",
                *user,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"mariadbd exited with {self._proc.returncode}: {self._log_tail()}")
            if self.socket.exists() and self._sql("SELECT 1", check=False).returncode == 0:
                break
            time.sleep(0.2)
        else:
            self.stop()
            raise RuntimeError(f"mariadbd did not answer within {timeout_s:.0f}s: {self._log_tail()}")
        self._sql(
            f"CREATE USER IF NOT EXISTS '{USER}'@'127.0.0.1' IDENTIFIED BY '{PASSWORD}';"
            f"CREATE USER IF NOT EXISTS '{USER}'@'localhost' IDENTIFIED BY '{PASSWORD}';"
            f"GRANT ALL PRIVILEGES ON *.* TO '{USER}'@'127.0.0.1';"
            f"GRANT ALL PRIVILEGES ON *.* TO '{USER}'@'localhost';"
            "FLUSH PRIVILEGES;"
        )
        return self

    def stop(self, timeout_s: float = 60.0) -> None:
        """Shuts the server down (SIGTERM is MariaDB's clean shutdown) and waits for it."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def __enter__(self) -> MariaDB:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- use -------------------------------------------------------------------------
    def create_database(self, name: str) -> str:
        """Creates a database (dropping one of that name) and returns its ``mysql://`` URL.

        Args:
            name: database name (letters, digits, underscores).

        Returns:
            ``mysql://cvpipe@127.0.0.1:<port>/<name>`` (the password is :attr:`password`).
        """
        if not name.replace("_", "").isalnum():
            raise ValueError(f"not a plain database name: {name!r}")
        self._sql(f"DROP DATABASE IF EXISTS `{name}`; CREATE DATABASE `{name}`;")
        return self.url(name)

    def url(self, database: str) -> str:
        """The ``mysql://`` URL of a database on this server (without the password, as cvpipe requires)."""
        return f"mysql://{USER}@127.0.0.1:{self.port}/{database}"

    @property
    def password(self) -> str:
        """The password of the URL's user."""
        return PASSWORD

    def query(self, sql: str, database: str | None = None) -> list[list[str]]:
        """Runs SQL with the command-line client (as root over the socket) and returns the rows.

        Args:
            sql: one or more statements.
            database: database to use.

        Returns:
            Rows of the last result set, as strings (tab-separated output split).
        """
        out = self._sql(sql, database=database).stdout
        return [line.split("\t") for line in out.splitlines() if line]

    def _sql(self, sql: str, database: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [self._client, "--no-defaults", f"--socket={self.socket}", "-uroot", "--batch", "--skip-column-names", "-e", sql]
        if database:
            cmd.append(database)
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        if check and done.returncode != 0:
            raise RuntimeError(f"SQL failed: {done.stderr.strip()}")
        return done

    def _log_tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-2000:]
        except OSError:
            return "(no log)"
