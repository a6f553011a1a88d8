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

pytest.importorskip("tensorflow")

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
    workers = [f"127.0.0.1:{p}" for p in _free_ports(2)]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": str(ROOT)}
    procs = []
    for i in range(2):
        config = json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": i}})
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
