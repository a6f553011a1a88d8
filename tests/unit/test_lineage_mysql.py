"""ML Metadata on MySQL (MariaDB): the store cvpipe uses on a cluster.

The ``mariadb`` fixture (tests/conftest.py) installs Debian's ``mariadb-server`` when it is missing (CI runs
as root on a fresh machine), starts it as an ordinary process on 127.0.0.1
with its own data directory, and stops it at the end; each test gets a fresh
database. The tests skip, with the reason, only when MariaDB can be neither
found nor installed.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import signal
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest
from fakes.mariadb import MariaDB

from components.core.errors import LineageError
from components.core.lineage import MYSQL_PASSWORD_ENV, LineageStore, NewArtifact
from components.core.runs import pid_alive

pytestmark = pytest.mark.mysql

STEPS = ("ingest", "validate", "transform", "train")


@pytest.fixture
def mysql_url(mariadb: MariaDB, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh database's URL (no password inside); the password is in $CVPIPE_MLMD_PASSWORD, as a Secret puts it."""
    name = "mlmd_" + "".join(c if c.isalnum() else "_" for c in request.node.name)[:50]
    monkeypatch.setenv(MYSQL_PASSWORD_ENV, mariadb.password)
    return mariadb.create_database(name)


def test_creates_schema_and_stores_artifacts(mariadb: MariaDB, mysql_url: str) -> None:
    db = mysql_url.rsplit("/", 1)[1]
    assert mariadb.query("SHOW TABLES", db) == []
    store = LineageStore(mysql_url)
    tables = {row[0] for row in mariadb.query("SHOW TABLES", db)}
    assert {"Artifact", "Execution", "Event", "Context", "Attribution", "Association", "MLMDEnv"} <= tables

    src = store.put_artifact("RawDataset", "gs://bucket/data/annotations.json", {"images": 120, "format": "coco"})
    again = store.get(src.id)
    assert again.kind == "RawDataset" and again.uri == "gs://bucket/data/annotations.json"
    assert again.properties == {"images": 120, "format": "coco"}
    store.update_properties(src.id, {"checked": True, "format": None})
    assert store.get(src.id).properties == {"images": 120, "checked": True}
    found = store.find_by_uri("gs://bucket/data/annotations.json", kind="RawDataset")
    assert found is not None and found.id == src.id

    # what MLMD wrote is really in MariaDB, readable by a second connection
    rows = mariadb.query("SELECT uri FROM Artifact", db)
    assert rows == [["gs://bucket/data/annotations.json"]]
    other = LineageStore(mysql_url)
    assert other.get(src.id).properties["images"] == 120


def _write_run(url: str, run_id: str, barrier: Any, result: Any) -> None:
    """One pipeline run in its own process: the steps' executions, chained by their artifacts."""
    try:
        # both processes open the empty database (MLMD creates the schema), then create
        # types, contexts and executions at the same moment
        barrier.wait(timeout=600)
        store = LineageStore(url)
        prev = store.put_artifact("RawDataset", f"/data/{run_id}/annotations.json", {"run": run_id})
        for i, step in enumerate(STEPS):
            out = store.record_execution(
                step,
                pipeline="concurrent-demo",
                run_id=run_id,
                inputs={"input": prev},
                outputs={"out": NewArtifact(("Manifest", "Manifest", "Examples", "Model")[i], f"/runs/{run_id}/{step}", {"step": step})},
                properties={"attempt": 1},
            )
            prev = out["out"]
        result.put((run_id, prev.id, None))
    except BaseException as e:
        result.put((run_id, None, f"{type(e).__name__}: {e}"))


def test_two_processes_write_lineage_concurrently(mysql_url: str) -> None:
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(2)
    result = ctx.Queue()
    runs = ["run-a", "run-b"]
    procs = [ctx.Process(target=_write_run, args=(mysql_url, run, barrier, result)) for run in runs]
    for p in procs:
        p.start()
    outcomes = {}
    for _ in procs:
        run_id, model_id, error = result.get(timeout=300)
        outcomes[run_id] = (model_id, error)
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert {r: e for r, (_, e) in outcomes.items()} == {"run-a": None, "run-b": None}

    store = LineageStore(mysql_url)
    assert sorted(store.run_ids("concurrent-demo")) == runs
    pipeline_contexts = store.mlmd.get_contexts_by_type("cvpipe.Pipeline")
    assert [c.name for c in pipeline_contexts] == ["concurrent-demo"]
    for run in runs:
        execs = store.executions(run_id=run)
        assert [e["component"] for e in execs] == list(STEPS)
        assert all(e["state"] == "COMPLETE" and e["properties"]["run_id"] == run for e in execs)
        ids = [e["id"] for e in execs]
        events = store.mlmd.get_events_by_execution_ids(ids)
        assert len(events) == 2 * len(STEPS)  # one input and one output each
        assert len(store.artifacts_of_run(run)) == len(STEPS) + 1  # the source and one output per step
        # every execution of the run is also attributed to the shared pipeline context
        in_pipeline = {e.id for e in store.mlmd.get_executions_by_context(pipeline_contexts[0].id)}
        assert set(ids) <= in_pipeline

        model_id, _ = outcomes[run]
        graph = store.upstream(model_id)
        assert graph.root.artifact.kind == "Model"
        chain = []
        node = graph.root
        while node.execution is not None:
            chain.append(node.execution[1])
            assert node.execution[2]["run_id"] == run
            [(_, node)] = node.inputs
        assert chain == list(reversed(STEPS))
        assert node.artifact.kind == "RawDataset" and node.artifact.properties["run"] == run
    # one type per kind and component, however the processes raced to create them
    type_names = [t.name for t in store.mlmd.get_execution_types()]
    assert sorted(type_names) == sorted(f"cvpipe.{s}" for s in STEPS)


def test_upstream_across_runs_on_mysql(mysql_url: str) -> None:
    store = LineageStore(mysql_url)
    src = store.put_artifact("RawDataset", "/data/a.json")
    first = store.record_execution(
        "train", pipeline="p", run_id="r1", inputs={"examples": src}, outputs={"model": NewArtifact("Model", "/m/1", {"version": 1})}
    )["model"]
    second = store.record_execution(
        "train",
        pipeline="p",
        run_id="r2",
        inputs={"examples": src, "parent_model": first},
        outputs={"model": NewArtifact("Model", "/m/2", {"version": 2})},
    )["model"]
    graph = store.upstream(second.id)
    assert sorted(a.id for a in graph.of_kind("Model")) == [first.id, second.id]
    assert dict((k, n.artifact.id) for k, n in graph.root.inputs) == {"examples": src.id, "parent_model": first.id}
    assert sorted(store.downstream_ids(src.id)) == [first.id, second.id]
    assert "<- train" in graph.render()


def test_open_waits_while_another_process_creates_the_schema(mariadb: MariaDB, mysql_url: str) -> None:
    """MLMD refuses to open an empty database whose schema another connection is creating; the store waits it out."""
    db = mysql_url.rsplit("/", 1)[1]
    # the state MLMD leaves while creating the schema: MLMDEnv exists, no version row yet
    mariadb.query("CREATE TABLE MLMDEnv (schema_version INTEGER PRIMARY KEY)", db)
    LineageStore.SCHEMA_RACE_PATIENCE_S, saved = 0.0, LineageStore.SCHEMA_RACE_PATIENCE_S
    try:
        with pytest.raises(LineageError, match="concurrent connection"):
            LineageStore(mysql_url)  # without patience, `retries` attempts are all there is
    finally:
        LineageStore.SCHEMA_RACE_PATIENCE_S = saved

    # the other process finishes only once the store has been refused more often than its plain
    # `retries` (3) allow, so the open can only succeed through its patience with the schema race
    past_retries = threading.Event()

    class Attempts(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if getattr(record, "racing", False) and getattr(record, "attempt", 0) >= 3:
                past_retries.set()

    def other_process_finishes() -> None:
        if past_retries.wait(timeout=120):
            mariadb.query("DROP TABLE MLMDEnv", db)

    log = logging.getLogger("cvpipe.lineage")
    handler, level = Attempts(level=logging.DEBUG), log.level
    log.addHandler(handler)
    log.setLevel(logging.DEBUG)
    helper = threading.Thread(target=other_process_finishes)
    helper.start()
    try:
        store = LineageStore(mysql_url)
    finally:
        past_retries.set()  # never leave the helper waiting
        helper.join()
        log.removeHandler(handler)
        log.setLevel(level)
    assert store.get(store.put_artifact("RawDataset", "/data/a.json").id).uri == "/data/a.json"


def test_password_from_the_environment(mariadb: MariaDB, mysql_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The URL holds no password; it comes from $CVPIPE_MLMD_PASSWORD (set from a Secret), stripped of its newline."""
    assert mariadb.password not in mysql_url
    monkeypatch.delenv(MYSQL_PASSWORD_ENV)
    with pytest.raises(LineageError, match="cannot open ML Metadata store") as e:
        LineageStore(mysql_url, retries=1)
    assert f"no password was given: set ${MYSQL_PASSWORD_ENV}" in str(e.value)
    monkeypatch.setenv(MYSQL_PASSWORD_ENV, mariadb.password + "\n")
    store = LineageStore(mysql_url)
    assert store.get(store.put_artifact("RawDataset", "/data/b.json").id).uri == "/data/b.json"
    monkeypatch.setenv(MYSQL_PASSWORD_ENV, "wrong-" + mariadb.password)
    with pytest.raises(LineageError) as e:
        LineageStore(mysql_url, retries=1)
    assert mariadb.password not in str(e.value)


def test_password_from_the_file_or_variable_the_spec_names(mariadb: MariaDB, mysql_url: str, monkeypatch, tmp_path) -> None:
    from components.core.spec import MetadataSpec

    monkeypatch.delenv(MYSQL_PASSWORD_ENV)
    secret = tmp_path / "mlmd-password"
    secret.write_text(mariadb.password + "\n")  # as a mounted Kubernetes Secret holds it
    store = LineageStore.for_spec(MetadataSpec(url=mysql_url, password_file=str(secret)))
    assert store.get(store.put_artifact("RawDataset", "/data/c.json").id).uri == "/data/c.json"
    monkeypatch.setenv("TEAM_MLMD_PW", mariadb.password)
    store = LineageStore.for_spec(MetadataSpec(url=mysql_url, password_env="TEAM_MLMD_PW"))
    assert store.get(store.put_artifact("RawDataset", "/data/d.json").id).uri == "/data/d.json"
    # a spec naming its own variable does not fall back to the default one
    monkeypatch.delenv("TEAM_MLMD_PW")
    monkeypatch.setenv(MYSQL_PASSWORD_ENV, mariadb.password)
    with pytest.raises(LineageError, match="no password was given"):
        LineageStore.for_spec(MetadataSpec(url=mysql_url, password_env="TEAM_MLMD_PW"), retries=1)


def _lineage_spec(root: Path, url: str, source: Path) -> dict[str, Any]:
    return {
        "name": "secret-demo",
        "task": "detection",
        "data": {"source": str(source)},
        "validation": {"min_examples_per_class": 1},
        "runtime": {"root": str(root / "runs"), "metadata": {"url": url, "password_env": "TEAM_MLMD_PW"}},
    }


def test_kfp_local_tasks_get_the_password_through_their_environment(
    mariadb: MariaDB, mysql_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Every kfp.local task's command line (what `ps` shows) lacks the password; the tasks still write lineage to MariaDB."""
    from components.core.spec import parse_spec
    from pipelines.demo import synth
    from pipelines.runners.local import run_local

    monkeypatch.delenv(MYSQL_PASSWORD_ENV)
    monkeypatch.setenv("TEAM_MLMD_PW", mariadb.password)
    source = synth(tmp_path / "data", num_images=6, seed=1, image_size=64)
    spec = parse_spec(_lineage_spec(tmp_path, mysql_url, source))
    started: list[tuple[list[str], Any]] = []
    real_popen = subprocess.Popen

    class RecordingPopen(real_popen):  # type: ignore[misc, valid-type]
        def __init__(self, args: Any, *rest: Any, **kwargs: Any) -> None:
            started.append(([str(a) for a in args] if isinstance(args, list | tuple) else [str(args)], kwargs.get("env")))
            super().__init__(args, *rest, **kwargs)

    monkeypatch.setattr(subprocess, "Popen", RecordingPopen)
    summary = run_local(spec, until="ingest")
    monkeypatch.setattr(subprocess, "Popen", real_popen)
    assert summary.succeeded, summary.error
    tasks = [(argv, env) for argv, env in started if any("ingest" in a for a in argv)]
    assert tasks, f"no kfp.local task process was started: {[a[:3] for a, _ in started]}"
    for argv, env in started:
        assert mariadb.password not in " ".join(argv)
        assert env is None or env.get("TEAM_MLMD_PW") == mariadb.password  # inherited (None) or passed on
    assert any(mysql_url in " ".join(argv) for argv, _ in tasks)  # the URL itself does travel
    # the task really reached MariaDB with the password from its environment
    store = LineageStore.for_spec(spec.runtime.metadata)
    assert [e["component"] for e in store.executions(run_id=summary.run_id)] == ["ingest"]


def test_local_run_process_gets_the_password_through_its_environment(
    mariadb: MariaDB, mysql_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A LocalRunner run (how the trigger retrains locally) has no password on its command line; it reaches MariaDB all the same."""
    from components.core.spec import parse_spec
    from pipelines.runners.local import LocalRunner

    monkeypatch.delenv(MYSQL_PASSWORD_ENV)
    monkeypatch.setenv("TEAM_MLMD_PW", mariadb.password)
    spec = parse_spec(_lineage_spec(tmp_path, mysql_url, tmp_path / "missing" / "annotations.json"))
    runner = LocalRunner(tmp_path / "local-runs")
    run = runner.submit(spec, until="ingest", run_name="retrain-t1")
    pid = int(run.details["pid"])
    try:
        shown = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        assert mariadb.password not in shown
        assert mariadb.password not in (tmp_path / "local-runs" / "retrain-t1" / "spec.yaml").read_text()
        finished = runner.wait(run.run_id, timeout=600)
    finally:
        if pid_alive(pid):
            os.killpg(pid, signal.SIGKILL)
    # the data source is missing: the run fails in ingest, and reports it after reading the run's steps from
    # MariaDB with the password from the inherited environment (without it the error would be the store's)
    assert finished.state == "FAILED" and (finished.error or "").startswith("pipeline ") and "ingest" in (finished.error or "")
    assert mariadb.password not in Path(finished.url).read_text()


@pytest.mark.parametrize("backend", ["mysql", "sqlite"])
def test_integers_wider_than_mysql_int_round_trip(backend: str, mysql_url: str, tmp_path: Path) -> None:
    """A millisecond timestamp (every push records ``created_ms``) does not fit MySQL's 32-bit INT column."""
    url = mysql_url if backend == "mysql" else f"sqlite:///{tmp_path / 'mlmd.sqlite'}"
    store = LineageStore(url)
    props = {"created_ms": 1_780_000_000_000, "small": 5, "low": -(2**31), "negative": -(2**40), "ratio": 2.5, "whole": 3.0}
    ref = store.put_artifact("PushedModel", "/registry/m/1", {**props, "huge": 2**60})
    got = store.get(ref.id).properties
    for key, value in props.items():
        assert got[key] == value and type(got[key]) is type(value), (key, got[key])
    assert got["huge"] == str(2**60)  # beyond a double's exact integers: kept as its decimal text
