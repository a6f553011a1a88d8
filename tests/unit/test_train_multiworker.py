"""MultiWorkerMirroredStrategy across two worker processes on 127.0.0.1, each with its own ``TF_CONFIG``.

cvpipe's strategy selection reads ``TF_CONFIG`` (:mod:`components.train.strategy`); here two real
processes train a tiny model in sync over gRPC on this machine: both report two replicas in sync,
the loss falls, they end with the same weights, and only the chief writes the final checkpoint.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from components.train.multiworker import local_tf_configs, vertex_worker_pool_specs

PROGRAM = Path(__file__).with_name("multiworker_program.py")
ROOT = Path(__file__).resolve().parents[2]


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def test_two_worker_processes_train_in_sync(tmp_path: Path) -> None:
    pytest.importorskip("tensorflow")
    configs = local_tf_configs(_free_ports(2))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": str(ROOT)}
    procs = []
    for i in range(2):
        config = configs[i]
        ckpt = tmp_path / ("chief" if i == 0 else f"worker-{i}")
        cmd = [sys.executable, str(PROGRAM), config, str(tmp_path / f"out-{i}.json"), str(ckpt)]
        procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outputs = []
    for p in procs:
        try:
            text, _ = p.communicate(timeout=600)
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise
        outputs.append(text)
    for p, text in zip(procs, outputs, strict=True):
        assert p.returncode == 0, text[-3000:]
    results = [json.loads((tmp_path / f"out-{i}.json").read_text()) for i in range(2)]
    for r in results:
        assert r["description"].startswith("MultiWorkerMirroredStrategy over 2 workers on CPU")
        assert r["workers"] == 2
        assert r["loss"][-1] < r["loss"][0] / 2, r["loss"]
        assert r["shapes"] == [[4, 8], [8], [8, 1], [1]]
    assert results[0]["weights_sum"] == pytest.approx(results[1]["weights_sum"], rel=1e-6)  # in sync: the same model
    assert results[0]["loss"] == pytest.approx(results[1]["loss"], rel=1e-6)
    assert (tmp_path / "chief" / "final.weights.h5").is_file()
    assert not (tmp_path / "worker-1" / "final.weights.h5").exists()


def test_local_tf_configs_name_every_worker_and_its_own_index() -> None:
    configs = [json.loads(c) for c in local_tf_configs([5001, 5002, 5003])]
    assert [c["task"] for c in configs] == [{"type": "worker", "index": i} for i in range(3)]
    assert all(c["cluster"] == {"worker": ["127.0.0.1:5001", "127.0.0.1:5002", "127.0.0.1:5003"]} for c in configs)
    with pytest.raises(ValueError, match="at least 2 workers"):
        local_tf_configs([5001])


def test_vertex_worker_pools_compile_into_a_custom_job() -> None:
    """The real aiplatform client turns the pools into its CustomJob proto (an unknown field or a wrong type fails here)."""
    aiplatform = pytest.importorskip("google.cloud.aiplatform")
    from google.auth.credentials import AnonymousCredentials

    image = "europe-docker.pkg.dev/acme/cvpipe/cvpipe:1.0"
    pools = vertex_worker_pool_specs(4, image, ["run-step", "train"], "n1-standard-8", "NVIDIA_TESLA_T4", 1)
    job = aiplatform.CustomJob(
        display_name="train-4-workers",
        worker_pool_specs=pools,
        project="acme",
        location="europe-west4",
        staging_bucket="gs://acme-staging/cvpipe",
        credentials=AnonymousCredentials(),
    )
    specs = job._gca_resource.job_spec.worker_pool_specs
    assert [s.replica_count for s in specs] == [1, 3]  # the chief, then three workers: four replicas in sync
    for s in specs:
        assert s.container_spec.image_uri == image and list(s.container_spec.args) == ["run-step", "train"]
        assert s.machine_spec.machine_type == "n1-standard-8" and s.machine_spec.accelerator_count == 1
        assert s.machine_spec.accelerator_type.name == "NVIDIA_TESLA_T4"
    assert [p["replica_count"] for p in vertex_worker_pool_specs(1, image, [])] == [1]
    with pytest.raises(ValueError, match="accelerator_count"):
        vertex_worker_pool_specs(2, image, [], accelerator_type="NVIDIA_TESLA_T4")
