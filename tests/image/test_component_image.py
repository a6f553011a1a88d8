"""The component image (infra/docker/Dockerfile) built here with Podman and checked like code.

``make image`` (.ci/image.py) builds it once per session (conftest.py); the first build on a fresh machine takes
minutes (debootstrap, the wheelhouse, installing it): see docs/cluster.md. A KFP task runs in it with kfp.local's
DockerRunner over Podman's Docker API (``podman system service``); test_pipelines_in_image.py runs whole pipelines.
"""

# No `from __future__ import annotations`: kfp reads the probe component's annotations as types.
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
IMPORTS = "import components, pipelines, tensorflow, tensorflow_data_validation, ml_metadata, feast"
# A regression guard, not a target: the CPU image weighs about 4 GB (docs/cluster.md).
MAX_SIZE_BYTES = 7_000_000_000

pytestmark = pytest.mark.image


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
    # /opt/cvpipe keeps only the packaging files; cvpipe lives in site-packages; nothing else of the repository
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
    assert set(top.split()) == {"README.md", "pyproject.toml", "requirements-runtime.lock"}  # the packages live in site-packages only
    assert found.split() == [], f"the image holds files it must not: {found.split()}"


def test_image_size_is_recorded(image: dict[str, object], record_property: Callable[[str, object], None]) -> None:
    size = int(image["size_bytes"])  # type: ignore[call-overload]
    record_property("image_size_bytes", size)
    print(f"{image['tag']}: {size / 1e9:.2f} GB")
    assert 0 < size < MAX_SIZE_BYTES, f"{image['tag']} weighs {size / 1e9:.2f} GB"


def test_a_kfp_task_runs_in_the_image_through_the_docker_api(
    image: dict[str, object], docker_api: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """kfp.local's DockerRunner runs a task in the image over Podman's Docker API, writing to storage owned by its user."""
    from kfp import dsl, local

    @dsl.component(base_image=str(image["tag"]), install_kfp_package=False)
    def probe(x: int, out: dsl.Output[dsl.Artifact]) -> int:
        import os

        import components
        import pipelines

        with open(out.path, "w") as f:
            f.write(f"{os.getuid()} {components.__file__} {pipelines.__file__}")
        return x + 1

    import docker

    monkeypatch.setenv("DOCKER_HOST", docker_api)
    root = tmp_path / "pipeline-root"
    root.mkdir()
    os.chown(root, 1000, 1000)  # what a cluster's volume (fsGroup) gives the image's user
    local.init(runner=local.DockerRunner(), pipeline_root=str(root), raise_on_error=True)
    client = docker.DockerClient(base_url=docker_api)
    before = {c.id for c in client.containers.list(all=True)}
    try:
        task = probe(x=41)
    finally:  # kfp's DockerRunner leaves its exited containers behind; they would pin old images
        for container in client.containers.list(all=True):
            if container.id not in before:
                container.remove(force=True)
    assert task.outputs["Output"] == 42
    uid, components_file, pipelines_file = Path(task.outputs["out"].path).read_text().split()
    assert uid == "1000"
    # the packages come from the image, not from the host's virtualenv
    assert components_file.startswith("/usr/local/lib/python3.11/dist-packages/") and ".venv" not in pipelines_file
