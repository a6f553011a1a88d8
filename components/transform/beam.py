"""Transform on Apache Beam: the same shards as the local path, record by record on any Beam runner.

:func:`~components.transform.core.write_examples` plans the shards
(deterministic split, balancing, shard sizes) and assembles ``examples.json``
whichever way the shards are written. :func:`beam_shard_runner` writes them
on Beam:

    (shard, image, positions) --ParDo: build the record--> (shard, record) --GroupByKey--> write shard

Records are built by the local path's own per-record function (decode,
convert, resize, boxes, masks, quarantine: ``build_or_quarantine``)
and a shard's records are written in the planned order, so both paths write
byte-identical shards. A shard is written under a temporary name and renamed
when complete, as locally.

This module imports Apache Beam; the step (:func:`components.transform.step.run`) imports it only when the
spec has ``runtime.beam``. With a runner other than ``DirectRunner`` the workers must see the manifest's
images and the examples directory at the same paths as the launching task
(a shared volume, or Cloud Storage FUSE on both sides).

Each shard's result is left as a small JSON file by a plain ``Map`` rather
than Beam's ``WriteToText``: Beam's file sinks finalise through side inputs
that the Dask runner (``apache_beam.runners.dask.dask_runner.DaskRunner``)
computes wrongly, and a retried write only replaces the same file.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import apache_beam as beam_sdk

from components.core.beam import beam_pipeline
from components.core.examples import TFRecordWriter
from components.core.io import atomic_path, atomic_write_text
from components.core.log import get_logger
from components.core.spec import BeamSpec

from .records import STAGE, Built, WorkerState, build_or_quarantine
from .shards import ShardResult, ShardTask, write_record

__all__ = ["beam_shard_runner"]


def _result_to_json(res: ShardResult) -> str:
    return json.dumps(
        {
            "split": res.split,
            "file": res.file,
            "records": res.records,
            "sha256": res.sha256,
            "bytes": res.bytes,
            "class_counts": dict(res.class_counts),
            "images": sorted(res.images),
            "quarantine": res.quarantine,
            "copied": res.copied,
            "reencoded": res.reencoded,
        }
    )


def _result_from_json(line: str) -> ShardResult:
    from collections import Counter

    d = json.loads(line)
    return ShardResult(
        split=d["split"],
        file=d["file"],
        records=d["records"],
        sha256=d["sha256"],
        bytes=d["bytes"],
        class_counts=Counter(d["class_counts"]),
        images=set(d["images"]),
        quarantine=d["quarantine"],
        copied=d["copied"],
        reencoded=d["reencoded"],
    )


def _elements(tasks: list[ShardTask]) -> list[tuple[str, int, list[int]]]:
    """One element per (shard, image): an image oversampled into one shard is built once."""
    out: list[tuple[str, int, list[int]]] = []
    for task in tasks:
        positions: dict[int, list[int]] = {}
        for pos, (idx, _copy) in enumerate(task.items):
            positions.setdefault(idx, []).append(pos)
        out.extend((task.file, idx, pos) for idx, pos in positions.items())
    return out


class _BuildRecords(beam_sdk.DoFn):  # type: ignore[misc]
    """Builds one image's record with the local path's per-record function."""

    def __init__(self, state: WorkerState):
        super().__init__()
        self._state = state

    def process(self, element: tuple[str, int, list[int]]) -> Iterable[tuple[str, tuple[list[int], int, Built, list[dict[str, Any]]]]]:
        file, idx, positions = element
        quarantine: list[dict[str, Any]] = []
        built = build_or_quarantine(self._state, idx, quarantine)
        yield file, (positions, idx, built, quarantine)


def _write_shard(state: WorkerState, split: str, file: str, parts: Iterable[tuple[list[int], int, Built, list[dict[str, Any]]]]) -> str:
    """Writes one shard from its built records, in the planned order; returns its result as JSON."""
    ordered = sorted(parts, key=lambda p: p[0][0])
    res = ShardResult(split, file)
    for _, _, _, quarantine in ordered:  # as locally: in the order images are first met
        res.quarantine.extend(quarantine)
    slots = sorted(((pos, idx, built) for positions, idx, built, _ in ordered for pos in positions), key=lambda s: s[0])
    final = Path(state.out_dir) / file
    with atomic_path(final) as tmp:
        writer = TFRecordWriter(tmp, gzip_compress=state.gzip)
        try:
            for _, idx, built in slots:
                if built is None:
                    continue
                write_record(writer, built[0])
                res.add(idx, built)
        finally:
            writer.close()
    res.sha256, res.bytes = writer.sha256, writer.bytes
    return _result_to_json(res)


def _keep_result(line: str, scratch: str) -> None:
    """Leaves one shard's result where the launching process reads it (a plain write: see the module docstring)."""
    atomic_write_text(Path(scratch) / f"{json.loads(line)['file']}.json", line)


def beam_shard_runner(beam: BeamSpec) -> Callable[[list[ShardTask], WorkerState, int], list[ShardResult]]:
    """A ``shard_runner`` for :func:`~components.transform.core.write_examples` that writes the shards on Apache Beam.

    Args:
        beam: the spec's ``runtime.beam`` (runner and pipeline options).

    Returns:
        The runner: ``(planned shards, worker state, local worker count) -> shard results``.
    """

    def run(tasks: list[ShardTask], state: WorkerState, workers: int) -> list[ShardResult]:
        b = beam_sdk
        if not tasks:
            return []
        splits = {t.file: t.split for t in tasks}
        log = get_logger(STAGE)
        log.info("writing %d shards on Apache Beam (%s)", len(tasks), beam.runner)
        scratch = Path(tempfile.mkdtemp(prefix=".beam-results-", dir=state.out_dir))
        try:
            with beam_pipeline(beam) as p:
                _ = (
                    p
                    | "Images" >> b.Create(_elements(tasks), reshuffle=True)
                    | "BuildRecords" >> b.ParDo(_BuildRecords(state))
                    | "ByShard" >> b.GroupByKey()
                    | "WriteShards" >> b.Map(lambda kv: _write_shard(state, splits[kv[0]], kv[0], kv[1]))
                    | "Results" >> b.Map(_keep_result, str(scratch))
                )
            lines = [f.read_text() for f in sorted(scratch.glob("*.json"))]
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        results = [_result_from_json(line) for line in lines]
        missing = set(splits) - {r.file for r in results}
        if missing:
            raise RuntimeError(f"the Beam pipeline did not report shard(s) {', '.join(sorted(missing))}")
        return results

    return run
