"""Shard plan and shard writing: which records go to which file, and writing one file.

Shards are planned per split from file sizes (target ``shard_size_mb``, at
most :data:`MAX_RECORDS_PER_SHARD` records) and named
``train-00000-of-00004.tfrecord[.gz]``. The plan depends only on the data,
never on the number of cores, so the output is reproducible. A shard is
written under a temporary dot-name and renamed when complete, so a killed run
never leaves a shard that looks finished.
"""

from __future__ import annotations

import contextlib
import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from components.core.examples import EXAMPLES_INDEX, TFRecordWriter
from components.core.io import atomic_path

from .records import Built, BuiltRecord, WorkerState, build_or_quarantine

__all__ = [
    "MAX_RECORDS_PER_SHARD",
    "SHARD_NAME",
    "ShardResult",
    "ShardTask",
    "clean_output",
    "plan_shards",
    "write_record",
    "write_shard",
]

MAX_RECORDS_PER_SHARD = 1024
"""A shard holds at most this many records (more shards: parallel writing and better shuffling)."""

SHARD_NAME = re.compile(r"^(train|validation|test)-\d{5}-of-\d{5}\.tfrecord(\.gz)?$")
"""File names of finished shards."""


@dataclass
class ShardTask:
    """One planned shard.

    Attributes:
        split: its split.
        file: its file name.
        items: ``(image index, copy number)`` of its records, in writing order.
        est_bytes: the images' total file size (largest shards are started first).
    """

    split: str
    file: str
    items: list[tuple[int, int]]
    est_bytes: int


@dataclass
class ShardResult:
    """What writing one shard produced.

    Attributes:
        split: its split.
        file: its file name.
        records: records written.
        sha256: hex sha256 of the file.
        bytes: file size.
        class_counts: records per class name.
        images: indexes of the distinct images written.
        quarantine: rejected images and dropped objects (quarantine report items).
        copied: records whose image bytes were copied.
        reencoded: records whose image was decoded and re-encoded.
    """

    split: str
    file: str
    records: int = 0
    sha256: str = ""
    bytes: int = 0
    class_counts: Counter[str] = field(default_factory=Counter)
    images: set[int] = field(default_factory=set)
    quarantine: list[dict[str, Any]] = field(default_factory=list)
    copied: int = 0
    reencoded: int = 0

    def add(self, idx: int, built: BuiltRecord) -> None:
        """Counts one written record.

        Args:
            idx: its image index.
            built: what :func:`~components.transform.records.build_record` returned.
        """
        _data, counted, copied = built
        self.records += 1
        self.images.add(idx)
        self.class_counts.update(counted)
        if copied:
            self.copied += 1
        else:
            self.reencoded += 1


def plan_shards(split: str, items: list[tuple[int, int]], sizes: Sequence[int], target_bytes: float, gz: bool) -> list[ShardTask]:
    """Cuts one split's records into shards of about ``target_bytes``.

    Args:
        split: the split.
        items: ``(image index, copy number)`` in writing order.
        sizes: file size of every image, by index.
        target_bytes: wanted shard size.
        gz: whether shards are GZIP-compressed (their names end in ``.gz``).

    Returns:
        The shards, in order.
    """
    if not items:
        return []
    total = sum(sizes[i] for i, _ in items)
    n = max(1, math.ceil(total / target_bytes), math.ceil(len(items) / MAX_RECORDS_PER_SHARD))
    n = min(n, len(items))
    ext = ".tfrecord.gz" if gz else ".tfrecord"
    tasks = []
    for k in range(n):
        chunk = items[k * len(items) // n : (k + 1) * len(items) // n]
        tasks.append(ShardTask(split, f"{split}-{k:05d}-of-{n:05d}{ext}", chunk, sum(sizes[i] for i, _ in chunk)))
    return tasks


def clean_output(out: Path) -> None:
    """Removes what a previous (maybe killed) run left: the index first, then shards and temporaries.

    Args:
        out: the examples directory.
    """
    with contextlib.suppress(FileNotFoundError):
        (out / EXAMPLES_INDEX).unlink()
    for f in out.iterdir():
        if f.is_file() and (SHARD_NAME.match(f.name) or (f.name.startswith(".") and f.name.endswith(".tmp"))):
            f.unlink()


def write_record(writer: TFRecordWriter, record: bytes) -> None:
    """Appends one serialised record (the one place shards are written to, for both paths).

    Args:
        writer: the shard's writer.
        record: the serialised example.
    """
    writer.write(record)


def write_shard(st: WorkerState, task: ShardTask) -> ShardResult:
    """Writes one shard; bad images are quarantined, I/O errors propagate.

    Args:
        st: the images and options.
        task: the shard.

    Returns:
        What was written.
    """
    res = ShardResult(task.split, task.file)
    final = Path(st.out_dir) / task.file
    with atomic_path(final) as tmp:
        writer = TFRecordWriter(tmp, gzip_compress=st.gzip)
        try:
            _fill(st, task, writer, res)
        finally:
            writer.close()
    res.sha256, res.bytes = writer.sha256, writer.bytes
    return res


def _fill(st: WorkerState, task: ShardTask, writer: TFRecordWriter, res: ShardResult) -> None:
    left = Counter(idx for idx, _ in task.items)  # oversampled images: build once, write each copy
    cache: dict[int, Built] = {}
    for idx, _copy in task.items:
        if idx in cache:
            built = cache[idx]
        else:
            built = build_or_quarantine(st, idx, res.quarantine)
            if left[idx] > 1:
                cache[idx] = built
        left[idx] -= 1
        if not left[idx]:
            cache.pop(idx, None)
        if built is None:
            continue
        write_record(writer, built[0])
        res.add(idx, built)
