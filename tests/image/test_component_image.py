"""The component image (infra/docker/Dockerfile) built here with Podman and checked like code.

``make image`` (.ci/image.py) builds it once; Podman's layer cache and the kept wheelhouse and Debian base
make a rebuild with unchanged code take seconds, so the suite always checks the image of the code under test.
The first build on a fresh machine takes minutes (debootstrap, the wheelhouse, installing it): see docs/cluster.md.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
IMPORTS = "import components, pipelines, tensorflow, tensorflow_data_validation, ml_metadata, feast"
# A regression guard, not a target: the CPU image weighs about 4 GB (docs/cluster.md).
MAX_SIZE_BYTES = 7_000_000_000

pytestmark = pytest.mark.image


@pytest.fixture(scope="module")
def image() -> dict[str, object]:
    """Build (or reuse) the CPU image: tag, size_bytes, seconds, containers_conf."""
    built = subprocess.run(
        [sys.executable, str(REPO / ".ci" / "image.py"), "--json"], capture_output=True, text=True, timeout=3600, cwd=REPO, check=False
    )
    assert built.returncode == 0, f"make image failed:\n{built.stderr[-4000:]}"
    return json.loads(built.stdout.strip().splitlines()[-1])


def _in_image(image: dict[str, object], script: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CONTAINERS_CONF": str(image["containers_conf"])}
    cmd = ["podman", "--runtime", "runc", "run", "--rm", "--ulimit", "host", "--network", "none", str(image["tag"]), "sh", "-c", script]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, check=False)


def test_cli_and_the_pipeline_stack_run_as_the_non_root_user(image: dict[str, object]) -> None:
    ran = _in_image(image, f'id -u && cvpipe --help && python3 -c "{IMPORTS}; print(tensorflow.__version__)"')
    assert ran.returncode == 0, ran.stderr[-4000:]
    lines = ran.stdout.splitlines()
    assert lines[0] == "1000"  # USER 1000:1000, not root
    assert "Usage: cvpipe" in ran.stdout
    locked = next(line for line in (REPO / "requirements-runtime.lock").read_text().splitlines() if line.startswith("tensorflow=="))
    assert lines[-1] == locked.split("==")[1]


def test_image_holds_no_tests_virtualenvs_or_run_folders(image: dict[str, object]) -> None:
    # cvpipe's own files: the source copy in /opt/cvpipe and the installed packages; nothing else of the repository
    script = r"""
        cd /opt/cvpipe && ls -A
        echo ---
        site=$(python3 -c 'import components, os; print(os.path.dirname(os.path.dirname(components.__file__)))')
        find / -xdev \( -name pyvenv.cfg -o -name .venv -o -name runs -o -name .git -o -name .pytest_cache \) -print 2>/dev/null
        find /opt/cvpipe "$site/components" "$site/pipelines" "$site/cvpipe" /home/cvpipe \
             \( -name 'test_*.py' -o -name conftest.py -o -name tests -o -name '*.sqlite' -o -name '*.tfrecord*' \) -print 2>/dev/null
    """
    ran = _in_image(image, script)
    assert ran.returncode == 0, ran.stderr[-4000:]
    top, found = ran.stdout.split("---\n")
    assert set(top.split()) == {"README.md", "components", "cvpipe", "pipelines", "pyproject.toml", "requirements-runtime.lock"}
    assert found.split() == [], f"the image holds files it must not: {found.split()}"


def test_image_size_is_recorded(image: dict[str, object], record_property: Callable[[str, object], None]) -> None:
    size = int(image["size_bytes"])  # type: ignore[call-overload]
    record_property("image_size_bytes", size)
    print(f"{image['tag']}: {size / 1e9:.2f} GB")
    assert 0 < size < MAX_SIZE_BYTES, f"{image['tag']} weighs {size / 1e9:.2f} GB"
