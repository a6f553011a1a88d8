"""Fixtures of the image tests: the component image built once per session and Podman's Docker API serving it.

``make image`` (.ci/image.py) builds the image; Podman's layer cache and the kept wheelhouse and Debian base make
a rebuild with unchanged dependencies take seconds, so the session always checks the image of the code under test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def image() -> dict[str, object]:
    """Build (or reuse) the CPU image: tag, size_bytes, seconds, containers_conf."""
    built = subprocess.run(
        [sys.executable, str(REPO / ".ci" / "image.py"), "--json"], capture_output=True, text=True, timeout=3600, cwd=REPO, check=False
    )
    assert built.returncode == 0, f"make image failed:\n{built.stderr[-4000:]}"
    return json.loads(built.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def docker_api(image: dict[str, object], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Podman's Docker API (``podman system service``) on a unix socket: its ``unix://`` URL, answering a ping."""
    import docker

    sock = tmp_path_factory.mktemp("podman") / "docker.sock"
    url = f"unix://{sock}"
    env = {**os.environ, "CONTAINERS_CONF": str(image["containers_conf"])}
    service = subprocess.Popen(
        ["podman", "--runtime", "runc", "system", "service", "--time=0", url], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 120
        while True:  # readiness: the socket answers (the client asks for the API version when it is made) and pings
            try:
                if docker.DockerClient(base_url=url, timeout=30).ping():
                    break
            except docker.errors.DockerException:
                if service.poll() is not None or time.monotonic() > deadline:
                    raise
            time.sleep(0.2)
        yield url
    finally:
        service.terminate()
        service.wait(timeout=30)
