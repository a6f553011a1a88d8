"""Transform: a validated manifest becomes sharded TFRecords per split.

What it does, in order:

1. **Split** each image deterministically by its content hash: the first 64
   bits of its sha256 give a number in [0, 1) compared with the split
   fractions, so the same bytes land in the same split in every run and every
   dataset version (and duplicates never straddle train and test). A split
   the source preset (``ImageRecord.split``) is respected.
2. **Balance** (optional): images of rare classes are repeated in the
   training split (repeat-factor sampling: an image is repeated as often as
   its rarest class needs to match the most frequent one, capped at
   :data:`MAX_REPEAT`).
3. **Plan shards** per split from file sizes (target ``shard_size_mb``, at
   most :data:`MAX_RECORDS_PER_SHARD` records), named
   ``train-00000-of-00004.tfrecord[.gz]``. The plan depends only on the data,
   never on the number of cores, so the output is reproducible.
4. **Write** shards in parallel: one task per shard over a process pool. An
   already-RGB, upright, complete JPEG is copied byte for byte; everything
   else is decoded (:func:`~components.core.images.decode_rgb`: CMYK, gray,
   palette, RGBA, 16-bit, EXIF rotation) and re-encoded (JPEG sources as
   JPEG, lossless sources as PNG). With ``image_size`` every image is resized
   and masks follow (normalised boxes are unchanged by a resize). Each shard
   is written under a temporary dot-name and renamed when complete, so a
   killed run never leaves a shard that looks finished; ``examples.json`` is
   written last.
5. Images that cannot be used go to the quarantine report (stage
   ``transform``) with the reason; single bad objects (unknown class, empty
   box, undecodable mask) are dropped and reported; every other image reaches
   the TFRecords.

Annotation geometry: boxes and masks are in the pixel frame of the manifest's
``width x height``. When the decoded (EXIF-upright) image is that frame
transposed, the annotations were made on the stored pixels and are rotated
with them.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.core.errors import DataError
from components.core.examples import SPLITS, ExamplesIndex, ShardInfo, SplitInfo
from components.core.images import MAX_PIXELS
from components.core.io import sha256_file
from components.core.labelmap import LabelMap
from components.core.lineage import ArtifactRef, NewArtifact
from components.core.log import get_logger
from components.core.manifest import ImageRecord, Manifest
from components.core.quarantine import QuarantineReport
from components.core.spec import TransformSpec
from components.core.step import ArtifactUris, StepContext

from .jpeg import jpeg_copy_size
from .pool import run_in_pool, worker_count
from .records import JPEG_QUALITY, STAGE, WorkerState
from .shards import MAX_RECORDS_PER_SHARD, ShardResult, ShardTask, clean_output, plan_shards
from .split import MAX_REPEAT, class_copies, normalise_split, split_for

__all__ = [
    "JPEG_QUALITY",
    "MAX_RECORDS_PER_SHARD",
    "MAX_REPEAT",
    "STAGE",
    "ShardRunner",
    "TransformResult",
    "TransformUris",
    "jpeg_copy_size",
    "normalise_split",
    "run",
    "split_for",
    "write_examples",
]

ShardRunner = Callable[[list[ShardTask], WorkerState, int], Iterable[ShardResult]]
"""Writes planned shards: ``(shards, worker state, local worker count) -> shard results``."""


TransformUris = ArtifactUris
"""The transform step's URIs (``manifest``, ``label_map``, ``examples``, ``quarantine``, ``statistics``,
``schema``); the name stays because compiled pipelines' component source calls it."""


@dataclass
class TransformResult:
    """What transform wrote.

    Attributes:
        examples_dir: the examples directory.
        index: its ``examples.json``.
        quarantine: images and objects rejected at this stage.
        copied: records whose image bytes were copied unchanged.
        reencoded: records whose image was decoded and re-encoded.
        seconds: wall time of the writing.
    """

    examples_dir: Path
    index: ExamplesIndex
    quarantine: QuarantineReport
    copied: int = 0
    reencoded: int = 0
    seconds: float = 0.0

    @property
    def counts(self) -> dict[str, int]:
        """Records per split."""
        return self.index.counts

    @property
    def shards(self) -> dict[str, int]:
        """Shards per split."""
        return {name: len(s.shards) for name, s in self.index.splits.items()}

    def metadata(self) -> dict[str, Any]:
        """Summary for KFP artifact metadata and lineage properties."""
        return {
            "task": self.index.task,
            "counts": self.counts,
            "images": {name: s.images for name, s in self.index.splits.items()},
            "shards": self.shards,
            "gzip": self.index.gzip,
            "label_map_version": self.index.label_map.version,
            "quarantined": len(self.quarantine),
            "copied": self.copied,
            "reencoded": self.reencoded,
        }


def _check_label_maps(manifest: Manifest, label_map: LabelMap) -> None:
    for cid, name in manifest.label_map.classes.items():
        if label_map.classes.get(cid) != name:
            raise DataError(
                f"label map version {label_map.version} gives id {cid} to {label_map.classes.get(cid)!r}, the manifest's label map to {name!r}"
            )


def write_examples(
    manifest: Manifest,
    examples_dir: str | os.PathLike[str],
    options: TransformSpec | None = None,
    label_map: LabelMap | None = None,
    max_pixels: int = MAX_PIXELS,
    shard_runner: ShardRunner | None = None,
) -> TransformResult:
    """Writes a manifest's images as sharded TFRecords with ``examples.json`` (no lineage).

    Args:
        manifest: the validated manifest.
        examples_dir: output directory (previous shards and index there are replaced).
        options: split fractions, resize, shard size, GZIP, balancing, workers.
        label_map: the label map to record (default: the manifest's); it must
            agree with the manifest's on every id the manifest uses.
        max_pixels: largest width x height decoded (decompression-bomb guard).
        shard_runner: writes the planned shards and returns their results
            (default: :func:`~components.transform.pool.run_in_pool`; :func:`components.transform.beam.beam_shard_runner`
            writes the same shards on Apache Beam).

    Returns:
        The index, the quarantine report and counts.

    Raises:
        DataError: the label map disagrees with the manifest's.
        OSError: the output cannot be written (nothing finished-looking is left behind).
    """
    start = time.monotonic()
    opts = options or TransformSpec.model_validate({})
    lm = label_map or manifest.label_map
    _check_label_maps(manifest, lm)
    log = get_logger(STAGE)
    out = Path(examples_dir)
    out.mkdir(parents=True, exist_ok=True)
    clean_output(out)

    images = list(manifest.images)
    shas = [r.sha256.lower() if r.sha256 else _file_sha(manifest, r) for r in images]
    by_split: dict[str, list[int]] = {s: [] for s in SPLITS}
    for i, r in enumerate(images):
        preset = normalise_split(r.split)
        if r.split and preset is None:
            log.warning("%s: unknown preset split %r; using the content-hash split", r.path, r.split)
        by_split[preset or split_for(shas[i], opts.split)].append(i)
    sizes = [_size(manifest.root, r) for r in images]

    tasks: list[ShardTask] = []
    for split, idxs in by_split.items():
        copies = class_copies([images[i] for i in idxs], manifest.task) if (split == "train" and opts.balance_classes) else [1] * len(idxs)
        items = [(i, c) for i, n in zip(idxs, copies, strict=True) for c in range(n)]
        # hash order: deterministic and class-mixed; copies of one image spread over shards
        items.sort(key=lambda it: shas[it[0]] if it[1] == 0 else hashlib.sha256(f"{shas[it[0]]}:{it[1]}".encode()).hexdigest())
        tasks += plan_shards(split, items, sizes, opts.shard_size_mb * (1 << 20), opts.gzip)

    state = WorkerState(
        root=manifest.root,
        task=manifest.task,
        images=images,
        shas=shas,
        classes=dict(lm.classes),
        image_size=tuple(opts.image_size) if opts.image_size else None,  # type: ignore[arg-type]
        gzip=opts.gzip,
        max_pixels=max_pixels,
        out_dir=str(out),
    )
    workers = worker_count(opts.num_workers, len(tasks))
    log.info("%d images -> %d shards with %d worker(s)", len(images), len(tasks), workers)
    ordered = sorted(tasks, key=lambda t: -t.est_bytes)  # largest first balances the pool
    results = list((shard_runner or run_in_pool)(ordered, state, workers))

    report = QuarantineReport(stage=STAGE, total=len(images))
    seen: set[tuple[str, str, str]] = set()
    splits: dict[str, SplitInfo] = {}
    copied = reencoded = 0
    for split in SPLITS:
        mine = sorted((r for r in results if r.split == split), key=lambda r: r.file)
        counts: Counter[str] = Counter()
        distinct: set[int] = set()
        for res in mine:
            counts.update(res.class_counts)
            distinct |= res.images
            copied += res.copied
            reencoded += res.reencoded
        splits[split] = SplitInfo(
            records=sum(r.records for r in mine),
            images=len(distinct),
            class_counts={name: counts.get(name, 0) for name in lm.names},
            shards=[ShardInfo(file=r.file, records=r.records, sha256=r.sha256, bytes=r.bytes) for r in mine],
        )
    for res in sorted(results, key=lambda x: x.file):
        for q in res.quarantine:
            key = (q["file"], q["kind"], str(q.get("annotation_id")))
            if key not in seen:  # an oversampled image appears in several shards
                seen.add(key)
                report.add(**q)

    index = ExamplesIndex(
        task=manifest.task,
        gzip=opts.gzip,
        label_map=lm,
        image_size=opts.image_size,
        splits=splits,
        quarantined=report.rejected_images,
        extra={
            "split_fractions": opts.split.model_dump(),
            "balance_classes": opts.balance_classes,
            "copied": copied,
            "reencoded": reencoded,
        },
    )
    index.save(out)  # last: its presence means every shard it lists is complete
    seconds = time.monotonic() - start
    log.info(
        "wrote %s records (%d copied, %d re-encoded), %d quarantined in %.1fs",
        ", ".join(f"{s}={n}" for s, n in index.counts.items()),
        copied,
        reencoded,
        len(report),
        seconds,
    )
    return TransformResult(examples_dir=out, index=index, quarantine=report, copied=copied, reencoded=reencoded, seconds=seconds)


def _size(root: str, record: ImageRecord) -> int:
    try:
        return os.stat(record.file(root)).st_size
    except OSError:
        return 0


def _file_sha(manifest: Manifest, record: ImageRecord) -> str:
    try:
        return sha256_file(manifest.image_path(record))
    except OSError:
        return hashlib.sha256(record.image_id.encode()).hexdigest()  # missing: quarantined later anyway


# --------------------------------------------------------------------------- step


def _file_in(path: str | os.PathLike[str], name: str) -> Path:
    p = Path(path)
    return p / name if p.is_dir() else p


def _validated_with(ctx: StepContext, manifest: ArtifactRef | None) -> dict[str, ArtifactRef]:
    """The statistics and schema the manifest was validated with, from lineage (none when it was not validated).

    They are outputs of the validate execution that wrote the manifest, or
    that wrote a manifest it was derived from (a user step between validate
    and transform).
    """
    if manifest is None:
        return {}
    for m in ctx.store.upstream(manifest.id, max_depth=4).of_kind("Manifest"):
        beside = ctx.store.produced_with(m.id)
        found = {key: [a for a in beside if a.kind == kind] for key, kind in (("statistics", "ExampleStatistics"), ("schema", "Schema"))}
        if any(found.values()):
            return {key: refs[0] for key, refs in found.items() if refs}
    return {}


def run(
    ctx: StepContext,
    manifest_path: str | os.PathLike[str],
    label_map_path: str | os.PathLike[str],
    examples_dir: str | os.PathLike[str],
    quarantine_dir: str | os.PathLike[str],
    uris: ArtifactUris | Mapping[str, str] | None = None,
) -> TransformResult:
    """Runs the transform step: TFRecords, quarantine report, lineage.

    Args:
        ctx: the step context (spec, run id, lineage store).
        manifest_path: the validated ``manifest.json`` (or its directory).
        label_map_path: ``label_map.json`` (or its directory).
        examples_dir: where shards and ``examples.json`` go.
        quarantine_dir: where ``quarantine.json``/``.csv`` go.
        uris: artifact URIs for lineage (``manifest``, ``label_map``, ``examples``, ``quarantine``,
            ``statistics``, ``schema``); by default the local paths. Without ``statistics`` and
            ``schema``, those validate recorded beside the manifest are linked (none when it was not validated).

    Returns:
        What was written.

    Raises:
        DataError: the label map disagrees with the manifest.
        QuarantineLimitError: more images were rejected than ``data.max_quarantine_*``
            allow (the report is written first).
    """
    manifest = Manifest.load(_file_in(manifest_path, "manifest.json"))
    label_map = LabelMap.load(_file_in(label_map_path, "label_map.json"))
    u = ArtifactUris.of(uris)
    spec = ctx.spec
    runner = None
    if spec.runtime.beam is not None:
        from .beam import beam_shard_runner

        runner = beam_shard_runner(spec.runtime.beam)
    result = write_examples(
        manifest, examples_dir, spec.transform, label_map=label_map, max_pixels=spec.validation.max_pixels, shard_runner=runner
    )
    report_path = result.quarantine.write(quarantine_dir)
    result.quarantine.check_limit(spec.data.max_quarantine_fraction, spec.data.max_quarantine_count, str(report_path))

    inputs: dict[str, ArtifactRef | None] = {
        "manifest": ctx.input_artifact(u.uri("manifest", manifest_path), "Manifest"),
        "label_map": ctx.input_artifact(
            u.uri("label_map", label_map_path), "LabelMap", {"version": label_map.version, "num_classes": label_map.num_classes}
        ),
        "statistics": ctx.input_artifact(u["statistics"], "ExampleStatistics") if "statistics" in u else None,
        "schema": ctx.input_artifact(u["schema"], "Schema") if "schema" in u else None,
    }
    if inputs["statistics"] is None and inputs["schema"] is None:
        inputs.update(_validated_with(ctx, inputs["manifest"]))
    meta = result.metadata()
    ctx.record(
        inputs=inputs,
        outputs={
            "examples": NewArtifact(
                "Examples",
                u.uri("examples", examples_dir),
                {**meta, "pipeline": spec.name, "images": sum(s.images for s in result.index.splits.values())},
            ),
            "quarantine": NewArtifact(
                "QuarantineReport",
                u.uri("quarantine", quarantine_dir),
                {"stage": STAGE, "items": len(result.quarantine), "total": result.quarantine.total},
            ),
        },
        properties={"copied": result.copied, "reencoded": result.reencoded, "seconds": round(result.seconds, 3)},
    )
    return result
