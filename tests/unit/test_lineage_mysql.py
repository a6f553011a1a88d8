"""ML Metadata on MySQL (MariaDB): the store cvpipe uses on a cluster.

The fixture installs Debian's ``mariadb-server`` when it is missing (CI runs
as root on a fresh machine), starts it as an ordinary process on 127.0.0.1
with its own data directory, and stops it at the end; each test gets a fresh
database. The tests skip, with the reason, only when MariaDB can be neither
found nor installed.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from fakes.mariadb import MariaDB, MariaDBUnavailable

from components.core.errors import LineageError
from components.core.lineage import LineageStore, NewArtifact

pytestmark = pytest.mark.mysql

STEPS = ("ingest", "validate", "transform", "train")


@pytest.fixture(scope="module")
def mariadb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MariaDB]:
    server = MariaDB(tmp_path_factory.mktemp("mariadb"))
    try:
        server.start()
    except MariaDBUnavailable as e:
        pytest.skip(f"MariaDB unavailable: {e}")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def mysql_url(mariadb: MariaDB, request: pytest.FixtureRequest) -> str:
    name = "mlmd_" + "".join(c if c.isalnum() else "_" for c in request.node.name)[:50]
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


def test_password_from_the_environment(mysql_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A URL without a password (as a spec holds it) takes it from $CVPIPE_MLMD_PASSWORD (set from a Secret)."""
    from fakes.mariadb import PASSWORD

    bare = mysql_url.replace(f":{PASSWORD}@", "@")
    assert PASSWORD not in bare
    monkeypatch.delenv("CVPIPE_MLMD_PASSWORD", raising=False)
    with pytest.raises(LineageError, match="cannot open ML Metadata store"):
        LineageStore(bare, retries=1)
    monkeypatch.setenv("CVPIPE_MLMD_PASSWORD", PASSWORD)
    store = LineageStore(bare)
    assert store.get(store.put_artifact("RawDataset", "/data/b.json").id).uri == "/data/b.json"
