"""Data validation: TFDV statistics, schema and drift, plus image checks TFDV cannot do.

:func:`run` reads the canonical manifest and the label map and

1. checks every image and annotation (:mod:`components.validate.checks`):
   unreadable files, decompression bombs (rejected from the header, never
   decoded), undecodable (truncated) files, colour modes and EXIF rotations
   that will be converted, extension mismatches, boxes outside the image,
   degenerate boxes, NaN coordinates, unknown class ids, and identical bytes
   in more than one preset split;
2. applies each finding's policy (``spec.validation.policy``, else
   :data:`DEFAULT_POLICIES`, else ``spec.validation.default_policy``):
   ``quarantine`` moves the image (or, for a per-object problem, only that
   object) to the quarantine report and out of the validated manifest,
   ``warn`` lists it, ``fail`` fails the run after everything is written;
3. checks the remaining data as a whole: an empty dataset, classes with
   fewer than ``min_examples_per_class`` examples;
4. computes TFDV statistics over the validated data (two tables, images and
   objects: see :mod:`components.validate.stats`), validates them against a
   schema (the curated ``spec.validation.schema_file``, else the latest
   Schema of this pipeline in ML Metadata, else one inferred now), and
   compares them with the latest ExampleStatistics of this pipeline for
   drift (L-infinity on categorical features such as ``class``,
   Jensen-Shannon divergence on numeric ones);
5. writes the statistics, schema, anomalies (JSON and TFDV text protos), a
   Markdown summary, the quarantine report, the validated manifest and an
   HTML report, then records lineage once.

Dataset-level kinds (:data:`DATASET_KINDS`) have no item to remove, so a
``quarantine`` policy on them means ``warn``.

Statistics describe the *validated* data, the data later steps consume:
the schema is inferred from clean data and drift compares what was trained
on. Quarantined items are described one by one in the anomalies instead.

A failed validation records its anomalies, report and quarantine report in
ML Metadata (execution property ``failed``) but not its statistics, schema or
validated manifest, so a failed dataset version never becomes the baseline
of the next run.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from components.core.errors import SpecError, ValidationFailed
from components.core.io import atomic_write_html, atomic_write_json, atomic_write_text
from components.core.labelmap import LabelMap
from components.core.lineage import ArtifactRef, NewArtifact
from components.core.manifest import ImageRecord, Manifest
from components.core.quarantine import QuarantineReport
from components.core.spec import Policy, ValidationSpec
from components.core.step import ArtifactUris, StepContext

from . import checks, stats
from .findings import Finding, Level
from .report import ReportInputs, render_html, render_markdown

__all__ = [
    "DATASET_KINDS",
    "DEFAULT_POLICIES",
    "ITEM_KINDS",
    "KINDS",
    "Finding",
    "ValidateOutputs",
    "ValidationResult",
    "policy_for",
    "run",
]

COMPONENT = "validate"

KINDS: dict[str, str] = {
    "unreadable": "the file is missing, empty (0 bytes) or not an image",
    "decompression_bomb": "the header claims more than validation.max_pixels pixels; rejected before decoding",
    "undecodable": "the header reads but the pixels do not decode (truncated or corrupt file)",
    "color_mode": "not 8-bit RGB (CMYK, grayscale, palette, RGBA, 16-bit...): will be converted",
    "exif_orientation": "EXIF asks for a rotation: pixels will be rotated upright",
    "extension_mismatch": "the file extension does not match the content (a PNG named .jpg)",
    "box_outside_image": "a box reaches outside the image",
    "degenerate_box": "a box has zero or negative width or height",
    "nan_coordinate": "a box coordinate is NaN or infinite",
    "unknown_label": "a class id is not in the label map",
    "duplicate_across_splits": "the same bytes (sha256) appear in more than one preset split",
    "too_few_examples": "a class has fewer than validation.min_examples_per_class examples",
    "empty_dataset": "no image is left to validate",
    "schema_anomaly": "TFDV: the statistics do not match the schema",
    "drift": "TFDV: a feature's distribution moved past its threshold since the previous dataset version",
}
"""Every anomaly kind validate reports, with what it means (policy keys of ``spec.validation.policy``)."""

DATASET_KINDS: frozenset[str] = frozenset({"too_few_examples", "empty_dataset", "schema_anomaly", "drift"})
"""Kinds about the whole dataset: they can fail or warn, never quarantine (quarantine means warn)."""

ITEM_KINDS: frozenset[str] = frozenset(KINDS) - DATASET_KINDS
"""Kinds about one image or one object."""

DEFAULT_POLICIES: dict[str, Policy] = {
    "color_mode": "warn",
    "exif_orientation": "warn",
    "extension_mismatch": "warn",
    "empty_dataset": "fail",
}
"""Policies used when ``spec.validation.policy`` does not name the kind (before ``default_policy``).

Conversions that transform performs anyway only warn; an empty dataset fails
because no later step can use it.
"""


def policy_for(kind: str, validation: ValidationSpec) -> Policy:
    """The effective policy of an anomaly kind.

    Args:
        kind: the anomaly kind.
        validation: the spec's validation section.

    Returns:
        ``fail``, ``warn`` or ``quarantine`` (never ``quarantine`` for a dataset-level kind).
    """
    p: Policy = validation.policy.get(kind) or DEFAULT_POLICIES.get(kind) or validation.default_policy
    if kind in DATASET_KINDS and p == "quarantine":
        return "warn"
    return p


@dataclass(frozen=True)
class ValidateOutputs:
    """Where validate writes its outputs locally (lineage records the URIs of :class:`ArtifactUris`).

    Attributes:
        validated: directory for ``manifest.json`` (the input minus quarantined items).
        statistics: directory for ``Split-images/FeatureStats.pb`` and ``Split-objects/FeatureStats.pb``.
        schema: directory for ``schema.pbtxt``.
        anomalies: directory for ``anomalies.json``, ``summary.md`` and ``Split-<table>/anomalies.pbtxt``.
        report: the HTML report file (a KFP HTML artifact is the file itself).
        quarantine: directory for ``quarantine.json`` and ``quarantine.csv``.
    """

    validated: Path
    statistics: Path
    schema: Path
    anomalies: Path
    report: Path
    quarantine: Path

    @classmethod
    def under(cls, root: str | os.PathLike[str]) -> ValidateOutputs:
        """Outputs in sub-directories of one directory (``report/index.html`` for the report).

        Args:
            root: the directory.

        Returns:
            The outputs.
        """
        r = Path(root)
        return cls(
            validated=r / "validated",
            statistics=r / "statistics",
            schema=r / "schema",
            anomalies=r / "anomalies",
            report=r / "report" / "index.html",
            quarantine=r / "quarantine",
        )


class ValidationResult(BaseModel):
    """What validate found and wrote.

    Attributes:
        failed: a finding's policy is ``fail`` (:func:`run` raised after writing everything).
        findings: every finding.
        counts: findings per kind.
        images_in: images in the input manifest.
        images_validated: images in the validated manifest.
        objects_in: objects in the input manifest.
        objects_validated: objects in the validated manifest.
        quarantined: quarantine report entries.
        schema_version: version of the schema validated against.
        schema_source: ``inferred`` (first run), ``previous`` (latest Schema of the pipeline) or ``curated`` (schema_file).
        drift_baseline: MLMD id of the previous ExampleStatistics compared against, or None.
        validated_manifest: path of the validated manifest.
        anomalies_file: path of ``anomalies.json``.
        report_file: path of the HTML report.
        artifacts: output name -> MLMD artifact id.
    """

    failed: bool
    findings: list[Finding] = Field(default_factory=list)
    counts: dict[str, int] = Field(default_factory=dict)
    images_in: int = 0
    images_validated: int = 0
    objects_in: int = 0
    objects_validated: int = 0
    quarantined: int = 0
    schema_version: int = 1
    schema_source: Literal["inferred", "previous", "curated"] = "inferred"
    drift_baseline: int | None = None
    validated_manifest: str = ""
    anomalies_file: str = ""
    report_file: str = ""
    artifacts: dict[str, int] = Field(default_factory=dict)

    def of_kind(self, kind: str) -> list[Finding]:
        """Findings of one kind."""
        return [f for f in self.findings if f.kind == kind]


_SEVERITY: dict[str, Literal["error", "quarantined", "warning"]] = {"fail": "error", "quarantine": "quarantined", "warn": "warning"}


def _finding(kind: str, validation: ValidationSpec, level: Level, message: str, **where: Any) -> Finding:
    p = policy_for(kind, validation)
    return Finding(kind=kind, policy=p, severity=_SEVERITY[p], level=level, message=message, **where)


def _resolve(path: str | Path, default_name: str) -> Path:
    p = Path(path)
    return p / default_name if p.is_dir() else p


def _examples_per_class(manifest: Manifest, label_map: LabelMap) -> dict[str, int]:
    counts: Counter[int] = Counter()
    for r in manifest.images:
        if manifest.task == "classification":
            if r.class_id is not None:
                counts[r.class_id] += 1
        else:
            counts.update(o.class_id for o in r.objects if not o.is_crowd)
    return {name: counts.get(cid, 0) for cid, name in sorted(label_map.classes.items())}


def _check_items(
    manifest: Manifest, facts: list[checks.ImageFacts], label_map: LabelMap, validation: ValidationSpec
) -> tuple[list[Finding], set[int], dict[int, set[str]]]:
    """Item findings, the record indices to drop and, per kept record, the object ids to drop."""
    findings: list[Finding] = []
    drop_images: set[int] = set()
    drop_objects: dict[int, set[str]] = {}
    duplicates = checks.duplicate_problems(manifest.images, facts)
    for i, (rec, f) in enumerate(zip(manifest.images, facts, strict=True)):
        problems = list(f.problems) + checks.object_problems(rec, f, label_map, manifest.task)
        if i in duplicates:
            problems.append(duplicates[i])
        for p in problems:
            level: Level = "object" if p.annotation_id else "image"
            fd = _finding(p.kind, validation, level, p.message, file=f.file, image_id=rec.image_id, annotation_id=p.annotation_id)
            findings.append(fd)
            if fd.policy == "quarantine":
                if p.annotation_id:
                    drop_objects.setdefault(i, set()).add(p.annotation_id)
                else:
                    drop_images.add(i)
    return findings, drop_images, drop_objects


def _validated_manifest(manifest: Manifest, drop_images: set[int], drop_objects: dict[int, set[str]]) -> tuple[Manifest, list[int]]:
    kept: list[ImageRecord] = []
    indices: list[int] = []
    for i, rec in enumerate(manifest.images):
        if i in drop_images:
            continue
        gone = drop_objects.get(i)
        if gone:
            objs = [o for j, o in enumerate(rec.objects) if checks.object_annotation_id(rec, j) not in gone]
            rec = rec.model_copy(update={"objects": objs})
        kept.append(rec)
        indices.append(i)
    return manifest.model_copy(update={"images": kept}), indices


def _dataset_findings(manifest: Manifest, validated: Manifest, label_map: LabelMap, validation: ValidationSpec) -> list[Finding]:
    out: list[Finding] = []
    if not validated.images:
        why = "the input manifest has no images" if not manifest.images else f"all {len(manifest.images)} images were quarantined"
        out.append(_finding("empty_dataset", validation, "dataset", f"no images left to validate: {why}"))
        return out
    unit = "images" if manifest.task == "classification" else "objects"
    for name, n in _examples_per_class(validated, label_map).items():
        if n < validation.min_examples_per_class:
            msg = f"class {name!r} has {n} {unit}, fewer than the minimum of {validation.min_examples_per_class}"
            out.append(_finding("too_few_examples", validation, "dataset", msg, feature=name))
    return out


@dataclass
class _SchemaChoice:
    schema: Any
    source: Literal["inferred", "previous", "curated"]
    version: int
    baseline: ArtifactRef | None


def _choose_schema(ctx: StepContext, table_stats: dict[str, Any]) -> _SchemaChoice:
    store = ctx.store
    previous_ref = store.latest("Schema", pipeline=ctx.spec.name)
    previous = None
    if previous_ref is not None:
        try:
            previous = stats.ensure_environments(stats.load_schema(previous_ref.uri))
        except Exception as e:  # an unreachable old artifact must not stop validation
            ctx.log.warning("cannot read the previous schema %s (%s); inferring a new one", previous_ref.uri, e)
    curated_file = ctx.spec.validation.schema_file
    baseline: ArtifactRef | None
    source: Literal["inferred", "previous", "curated"]
    if curated_file:
        try:
            schema = stats.ensure_environments(stats.load_schema(curated_file))
        except Exception as e:
            raise SpecError([("validation.schema_file", f"cannot read TFDV schema {curated_file}: {e}")]) from None
        source = "curated"
        baseline = ctx.input_artifact(curated_file, "Schema", {"source": "curated"})
    elif previous is not None and previous_ref is not None:
        schema, source, baseline = previous, "previous", previous_ref
    else:
        schema, source, baseline = stats.infer_schema(table_stats), "inferred", None
    if previous_ref is None:
        version = 1
    else:
        prev_version = int(previous_ref.properties.get("version", 0) or 0)
        version = prev_version if previous is not None and previous == schema else prev_version + 1
    return _SchemaChoice(schema=schema, source=source, version=version, baseline=baseline)


def _previous_statistics(ctx: StepContext) -> tuple[ArtifactRef | None, dict[str, Any]]:
    ref = ctx.store.latest("ExampleStatistics", pipeline=ctx.spec.name)
    if ref is None:
        return None, {}
    loaded = stats.load_statistics(ref.uri)
    if not loaded:
        ctx.log.warning("previous statistics %s cannot be read; drift is not checked", ref.uri)
        return None, {}
    return ref, loaded


def run(
    ctx: StepContext,
    manifest_path: str | Path,
    label_map_path: str | Path,
    outputs: ValidateOutputs,
    uris: ArtifactUris | Mapping[str, str] | None = None,
) -> ValidationResult:
    """Validates a dataset version and writes the validated manifest and reports.

    Args:
        ctx: the step context (spec, run id, lineage store).
        manifest_path: ``manifest.json`` or the directory holding it.
        label_map_path: ``label_map.json`` or the directory holding it.
        outputs: where to write the outputs.
        uris: artifact URIs for lineage by name (the inputs ``manifest`` and ``label_map``, and each
            output of :class:`ValidateOutputs`); a missing one means the local path.

    Returns:
        The result.

    Raises:
        ValidationFailed: a finding's policy is ``fail``; every output was written first.
        SpecError: ``validation.schema_file`` cannot be read.
        AnnotationError: the label map cannot be read.
    """
    log = ctx.log
    validation = ctx.spec.validation
    manifest = Manifest.load(_resolve(manifest_path, "manifest.json"))
    label_map = LabelMap.load(_resolve(label_map_path, "label_map.json"))
    objects_in = sum(len(r.objects) for r in manifest.images)
    log.info("validating %d images, %d objects, %d classes", len(manifest.images), objects_in, label_map.num_classes)

    facts = checks.inspect_images(manifest, validation.max_pixels, logger=log)
    findings, drop_images, drop_objects = _check_items(manifest, facts, label_map, validation)
    validated, kept = _validated_manifest(manifest, drop_images, drop_objects)
    findings += _dataset_findings(manifest, validated, label_map, validation)

    frames = stats.build_frames([(rec, facts[i]) for rec, i in zip(validated.images, kept, strict=True)], label_map, manifest.task)
    table_stats = stats.generate_statistics(frames, beam=ctx.spec.runtime.beam)
    choice = _choose_schema(ctx, table_stats)
    prev_ref, prev_stats = _previous_statistics(ctx)
    effective = stats.with_drift_comparators(choice.schema, validation.drift)
    table_anomalies = {t: stats.validate_table(table_stats[t], effective, t, prev_stats.get(t)) for t in stats.TABLES}
    for t, an in table_anomalies.items():
        for tf in stats.tfdv_findings(an, t):
            findings.append(_finding(tf.kind, validation, "dataset", tf.message, table=t, feature=tf.feature))

    failed = any(f.policy == "fail" for f in findings)
    counts = dict(sorted(Counter(f.kind for f in findings).items()))
    quarantine = QuarantineReport(stage=COMPONENT, total=len(manifest.images))
    for f in findings:
        if f.policy == "quarantine":
            quarantine.add(f.file or "", f.kind, f.message, image_id=f.image_id, annotation_id=f.annotation_id)

    # -- outputs: everything is written before a failure is raised --------------------------
    validated_file = outputs.validated / "manifest.json"
    validated.save(validated_file)
    stats.write_statistics(outputs.statistics, table_stats)
    stats.write_schema(outputs.schema, choice.schema)
    quarantine.write(outputs.quarantine)
    anomalies_dir = outputs.anomalies
    for t, an in table_anomalies.items():
        atomic_write_text(anomalies_dir / f"Split-{t}" / "anomalies.pbtxt", stats.schema_text(an))
    anomalies_file = atomic_write_json(
        anomalies_dir / "anomalies.json",
        {
            "pipeline": ctx.spec.name,
            "run_id": ctx.run_id,
            "failed": failed,
            "counts": counts,
            "schema": {"version": choice.version, "source": choice.source},
            "drift_baseline": prev_ref.uri if prev_ref else None,
            "findings": [f.model_dump(mode="json") for f in findings],
            "tfdv_anomalies": {t: stats.schema_text(an) for t, an in table_anomalies.items()},
        },
    )
    objects_validated = sum(len(r.objects) for r in validated.images)
    report_inputs = ReportInputs(
        pipeline=ctx.spec.name,
        run_id=ctx.run_id,
        failed=failed,
        findings=findings,
        images_in=len(manifest.images),
        images_validated=len(validated.images),
        objects_in=objects_in,
        objects_validated=objects_validated,
        schema_version=choice.version,
        schema_source=choice.source,
        statistics=table_stats,
        previous_statistics=prev_stats,
        anomalies=table_anomalies,
        class_counts=_examples_per_class(validated, label_map),
        min_examples_per_class=validation.min_examples_per_class,
    )
    atomic_write_text(anomalies_dir / "summary.md", render_markdown(report_inputs))
    report_file = outputs.report
    atomic_write_html(report_file, render_html(report_inputs))

    # -- lineage, once ------------------------------------------------------------------------
    u = ArtifactUris.of(uris)
    pipeline = ctx.spec.name
    inputs: dict[str, ArtifactRef | None] = {
        "manifest": ctx.input_artifact(u.uri("manifest", manifest_path), "Manifest", {"images": len(manifest.images)}),
        "label_map": ctx.input_artifact(u.uri("label_map", label_map_path), "LabelMap", {"version": label_map.version}),
        "previous_statistics": prev_ref,
        "baseline_schema": choice.baseline,
    }
    out: dict[str, NewArtifact | None] = {
        "anomalies": NewArtifact(
            "ExampleAnomalies",
            u.uri("anomalies", outputs.anomalies),
            {"pipeline": pipeline, "counts": json.dumps(counts), "total": len(findings), "failed": failed},
        ),
        "report": NewArtifact("Report", u.uri("report", outputs.report), {"pipeline": pipeline, "failed": failed}),
        "quarantine": NewArtifact(
            "QuarantineReport",
            u.uri("quarantine", outputs.quarantine),
            {"stage": COMPONENT, "items": len(quarantine), "images": quarantine.rejected_images},
        ),
    }
    if not failed:
        out["statistics"] = NewArtifact(
            "ExampleStatistics",
            u.uri("statistics", outputs.statistics),
            {"pipeline": pipeline, "images": len(validated.images), "objects": objects_validated},
        )
        out["schema"] = NewArtifact(
            "Schema", u.uri("schema", outputs.schema), {"pipeline": pipeline, "version": choice.version, "source": choice.source}
        )
        out["validated"] = NewArtifact(
            "Manifest",
            u.uri("validated", outputs.validated),
            {"pipeline": pipeline, "images": len(validated.images), "objects": objects_validated},
        )
    recorded = ctx.record(
        inputs,
        out,
        properties={
            "failed": failed,
            "images_in": len(manifest.images),
            "images_validated": len(validated.images),
            "schema_version": choice.version,
            "drift_checked": prev_ref is not None,
        },
    )

    result = ValidationResult(
        failed=failed,
        findings=findings,
        counts=counts,
        images_in=len(manifest.images),
        images_validated=len(validated.images),
        objects_in=objects_in,
        objects_validated=objects_validated,
        quarantined=len(quarantine),
        schema_version=choice.version,
        schema_source=choice.source,
        drift_baseline=prev_ref.id if prev_ref else None,
        validated_manifest=str(validated_file),
        anomalies_file=str(anomalies_file),
        report_file=str(report_file),
        artifacts={k: v.id for k, v in recorded.items()},
    )
    shown = 50  # the report lists everything; the log stays readable
    for f in findings[:shown]:
        (log.error if f.policy == "fail" else log.warning if f.policy == "warn" else log.info)("%s", f.line())
    if len(findings) > shown:
        log.warning("... and %d more findings in %s", len(findings) - shown, anomalies_file)
    log.info(
        "%d findings %s; %d of %d images validated; schema v%d (%s); report %s",
        len(findings),
        counts,
        len(validated.images),
        len(manifest.images),
        choice.version,
        choice.source,
        report_file,
    )
    if failed:
        raise ValidationFailed([f.line() for f in findings if f.policy == "fail"], report=str(report_file))
    return result
