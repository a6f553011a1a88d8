"""``train.workers: 2``: cvpipe's own train step trains as the chief of a second, local worker process.

The step runs in a child process (as every local task does: ``MultiWorkerMirroredStrategy``
configures collectives once per process); it starts the worker itself on 127.0.0.1 with its own
``TF_CONFIG``. Real TensorFlow, real gRPC, examples written by the project's synth generator.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from train_testdata import make_examples

from components.core.errors import TrainingError
from components.core.spec import parse_spec

pytest.importorskip("tensorflow")

REPO = Path(__file__).resolve().parents[2]
STEP = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from components.core.log import configure_logging
    from components.core.spec import parse_spec
    from components.core.step import StepContext
    from components.train.core import run

    configure_logging()
    spec = parse_spec(json.loads(sys.argv[1]))
    out = Path(sys.argv[2])
    run(StepContext(spec=spec, run_id="run-1", component="train"), sys.argv[3], sys.argv[4], out / "model", out / "report", out / "hparams")
    """
)
# under a loaded CI machine importing TensorFlow alone can take minutes; pytest-timeout bounds the test
DEADLINE_S = 900


def spec_dict(tmp_path: Path, **train: Any) -> dict[str, Any]:
    return {
        "name": "workers-test",
        "task": "detection",
        "data": {"source": str(tmp_path / "annotations.json")},
        "train": {"epochs": 3, "batch_size": 4, "image_size": [64, 64], "learning_rate": 0.003, "workers": 2, **train},
        "registry": {"root": str(tmp_path / "registry")},
        "runtime": {"root": str(tmp_path / "runs"), "metadata": {"url": f"sqlite:///{tmp_path / 'mlmd.sqlite'}"}},
    }


def start_step(spec: dict[str, Any], out: Path, examples: Path, label_map: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    env.update(TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="", PYTHONPATH=str(REPO))
    with open(log, "ab") as f:
        return subprocess.Popen(
            [sys.executable, "-c", STEP, json.dumps(spec), str(out), str(examples), str(label_map)],
            cwd=REPO,
            stdout=f,
            stderr=subprocess.STDOUT,
            env=env,
        )


def finish(proc: subprocess.Popen[bytes]) -> int:
    try:
        return proc.wait(timeout=DEADLINE_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise


def test_two_workers_train_cvpipes_model_in_sync_and_the_chief_exports_it(tmp_path: Path) -> None:
    examples, label_map = make_examples(tmp_path, "detection", num_images=24, image_size=64)
    out, log = tmp_path / "out", tmp_path / "step.log"

    code = finish(start_step(spec_dict(tmp_path), out, examples, label_map, log))
    text = log.read_text()
    assert code == 0, text[-4000:]

    report = json.loads((out / "model" / "training_report.json").read_text())
    assert report["strategy"].startswith("MultiWorkerMirroredStrategy over 2 workers on CPU"), report["strategy"]
    assert report["workers"] == 2 and report["replicas_in_sync"] == 2
    losses = [r["loss"] for r in report["history"]]
    assert len(losses) == 3 and losses[-1] < losses[0], losses
    assert report["global_step"] == 3 * 5 and report["resumed_from_step"] == 0  # 18 images, global batch 4: 5 steps an epoch
    assert re.search(r"started training worker 1 of 2 \(pid \d+\)", text), text[-4000:]
    assert "the training workers (1) finished" in text
    # one model: the chief's; the worker's scratch checkpoints went with it
    assert [p.parent for p in tmp_path.rglob("saved_model.pb")] == [out / "model" / "saved_model"]
    assert not (out / "model" / "checkpoints").exists()


def test_a_killed_worker_fails_the_step_naming_it_and_the_rerun_resumes(tmp_path: Path) -> None:
    examples, label_map = make_examples(tmp_path, "detection", num_images=24, image_size=64)
    # 5 steps an epoch, 20 in all; a checkpoint every 2 steps
    spec = spec_dict(tmp_path, epochs=4, checkpoint_every_steps=2, early_stopping_patience=100)
    out, log = tmp_path / "out", tmp_path / "step.log"
    index = out / "model" / "checkpoints" / "train" / "checkpoint"

    first = start_step(spec, out, examples, label_map, log)
    deadline = time.monotonic() + DEADLINE_S
    while not index.exists() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert index.exists(), log.read_text()[-4000:]
    pid = int(re.findall(r"started training worker 1 of 2 \(pid (\d+)\)", log.read_text())[-1])
    os.kill(pid, signal.SIGKILL)
    assert finish(first) != 0
    text = log.read_text()
    assert f"training worker 1 of 2 (pid {pid}) was killed by SIGKILL" in text, text[-4000:]
    assert "running the train step again resumes" in text
    assert not (out / "model" / "model_info.json").exists(), "the run finished before the worker was killed"

    assert finish(start_step(spec, out, examples, label_map, log)) == 0, log.read_text()[-4000:]
    report = json.loads((out / "model" / "training_report.json").read_text())
    resumed = report["resumed_from_step"]
    assert resumed > 0 and report["global_step"] == 20
    assert report["steps_run"] == 20 - resumed  # the rerun trained only what the checkpoint did not hold
    assert report["replicas_in_sync"] == 2
    assert [int(r["epoch"]) for r in report["history"]] == [1, 2, 3, 4]
    assert (out / "model" / "saved_model" / "saved_model.pb").is_file()


def test_workers_is_validated() -> None:
    base: dict[str, Any] = {"name": "w", "task": "detection", "data": {"source": "a.json"}}
    assert parse_spec({**base, "train": {}}).train.workers == 1
    assert "workers" not in parse_spec({**base, "train": {}}).train.model_dump()  # compiled pipelines unchanged
    for bad, words in (
        ({"workers": 0}, "workers"),
        ({"workers": 2, "tuner": {"enabled": True}}, "tuner"),
        ({"workers": 2, "run_fn": "pkg.mod:run_fn"}, "run_fn"),
    ):
        with pytest.raises(Exception, match=words):
            parse_spec({**base, "train": bad})


def test_task_role_reads_the_chief_and_workers_from_tf_config() -> None:
    from components.train.multiworker import local_tf_configs, task_role

    configs = local_tf_configs([5001, 5002, 5003])
    roles = [task_role({"TF_CONFIG": c}) for c in configs]
    assert [(r.index, r.num_workers, r.chief) for r in roles] == [(0, 3, True), (1, 3, False), (2, 3, False)]
    vertex = {"cluster": {"chief": ["a:1"], "worker": ["b:1", "c:1"]}, "task": {"type": "worker", "index": 0}}
    assert task_role({"TF_CONFIG": json.dumps(vertex)}).index == 1 and not task_role({"TF_CONFIG": json.dumps(vertex)}).chief
    vertex["task"] = {"type": "chief", "index": 0}
    assert task_role({"TF_CONFIG": json.dumps(vertex)}).chief
    assert task_role({}).num_workers == 1
    with pytest.raises(TrainingError, match="not in its cluster"):
        task_role({"TF_CONFIG": json.dumps({"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 3}})})
    with pytest.raises(TrainingError, match="TF_CONFIG is not"):
        task_role({"TF_CONFIG": "{not json"})


def test_the_worker_payload_rebuilds_a_kfp_tasks_context(tmp_path: Path) -> None:
    """A KFP task's spec holds only its component's sections (no data source): the workers get the same."""
    from components.core.params import PipelineContext
    from components.core.step import StepContext
    from components.train.core import worker_payload
    from components.train.worker import step_context

    spec = parse_spec(spec_dict(tmp_path, vertex_job=None))
    task_ctx = StepContext.for_component(
        "train", "run-7", PipelineContext.of(spec).model_dump(mode="json"), train=spec.train.model_dump(mode="json")
    )
    payload = json.loads(json.dumps(worker_payload(task_ctx, "ex", "lm.json", "m", "r", "h", {"model": "gs://b/m"})))
    ctx = step_context(payload)
    assert ctx.run_id == "run-7" and ctx.spec.train == spec.train and ctx.spec.train.workers == 2
    assert ctx.spec.runtime == spec.runtime and ctx.spec.name == spec.name
    assert (payload["model_dir"], payload["uris"]) == ("m", {"model": "gs://b/m"})
