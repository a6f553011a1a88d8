"""``cvpipe logs compact``: merge a day's small parquet part files of the prediction log into one.

Part files are named by the UTC time they were written (``part-YYYYMMDDTHHMMSS...``).
Compaction takes the files of one day (parts, and an earlier compacted file of
that day), writes their rows once (a prediction by ``request_id``) ordered by
time into ``day-YYYYMMDD-<id>.parquet`` under a temporary dot-name, renames it
into place, and only then removes the files it merged. It works on the list of
files it took at the start, so a server writing new parts meanwhile is not
disturbed: those are merged next time.

Readers never see a half state: between the rename and the removals a row is
in two files, which every reader collapses (the prediction log is keyed by
``request_id``; Feast keeps one row per key and timestamp); a reader whose file
was removed under it reads again (:meth:`~components.predict.logs.PredictionLog.read_window`
retries when the directory changed while it read). Files of the Feast sources stay
in the same directories, so the feature views read compacted data unchanged.
"""

from __future__ import annotations

import re
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

import components.core.parquet  # noqa: F401 - installs pyarrow_hotfix before pyarrow reads the part files here
from components.core.io import atomic_path
from components.core.log import get_logger

from .logs import LABEL_SCHEMA, PREDICTION_SCHEMA, PredictionLog

__all__ = ["CompactResult", "compact_log"]

_log = get_logger("logs.compact")
_DAY = re.compile(r"^(?:part-(\d{8})T|day-(\d{8})-).*\.parquet$")


@dataclass
class CompactResult:
    """What :func:`compact_log` did.

    Attributes:
        days: ``(directory name, day)`` pairs compacted.
        files_before: files merged.
        files_after: files written.
        rows: rows written.
        duplicates: rows dropped because their request id was already there.
        written: the files written.
    """

    days: list[tuple[str, str]] = field(default_factory=list)
    files_before: int = 0
    files_after: int = 0
    rows: int = 0
    duplicates: int = 0
    written: list[Path] = field(default_factory=list)


def _by_day(directory: Path) -> dict[str, list[Path]]:
    out: dict[str, list[Path]] = defaultdict(list)
    for f in sorted(directory.glob("*.parquet")):
        m = _DAY.match(f.name)
        if m:
            out[m.group(1) or m.group(2)].append(f)
    return out


def _dedupe(table: pa.Table, key: str) -> tuple[pa.Table, int]:
    seen: set[str] = set()
    keep: list[int] = []
    for i, v in enumerate(table.column(key).to_pylist()):
        if v not in seen:
            seen.add(v)
            keep.append(i)
    return (table.take(pa.array(keep, pa.int64())) if len(keep) < table.num_rows else table), table.num_rows - len(keep)


def compact_log(log: PredictionLog, days: list[str] | None = None, min_files: int = 2) -> CompactResult:
    """Merges the prediction log's (and labels') part files per day.

    Args:
        log: the prediction log.
        days: only these days (``YYYYMMDD``; default: every day).
        min_files: a day with fewer files is left as it is.

    Returns:
        What was merged.
    """
    import fcntl

    result = CompactResult()
    log.data_dir.mkdir(parents=True, exist_ok=True)
    with open(log.data_dir / ".compact.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for directory, schema, key in (
            (log.predictions_dir, PREDICTION_SCHEMA, "request_id"),
            (log.labels_dir, LABEL_SCHEMA, None),
        ):
            if not directory.is_dir():
                continue
            for day, files in sorted(_by_day(directory).items()):
                if (days is not None and day not in days) or len(files) < max(2, min_files):
                    continue
                table = pa.concat_tables([pq.read_table(f, schema=schema) for f in files])
                dropped = 0
                if key is not None:
                    table, dropped = _dedupe(table, key)
                table = table.sort_by([("event_timestamp", "ascending")])
                final = directory / f"day-{day}-{uuid.uuid4().hex[:12]}.parquet"
                with atomic_path(final) as tmp:
                    pq.write_table(table, tmp, row_group_size=64 * 1024)
                for f in files:
                    f.unlink(missing_ok=True)
                result.days.append((directory.name, day))
                result.files_before += len(files)
                result.files_after += 1
                result.rows += table.num_rows
                result.duplicates += dropped
                result.written.append(final)
                _log.info("%s %s: %d files -> %s (%d rows)", directory.name, day, len(files), final.name, table.num_rows)
    return result
