"""``runtime.local_runner: docker`` without a container: which storage a task sees, who owns it, and the errors.

tests/image/test_pipelines_in_image.py runs whole pipelines in the image; these checks need no image.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from components.core.errors import PipelineRunError, SpecError
from components.core.spec import PipelineSpec, dump_spec, load_spec, parse_spec, resolve_paths
from pipelines.runners.docker import IMAGE_UID, Mount, prepare_storage, storage_mounts

as_root = pytest.mark.skipif(os.geteuid() != 0, reason="handing storage to the image's user needs root (CI runs as root)")


def _spec(tmp_path: Path, **extra: object) -> PipelineSpec:
    (tmp_path / "data").mkdir(exist_ok=True)
    doc = {"name": "shapes", "task": "detection", "data": {"source": "data/annotations.json", "label_map": "data/labels.json"}}
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump({**doc, **extra}))
    return resolve_paths(load_spec(tmp_path / "spec.yaml"), tmp_path)


def _modes(mounts: list[Mount]) -> dict[str, tuple[str, str]]:
    return {m.why: (str(m.path), "rw" if m.writable else "ro") for m in mounts}


def test_the_default_layout_mounts_the_run_root_the_registry_and_the_dataset_folder(tmp_path: Path) -> None:
    spec = _spec(tmp_path, runtime={"root": "runs", "local_runner": "docker"})
    # the SQLite store (relative: in the run root) and the label map (in the dataset folder) are inside other mounts
    assert _modes(storage_mounts(spec)) == {
        "runtime.root": (str(tmp_path / "runs"), "rw"),
        "registry.root": (str(tmp_path / "registry"), "rw"),
        "data.source": (str(tmp_path / "data"), "ro"),
    }


def test_storage_elsewhere_gets_mounts_of_its_own_and_a_writable_parent_covers_everything_inside(tmp_path: Path) -> None:
    (tmp_path / "weights.h5").write_bytes(b"w")
    monitoring = {"labels": str(tmp_path / "exports"), "prediction_log": str(tmp_path / "shared" / "log")}
    spec = _spec(
        tmp_path,
        runtime={"root": "shared/runs", "metadata": {"url": f"sqlite:///{tmp_path / 'meta' / 'mlmd.sqlite'}"}},
        registry={"root": "shared/registry"},
        train={"pretrained_weights": "weights.h5"},
        monitoring=monitoring,
    )
    assert _modes(storage_mounts(spec)) == {
        "runtime.root": (str(tmp_path / "shared" / "runs"), "rw"),
        "runtime.metadata.url (SQLite folder)": (str(tmp_path / "meta"), "rw"),
        "registry.root": (str(tmp_path / "shared" / "registry"), "rw"),
        "monitoring.prediction_log": (str(tmp_path / "shared" / "log"), "rw"),
        "monitoring.labels": (str(tmp_path / "exports"), "rw"),
        "data.source": (str(tmp_path / "data"), "ro"),
        "train.pretrained_weights": (str(tmp_path / "weights.h5"), "ro"),
    }
    # a metadata store beside the dataset and the runs: its folder covers both
    wide = _spec(tmp_path, runtime={"root": "runs", "metadata": {"url": f"sqlite:///{tmp_path / 'mlmd.sqlite'}"}})
    assert _modes(storage_mounts(wide)) == {"runtime.metadata.url (SQLite folder)": (str(tmp_path), "rw")}


def test_an_in_memory_metadata_store_cannot_be_shared_with_containers(tmp_path: Path) -> None:
    spec = _spec(tmp_path, runtime={"metadata": {"url": "sqlite:///:memory:"}})
    with pytest.raises(PipelineRunError, match="in-memory SQLite"):
        storage_mounts(spec)


@as_root
def test_writable_storage_is_handed_to_the_image_user_and_inputs_must_be_readable(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    (tmp_path / "registry" / "m").mkdir(parents=True)
    (tmp_path / "registry" / "m" / "version.json").write_text("{}")  # written by this machine (root) earlier
    mounts = storage_mounts(spec)
    prepare_storage(mounts)
    runs = tmp_path / "runs"
    assert runs.is_dir()  # created
    for p in (runs, tmp_path / "registry", tmp_path / "registry" / "m", tmp_path / "registry" / "m" / "version.json"):
        assert (p.stat().st_uid, p.stat().st_gid) == (IMAGE_UID, IMAGE_UID), p
    assert (tmp_path / "data").stat().st_uid == 0  # inputs stay as they are
    (tmp_path / "data").chmod(0o700)
    with pytest.raises(PipelineRunError, match=r"data.source \(.*data\) is not readable by the image's user \(uid 1000\)"):
        prepare_storage(mounts)
    (tmp_path / "data").rmdir()
    with pytest.raises(PipelineRunError, match=r"data.source \(.*data\) does not exist"):
        prepare_storage(mounts)


def test_local_runner_is_checked_and_left_out_of_the_spec_when_default(tmp_path: Path) -> None:
    base = {"name": "shapes", "task": "detection", "data": {"source": str(tmp_path / "a.json")}}
    assert "local_runner" not in yaml.safe_load(dump_spec(parse_spec(base)))["runtime"]  # compiled pipelines unchanged
    docker = parse_spec({**base, "runtime": {"local_runner": "docker"}})
    assert yaml.safe_load(dump_spec(docker))["runtime"]["local_runner"] == "docker"
    with pytest.raises(SpecError, match=r"runtime\.local_runner"):
        parse_spec({**base, "runtime": {"local_runner": "kubernetes"}})


def test_without_a_docker_api_the_run_says_how_to_get_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pipelines.runners.local import run_local

    spec = _spec(tmp_path, runtime={"local_runner": "docker"})
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path / 'no-such.sock'}")
    with pytest.raises(PipelineRunError, match=r"no Docker API answers at unix://.*no-such.sock .*podman system service"):
        run_local(spec)
