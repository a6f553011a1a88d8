"""The prediction server's write-ahead log and ``cvpipe logs compact``, on a real Feast repository.

Replay after a kill at each point of a roll (before the part, after the part,
after a compaction merged the part), and compaction while readers read the
log through Feast and a writer keeps appending.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pyarrow.parquet as pq
import pytest
import yaml
from click.testing import CliRunner

from components.predict.compact import compact_log
from components.predict.logs import LabelRow, PredictionLog, PredictionRow, ground_truth_json, init_feature_repo
from components.predict.wal import WriteAheadLog
from pipelines.cli.predict import logs_group

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def _row(i: int) -> PredictionRow:
    return PredictionRow(
        event_timestamp=T0 + timedelta(seconds=i),
        request_id=f"r{i:05d}",
        model_name="m",
        model_version=1,
        image_sha256=f"sha{i % 7}",
        image_uri="",
        width=10,
        height=10,
        brightness=0.5,
        contrast=0.1,
        predictions='{"task":"detection","class_ids":[],"scores":[],"boxes":[]}',
    )


@pytest.fixture(scope="module")
def template_repo(tmp_path_factory):
    return init_feature_repo(tmp_path_factory.mktemp("feast"))


@pytest.fixture
def log(template_repo):
    """The module's repository, emptied (one Feast apply for all tests)."""
    import shutil

    for d in ("predictions", "labels", "wal"):
        shutil.rmtree(template_repo / "data" / d, ignore_errors=True)
        if d != "wal":
            (template_repo / "data" / d).mkdir()
    return PredictionLog(template_repo)


def _ids(log: PredictionLog) -> list[str]:
    return sorted(pq.read_table(log.predictions_dir).column("request_id").to_pylist())


def test_rows_roll_into_parts_by_count_and_survive_a_kill_at_every_point(log):
    wal = WriteAheadLog(log, roll_rows=4)
    wal.open()
    wal.append([_row(i) for i in range(3)])
    assert not list(log.predictions_dir.glob("*.parquet"))
    wal.append([_row(3)])  # the fourth row rolls the segment
    assert _ids(log) == [f"r{i:05d}" for i in range(4)]
    wal.append([_row(4), _row(5)])
    # killed: the open segment is left behind and the directory lock dies with the process
    wal._owner.close()  # type: ignore[union-attr]
    seg = next(log.data_dir.glob("wal/wal-*.jsonl"))
    with open(seg, "ab") as f:
        f.write(b'{"event_timestamp": "2026-12-01T12:')  # torn by the kill, never acknowledged

    again = WriteAheadLog(log, roll_rows=4)
    replay = again.open()
    assert (replay.segments, replay.rows, replay.torn, replay.duplicates) == (1, 2, 1, 0)
    assert _ids(log) == [f"r{i:05d}" for i in range(6)]
    assert not list(log.data_dir.glob("wal/wal-*.jsonl"))

    # killed after the part was written but before the segment was removed
    again.append([_row(6)])
    seg = again._segment
    assert seg is not None
    again._file.close()  # type: ignore[union-attr]
    again._write_part(seg, [_row(6)])
    again._owner.close()  # type: ignore[union-attr]
    third = WriteAheadLog(log)
    assert third.open().rows == 0 and _ids(log).count("r00006") == 1

    # the same, and a compaction merged that part before the restart
    third.append([_row(7)])
    seg = third._segment
    assert seg is not None
    third._file.close()  # type: ignore[union-attr]
    third._write_part(seg, [_row(7)])
    third._owner.close()  # type: ignore[union-attr]
    compact_log(log)
    fourth = WriteAheadLog(log)
    replay = fourth.open()
    assert (replay.rows, replay.duplicates) == (0, 1)
    assert _ids(log) == [f"r{i:05d}" for i in range(8)]
    fourth.close()


def test_one_process_owns_a_write_ahead_log(log):
    first = WriteAheadLog(log)
    first.open()
    with pytest.raises(OSError, match="another server process"):
        WriteAheadLog(log).open()
    first.close()


def test_compaction_while_readers_read_and_a_writer_appends(log):
    for i in range(0, 120, 4):
        log.append([_row(j) for j in range(i, i + 4)])
    log.add_labels(
        [
            LabelRow(
                image_sha256=f"sha{k}",
                event_timestamp=T0 + timedelta(hours=1),
                labelling_batch_id="b",
                ground_truth=ground_truth_json("detection", 10, 10, []),
            )
            for k in range(3)
        ]
    )
    log.add_labels(
        [
            LabelRow(
                image_sha256=f"sha{k}",
                event_timestamp=T0 + timedelta(hours=1),
                labelling_batch_id="b",
                ground_truth=ground_truth_json("detection", 10, 10, []),
            )
            for k in range(3, 5)
        ]
    )
    window = (T0, T0 + timedelta(minutes=3))
    expected = [f"r{i:05d}" for i in range(120)]
    before = log.joined(*window, as_of=T0 + timedelta(days=1))
    errors: list[BaseException] = []
    reads: list[list[str]] = []
    done = threading.Event()

    def reader() -> None:
        while not done.is_set() or len(reads) < 2:
            try:
                reads.append(sorted(log.read_window(*window)["request_id"]))
            except BaseException as e:  # reported by the test
                errors.append(e)
                return

    t = threading.Thread(target=reader)
    t.start()
    wait_reads = len(reads)
    while len(reads) == wait_reads and not errors:
        threading.Event().wait(0.01)
    result = compact_log(log)
    log.append([_row(200)])  # a writer goes on meanwhile: left for the next compaction
    done.set()
    t.join()
    assert not errors
    assert all(r == expected for r in reads) and len(reads) >= 2
    assert result.files_before == 32 and result.files_after == 2 and result.rows == 125
    names = sorted(p.name for p in log.predictions_dir.glob("*.parquet"))
    assert len(names) == 2 and names[0].startswith("day-") and names[1].startswith("part-")
    after = log.joined(*window, as_of=T0 + timedelta(days=1))
    assert sorted(after["request_id"]) == expected
    assert int(after["labelled"].sum()) == int(before["labelled"].sum()) > 0


def test_logs_compact_command(log, tmp_path):
    for i in range(3):
        log.append([_row(i)])
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        yaml.safe_dump(
            {
                "name": "shapes",
                "task": "detection",
                "data": {"source": str(tmp_path / "a.json")},
                "runtime": {"root": str(tmp_path / "runs"), "metadata": {"url": f"sqlite:///{tmp_path / 'mlmd.sqlite'}"}},
            }
        )
    )
    out = CliRunner().invoke(logs_group, ["compact", "--spec", str(spec), "--feature-repo", str(log.repo_dir)])
    assert out.exit_code == 0, out.output
    assert "3 files -> 1 (3 rows, 0 duplicate rows dropped)" in out.output
    out = CliRunner().invoke(logs_group, ["compact", "--spec", str(spec), "--feature-repo", str(log.repo_dir)])
    assert "nothing to compact" in out.output
