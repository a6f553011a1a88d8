"""The prediction server's write-ahead log: durable before the answer, few parquet files after.

An online prediction is acknowledged only once its log row is on disk:
:meth:`WriteAheadLog.append` writes the rows of a whole model batch as JSON
lines to the current *segment* and ``fsync``\\ s it once (the cost is shared by
the batch), and the server answers after that. Segments are rolled into one
parquet part file of the prediction log every ``roll_rows`` rows or
``roll_seconds`` seconds, so a day at 100 requests/s makes 1,440 files at the
default minute, not 8.6 million.

Layout (under ``<feature repo>/data/wal/``)::

    wal-<UTC stamp>-<id>.jsonl       one segment; one PredictionRow JSON per line

Rolling a segment writes ``predictions/part-<same stamp>-<same id>.parquet``
atomically (temporary name, then rename) and only then unlinks the segment.
:meth:`WriteAheadLog.open` replays what a killed server left: a segment whose
part exists was rolled already and is removed; otherwise its rows whose
request ids are not yet in that day's files (a compaction may have merged the
part) become the part. A torn last line (the process died mid-write; that
batch was never acknowledged) is dropped and counted. So no acknowledged row
is lost and none is written twice.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import ValidationError

import components.core.parquet  # noqa: F401 - installs pyarrow_hotfix before pyarrow reads the part files here
from components.core.io import atomic_path
from components.core.log import get_logger

from .logs import PREDICTION_SCHEMA, PredictionLog, PredictionRow

__all__ = ["ReplayResult", "WriteAheadLog", "rows_table"]

_log = get_logger("serve.wal")
WAL_DIR = "wal"
"""Sub-directory of the feature repository's ``data/`` holding segments."""


def rows_table(rows: list[PredictionRow]) -> pa.Table:
    """Prediction rows as an Arrow table of the prediction log's schema.

    Args:
        rows: the rows.

    Returns:
        The table.
    """
    cols: dict[str, list[object]] = {name: [] for name in PREDICTION_SCHEMA.names}
    for r in rows:
        for name, values in cols.items():
            values.append(getattr(r, name))
    return pa.Table.from_pydict(cols, schema=PREDICTION_SCHEMA)


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")


@dataclass
class ReplayResult:
    """What :meth:`WriteAheadLog.open` found left over from an earlier process.

    Attributes:
        segments: segments found.
        rows: rows written to new part files.
        duplicates: rows skipped because their request id was already in the log.
        torn: incomplete trailing lines dropped (never acknowledged).
        parts: part files written.
    """

    segments: int = 0
    rows: int = 0
    duplicates: int = 0
    torn: int = 0
    parts: list[Path] = field(default_factory=list)


class WriteAheadLog:
    """Appends prediction rows durably and rolls them into the prediction log's part files.

    Safe to call from several threads; one process owns a WAL directory at a
    time (a lock file enforces it).

    Args:
        log: the prediction log the segments roll into.
        roll_rows: rows per part file at most.
        roll_seconds: a segment older than this is rolled by :meth:`maybe_roll`.
        directory: where segments live (default: ``<log data dir>/wal``).
    """

    def __init__(self, log: PredictionLog, roll_rows: int = 10_000, roll_seconds: float = 60.0, directory: Path | None = None):
        self.log = log
        self.roll_rows = max(1, int(roll_rows))
        self.roll_seconds = float(roll_seconds)
        self.directory = directory or log.data_dir / WAL_DIR
        self._lock = threading.Lock()
        self._file: IO[bytes] | None = None
        self._segment: Path | None = None
        self._rows = 0
        self._opened_at = 0.0
        self._owner: IO[str] | None = None
        self.parts_written = 0
        self.rows_rolled = 0

    # -- life cycle ------------------------------------------------------------------
    def open(self) -> ReplayResult:
        """Takes the directory, replays leftover segments and starts a new one.

        Returns:
            What was replayed.

        Raises:
            OSError: another process holds the directory.
        """
        import fcntl

        self.directory.mkdir(parents=True, exist_ok=True)
        owner = open(self.directory / ".lock", "a")  # noqa: SIM115 - held until close()
        try:
            fcntl.flock(owner, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            owner.close()
            raise OSError(f"{self.directory}: another server process writes this prediction log") from None
        self._owner = owner
        result = ReplayResult()
        for seg in sorted(self.directory.glob("wal-*.jsonl")):
            result.segments += 1
            self._replay(seg, result)
        if result.segments:
            _log.info(
                "replayed %d write-ahead segments: %d rows logged, %d already logged, %d torn lines dropped",
                result.segments,
                result.rows,
                result.duplicates,
                result.torn,
            )
        return result

    def close(self) -> Path | None:
        """Rolls the current segment and releases the directory.

        Returns:
            The last part file written, or None.
        """
        with self._lock:
            part = self._roll_locked()
        if self._owner is not None:
            self._owner.close()
            self._owner = None
        return part

    # -- writing ---------------------------------------------------------------------
    def append(self, rows: list[PredictionRow]) -> None:
        """Writes rows to the current segment and fsyncs it (durable when this returns).

        Args:
            rows: the rows of one batch.
        """
        if not rows:
            return
        data = b"".join(r.model_dump_json().encode("utf-8") + b"\n" for r in rows)
        with self._lock:
            if self._file is None:
                self._start_locked()
            assert self._file is not None
            self._file.write(data)
            self._file.flush()
            os.fsync(self._file.fileno())
            self._rows += len(rows)
            if self._rows >= self.roll_rows:
                self._roll_locked()

    def maybe_roll(self) -> Path | None:
        """Rolls the current segment when it is older than ``roll_seconds``.

        Returns:
            The part file written, or None.
        """
        with self._lock:
            if self._rows and time.monotonic() - self._opened_at >= self.roll_seconds:
                return self._roll_locked()
        return None

    def _start_locked(self) -> None:
        self._segment = self.directory / f"wal-{_stamp()}-{uuid.uuid4().hex[:12]}.jsonl"
        self._file = open(self._segment, "ab")  # noqa: SIM115 - closed on roll
        self._rows = 0
        self._opened_at = time.monotonic()
        _fsync_dir(self.directory)

    def _roll_locked(self) -> Path | None:
        if self._file is None or self._segment is None:
            return None
        self._file.close()
        seg, n = self._segment, self._rows
        self._file, self._segment, self._rows = None, None, 0
        if n == 0:
            seg.unlink(missing_ok=True)
            return None
        rows, _ = _read_segment(seg)
        part = self._write_part(seg, rows)
        seg.unlink()
        self.parts_written += 1
        self.rows_rolled += len(rows)
        return part

    def _part_for(self, segment: Path) -> Path:
        return self.log.predictions_dir / (segment.stem.replace("wal-", "part-", 1) + ".parquet")

    def _write_part(self, segment: Path, rows: list[PredictionRow]) -> Path:
        final = self._part_for(segment)
        # The temporary name starts with a dot: Feast's (dask/pyarrow) readers skip it.
        with atomic_path(final) as tmp:
            pq.write_table(rows_table(rows), tmp)
        _fsync_dir(final.parent)
        return final

    # -- replay ----------------------------------------------------------------------
    def _replay(self, seg: Path, result: ReplayResult) -> None:
        part = self._part_for(seg)
        if part.exists():  # rolled, then killed before the segment was removed
            seg.unlink()
            return
        rows, torn = _read_segment(seg)
        result.torn += torn
        known = _logged_ids(self.log.predictions_dir, seg.name[4:12])
        fresh = [r for r in rows if r.request_id not in known]
        result.duplicates += len(rows) - len(fresh)
        if fresh:
            result.parts.append(self._write_part(seg, fresh))
            result.rows += len(fresh)
        seg.unlink()


def _read_segment(path: Path) -> tuple[list[PredictionRow], int]:
    """The rows of a segment and the number of unreadable lines (a torn tail)."""
    rows: list[PredictionRow] = []
    bad = 0
    seen: set[str] = set()
    with open(path, "rb") as f:
        for line in f:
            if not line.endswith(b"\n"):
                bad += 1
                continue
            try:
                row = PredictionRow.model_validate_json(line)
            except ValidationError:
                bad += 1
                _log.warning("%s: unreadable write-ahead line dropped", path)
                continue
            if row.request_id not in seen:
                seen.add(row.request_id)
                rows.append(row)
    return rows, bad


def _logged_ids(directory: Path, day: str) -> set[str]:
    """Request ids in the log's files written on ``day`` (``YYYYMMDD``): parts and compacted day files."""
    files = [*directory.glob(f"part-{day}T*.parquet"), *directory.glob(f"day-{day}-*.parquet")]
    out: set[str] = set()
    for f in files:
        try:
            out.update(pq.read_table(f, columns=["request_id"]).column("request_id").to_pylist())
        except FileNotFoundError:  # compacted away meanwhile: its rows are in the day file
            continue
    if files:
        return out | _logged_ids_retry(directory, day, files)
    return out


def _logged_ids_retry(directory: Path, day: str, seen_files: list[Path]) -> set[str]:
    """Ids in day files that appeared while reading (a compaction ran meanwhile)."""
    out: set[str] = set()
    for f in directory.glob(f"day-{day}-*.parquet"):
        if f not in seen_files:
            out.update(pq.read_table(f, columns=["request_id"]).column("request_id").to_pylist())
    return out


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
