"""TFDV statistics, schema and anomalies over two tables: images and objects.

An image dataset has two natural tables with different row counts: one row
per image (size, colour mode, file size, brightness...) and one row per
annotated object (class, box geometry). They are kept as two pandas
DataFrames and turned into two ``DatasetFeatureStatisticsList`` protos with
``tfdv.generate_statistics_from_dataframe`` (in memory, no Beam pipeline).

Why not one proto with two datasets or slices: TFDV 1.16 validates a list
with several datasets only when one of them is the default slice (all
examples), and the Facets view treats a second dataset as a comparison of
the *same* features. Two independent statistics protos, stored TFX style as
``Split-images/FeatureStats.pb`` and ``Split-objects/FeatureStats.pb``, keep
both tools working.

One schema covers both tables through TFDV schema *environments*: every
feature belongs to ``IMAGES`` or ``OBJECTS`` (``not_in_environment`` the
other), and each table is validated with its environment. Drift against the
previous dataset version uses the schema's drift comparators: L-infinity on
categorical (string) features, approximate Jensen-Shannon divergence on
numeric ones. The thresholds come from the spec and are applied at
validation time, not stored, so editing the spec changes them; a comparator
a curated schema already sets wins.

TensorFlow is imported only when a function here runs.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from components.core.io import atomic_write_bytes, atomic_write_text
from components.core.labelmap import LabelMap
from components.core.manifest import ImageRecord
from components.core.spec import BeamSpec, DriftThresholds

from .checks import ImageFacts

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "ENVIRONMENTS",
    "IMAGE_FEATURES",
    "OBJECT_FEATURES",
    "TABLES",
    "TfdvFinding",
    "build_frames",
    "ensure_environments",
    "generate_statistics",
    "infer_schema",
    "load_schema",
    "load_statistics",
    "schema_text",
    "tfdv_findings",
    "validate_table",
    "with_drift_comparators",
    "write_schema",
    "write_statistics",
]

IMAGES = "images"
OBJECTS = "objects"
TABLES: tuple[str, str] = (IMAGES, OBJECTS)
"""The two tables, in the order they are reported."""

ENVIRONMENTS: dict[str, str] = {IMAGES: "IMAGES", OBJECTS: "OBJECTS"}
"""The schema environment each table is validated in."""

IMAGE_FEATURES: tuple[str, ...] = (
    "width",
    "height",
    "channels",
    "mode",
    "format",
    "file_size",
    "brightness",
    "contrast",
    "object_count",
    "image_class",
)
"""Per-image features (``image_class`` only for classification)."""

OBJECT_FEATURES: tuple[str, ...] = ("class", "box_width", "box_height", "box_area", "aspect_ratio", "center_x", "center_y")
"""Per-object features; centres are normalised to 0..1 by the image size."""

STATS_FILE = "FeatureStats.pb"
SCHEMA_FILE = "schema.pbtxt"


def _num(v: float | None) -> float | None:
    return v if v is not None and math.isfinite(v) else None


def _class_name(label_map: LabelMap, class_id: int | None) -> str | None:
    if class_id is None:
        return None
    return label_map.name_of(class_id) or f"unknown:{class_id}"


def build_frames(items: Sequence[tuple[ImageRecord, ImageFacts]], label_map: LabelMap, task: str) -> dict[str, pd.DataFrame]:
    """Builds the images and objects DataFrames TFDV computes statistics over.

    Missing values (an image that could not be decoded, a box with a NaN) are
    nulls, which TFDV counts as missing rather than as numbers.

    Args:
        items: the images with what reading their files established.
        label_map: names classes (unknown ids become ``unknown:<id>``).
        task: the manifest's task; classification adds ``image_class``.

    Returns:
        Table name -> DataFrame.
    """
    import pandas as pd

    img_rows: list[dict[str, Any]] = []
    obj_rows: list[dict[str, Any]] = []
    for rec, facts in items:
        info = facts.info
        width = info.width if info else rec.width
        height = info.height if info else rec.height
        row: dict[str, Any] = {
            "width": width if width > 0 else None,
            "height": height if height > 0 else None,
            "channels": info.channels if info else None,
            "mode": info.mode if info else None,
            "format": info.format if info else None,
            "file_size": facts.file_size,
            "brightness": facts.brightness,
            "contrast": facts.contrast,
            "object_count": len(rec.objects),
        }
        if task == "classification":
            row["image_class"] = _class_name(label_map, rec.class_id)
        img_rows.append(row)
        for obj in rec.objects:
            x, y, w, h = obj.bbox
            finite = all(math.isfinite(v) for v in obj.bbox)
            obj_rows.append(
                {
                    "class": _class_name(label_map, obj.class_id),
                    "box_width": _num(w) if finite else None,
                    "box_height": _num(h) if finite else None,
                    "box_area": _num(w * h) if finite else None,
                    "aspect_ratio": _num(w / h) if finite and h > 0 else None,
                    "center_x": _num((x + w / 2) / width) if finite and width > 0 else None,
                    "center_y": _num((y + h / 2) / height) if finite and height > 0 else None,
                }
            )
    ints = ("width", "height", "channels", "file_size", "object_count")
    strings = ("mode", "format", "image_class", "class")
    image_cols = [c for c in IMAGE_FEATURES if task == "classification" or c != "image_class"]

    def frame(rows: list[dict[str, Any]], columns: Iterable[str]) -> pd.DataFrame:
        data: dict[str, Any] = {}
        for c in columns:
            values = [r.get(c) for r in rows]
            if c in ints:
                data[c] = pd.array(values, dtype="Int64")  # nullable: a missing width stays INT, not FLOAT
            elif c in strings:
                data[c] = pd.Series(values, dtype=object)
            else:
                data[c] = pd.Series([float("nan") if v is None else float(v) for v in values], dtype="float64")
        return pd.DataFrame(data)

    return {IMAGES: frame(img_rows, image_cols), OBJECTS: frame(obj_rows, OBJECT_FEATURES)}


def generate_statistics(frames: Mapping[str, pd.DataFrame], beam: BeamSpec | None = None) -> dict[str, Any]:
    """Computes TFDV statistics of each table (in memory, one process; or on Apache Beam).

    Args:
        frames: table name -> DataFrame.
        beam: the spec's ``runtime.beam``: compute with ``tfdv.GenerateStatistics``
            on that runner (:mod:`components.validate.beam`; equal results).

    Returns:
        Table name -> ``DatasetFeatureStatisticsList`` with one dataset named after the table.
    """
    if beam is not None:
        from .beam import generate_statistics_beam

        return generate_statistics_beam(frames, beam)
    import tensorflow_data_validation as tfdv

    out: dict[str, Any] = {}
    for table, df in frames.items():
        stats = tfdv.generate_statistics_from_dataframe(df, n_jobs=1)
        stats.datasets[0].name = table
        out[table] = stats
    return out


def ensure_environments(schema: Any) -> Any:
    """Makes a schema validate each table in its own environment (in place).

    A curated schema written without environments gets them: known image
    features are kept out of ``OBJECTS`` and object features out of
    ``IMAGES``. Features with an environment already are left alone.

    Args:
        schema: a ``tensorflow_metadata`` Schema.

    Returns:
        The same schema.
    """
    for env in ENVIRONMENTS.values():
        if env not in schema.default_environment:
            schema.default_environment.append(env)
    for f in schema.feature:
        if f.in_environment or f.not_in_environment:
            continue
        if f.name in OBJECT_FEATURES:
            f.not_in_environment.append(ENVIRONMENTS[IMAGES])
        elif f.name in IMAGE_FEATURES:
            f.not_in_environment.append(ENVIRONMENTS[OBJECTS])
    return schema


def infer_schema(stats: Mapping[str, Any]) -> Any:
    """Infers one schema for both tables (``tfdv.infer_schema`` per table, merged).

    Args:
        stats: table name -> statistics.

    Returns:
        The Schema, with environments.
    """
    import tensorflow_data_validation as tfdv
    from tensorflow_metadata.proto.v0 import schema_pb2

    merged = schema_pb2.Schema()
    for table in TABLES:
        if table not in stats:
            continue
        part = tfdv.infer_schema(stats[table])
        for f in part.feature:
            f.not_in_environment.append(ENVIRONMENTS[OBJECTS if table == IMAGES else IMAGES])
        merged.feature.extend(part.feature)
        merged.string_domain.extend(part.string_domain)
    return ensure_environments(merged)


def _is_categorical(feature: Any) -> bool:
    from tensorflow_metadata.proto.v0 import schema_pb2

    if feature.type == schema_pb2.BYTES:
        return True
    return feature.type == schema_pb2.INT and feature.HasField("int_domain") and feature.int_domain.is_categorical


def with_drift_comparators(schema: Any, drift: DriftThresholds) -> Any:
    """A copy of the schema with drift comparators from the spec where it has none.

    Args:
        schema: the schema validated against.
        drift: the spec's thresholds.

    Returns:
        The copy.
    """
    from tensorflow_metadata.proto.v0 import schema_pb2

    out = schema_pb2.Schema()
    out.CopyFrom(schema)
    for f in out.feature:
        if f.HasField("drift_comparator"):
            continue
        if _is_categorical(f):
            f.drift_comparator.infinity_norm.threshold = drift.categorical_linf
        elif f.type in (schema_pb2.INT, schema_pb2.FLOAT):
            f.drift_comparator.jensen_shannon_divergence.threshold = drift.numeric_jensen_shannon
    return out


def validate_table(stats: Any, schema: Any, table: str, previous: Any | None) -> Any:
    """Validates one table's statistics against the schema and, when given, the previous statistics.

    Args:
        stats: the table's statistics.
        schema: the schema (with drift comparators).
        table: the table name (picks the environment).
        previous: the previous dataset version's statistics of the same table, or None.

    Returns:
        The ``Anomalies`` proto.
    """
    import tensorflow_data_validation as tfdv

    usable_previous = previous if previous is not None and previous.datasets and previous.datasets[0].num_examples > 0 else None
    return tfdv.validate_statistics(stats, schema, environment=ENVIRONMENTS[table], previous_statistics=usable_previous)


@dataclass(frozen=True)
class TfdvFinding:
    """One anomaly TFDV reported, split into schema and drift parts.

    Attributes:
        kind: ``schema_anomaly`` or ``drift``.
        table: ``images`` or ``objects``.
        feature: the feature, or None for a dataset-level anomaly.
        message: TFDV's descriptions, joined.
        reasons: TFDV's reason type names.
    """

    kind: str
    table: str
    feature: str | None
    message: str
    reasons: tuple[str, ...]


def tfdv_findings(anomalies: Any, table: str) -> list[TfdvFinding]:
    """Turns an Anomalies proto into findings: comparator reasons are drift, the rest schema anomalies.

    Args:
        anomalies: the proto.
        table: which table it is about.

    Returns:
        The findings.
    """
    from tensorflow_metadata.proto.v0 import anomalies_pb2

    type_name = anomalies_pb2.AnomalyInfo.Type.Name
    out: list[TfdvFinding] = []

    def split(feature: str | None, info: Any) -> None:
        groups: dict[str, list[Any]] = {"schema_anomaly": [], "drift": []}
        for r in info.reason:
            groups["drift" if type_name(r.type).startswith("COMPARATOR_") else "schema_anomaly"].append(r)
        if not info.reason:
            groups["schema_anomaly"].append(info)
        for kind, reasons in groups.items():
            if reasons:
                msg = " ".join((r.description or r.short_description).strip() for r in reasons)
                names = tuple(type_name(r.type) for r in reasons if hasattr(r, "type"))
                out.append(TfdvFinding(kind=kind, table=table, feature=feature, message=msg, reasons=names))

    for name in sorted(anomalies.anomaly_info):
        split(name, anomalies.anomaly_info[name])
    if anomalies.HasField("dataset_anomaly_info"):
        split(None, anomalies.dataset_anomaly_info)
    if anomalies.data_missing:
        out.append(TfdvFinding("schema_anomaly", table, None, f"no {table} to validate (data missing)", ("DATA_MISSING",)))
    return out


def write_statistics(directory: str | Path, stats: Mapping[str, Any]) -> dict[str, Path]:
    """Writes each table's statistics as a binary proto, TFX style (``Split-<table>/FeatureStats.pb``).

    Args:
        directory: the statistics artifact's directory.
        stats: table name -> statistics.

    Returns:
        Table name -> file written.
    """
    return {t: atomic_write_bytes(Path(directory) / f"Split-{t}" / STATS_FILE, s.SerializeToString()) for t, s in stats.items()}


def load_statistics(uri: str) -> dict[str, Any]:
    """Reads statistics written by :func:`write_statistics` (local path or any ``tf.io.gfile`` URI).

    Args:
        uri: the statistics artifact's directory.

    Returns:
        Table name -> statistics, for the tables found.
    """
    import tensorflow_data_validation as tfdv

    out: dict[str, Any] = {}
    for t in TABLES:
        try:
            out[t] = tfdv.load_stats_binary(f"{uri.rstrip('/')}/Split-{t}/{STATS_FILE}")
        except Exception:  # tf.errors.NotFoundError and friends: that table was not written
            continue
    return out


def schema_text(schema: Any) -> str:
    """The schema as text proto."""
    from google.protobuf import text_format

    return str(text_format.MessageToString(schema))


def write_schema(directory: str | Path, schema: Any) -> Path:
    """Writes ``schema.pbtxt`` (TFX SchemaGen's file name) atomically.

    Args:
        directory: the schema artifact's directory.
        schema: the schema.

    Returns:
        The file written.
    """
    return atomic_write_text(Path(directory) / SCHEMA_FILE, schema_text(schema))


def load_schema(uri: str) -> Any:
    """Reads a text-proto schema: a ``.pbtxt`` file or a directory holding ``schema.pbtxt``.

    Args:
        uri: local path or ``tf.io.gfile`` URI.

    Returns:
        The schema.

    Raises:
        Exception: whatever TFDV raises when the file is missing or not a schema.
    """
    import tensorflow_data_validation as tfdv

    if uri.endswith((".pbtxt", ".txt", ".textproto", ".prototxt")):
        return tfdv.load_schema_text(uri)
    return tfdv.load_schema_text(f"{uri.rstrip('/')}/{SCHEMA_FILE}")
