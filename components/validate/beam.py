"""TFDV statistics on Apache Beam: ``tfdv.GenerateStatistics`` over the same tables as the local path.

:func:`~components.validate.stats.generate_statistics` computes each table's
statistics in memory (``tfdv.generate_statistics_from_dataframe``). With
``runtime.beam`` in the spec it calls :func:`generate_statistics_beam`
instead, which turns each DataFrame into Arrow record batches exactly as
TFDV's in-memory path does (same dropped columns, same canonical list
arrays), feeds them to the ``tfdv.GenerateStatistics`` PTransform on the
spec's runner, reads the result back and lists the features in the tables'
column order, as the in-memory path does. The two paths give equal
statistics protos; the Beam one spreads the work over the runner's workers.

With a runner other than ``DirectRunner``, ``temp_location`` (a path the
workers and this process both see, such as ``gs://...``) must be among the
spec's Beam options: the statistics are written there and read back.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from components.core.spec import BeamSpec

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["generate_statistics_beam", "record_batches"]


def record_batches(df: pd.DataFrame, rows_per_batch: int = 1000) -> tuple[list[Any], Any | None]:
    """Arrow record batches of a DataFrame, converted as TFDV's in-memory path converts it.

    Columns of types Arrow cannot hold are dropped; boolean columns are
    declared categorical through a schema.

    Args:
        df: the table.
        rows_per_batch: rows per record batch (the unit of parallel work).

    Returns:
        ``(record batches, schema or None)``.
    """
    import pyarrow as pa
    from tensorflow_metadata.proto.v0 import schema_pb2
    from tfx_bsl.arrow import table_util

    schema = schema_pb2.Schema()
    drop = []
    for name, dtype in zip(df.columns, df.dtypes, strict=True):
        if not table_util.NumpyKindToArrowType(dtype.kind):
            drop.append(name)
        elif dtype.kind == "b":
            schema.feature.add(name=name, type=schema_pb2.INT, bool_domain=schema_pb2.BoolDomain())
    df = df.drop(columns=drop)
    batches = []
    for start in range(0, max(len(df), 1), max(1, rows_per_batch)):
        part = df.iloc[start : start + rows_per_batch]
        batches.append(table_util.CanonicalizeRecordBatch(pa.RecordBatch.from_pandas(part, preserve_index=False)))
    return batches, (schema if schema.feature else None)


def generate_statistics_beam(frames: Mapping[str, pd.DataFrame], beam: BeamSpec, rows_per_batch: int = 1000) -> dict[str, Any]:
    """Computes TFDV statistics of each table with an Apache Beam pipeline.

    Args:
        frames: table name -> DataFrame (``components.validate.stats.build_frames``).
        beam: the spec's ``runtime.beam``.
        rows_per_batch: rows per record batch.

    Returns:
        Table name -> ``DatasetFeatureStatisticsList`` with one dataset named after the table.
    """
    import apache_beam as b
    import tensorflow_data_validation as tfdv

    from components.core.beam import pipeline_options

    temp_root = beam.options.get("temp_location")
    local = not isinstance(temp_root, str) or "://" not in temp_root
    scratch = tempfile.mkdtemp(prefix="cvpipe-tfdv-") if local else f"{str(temp_root).rstrip('/')}/cvpipe-tfdv-{uuid.uuid4().hex}"
    paths: dict[str, str] = {}
    try:
        with b.Pipeline(options=pipeline_options(beam)) as p:
            for table, df in frames.items():
                batches, schema = record_batches(df, rows_per_batch)
                options = tfdv.StatsOptions(schema=schema) if schema is not None else tfdv.StatsOptions()
                paths[table] = f"{scratch}/{table}.pb"
                _ = (
                    p
                    | f"{table}: batches" >> b.Create(batches, reshuffle=False)
                    | f"{table}: statistics" >> tfdv.GenerateStatistics(options)
                    | f"{table}: write" >> tfdv.WriteStatisticsToBinaryFile(paths[table])
                )
        out: dict[str, Any] = {}
        for table, path in paths.items():
            stats = tfdv.load_stats_binary(path)
            stats.datasets[0].name = table
            _in_column_order(stats.datasets[0], list(frames[table].columns))
            out[table] = stats
        return out
    finally:
        if local:
            shutil.rmtree(scratch, ignore_errors=True)
        else:
            _remove_remote(scratch)


def _remove_remote(prefix: str) -> None:
    try:
        from apache_beam.io.filesystems import FileSystems

        FileSystems.delete([prefix])
    except Exception:  # best effort: a leftover temporary directory is harmless
        pass


def _in_column_order(dataset: Any, columns: list[str]) -> None:
    """Orders a dataset's features as the table's columns, as the in-memory path does.

    Workers of a parallel runner finish in any order, and the merged
    statistics list features in the order they were first met.
    """
    rank = {name: i for i, name in enumerate(columns)}

    def key(feature: Any) -> tuple[int, str]:
        name = ".".join(feature.path.step) if feature.HasField("path") else feature.name
        return rank.get(name, len(rank)), name

    ordered = sorted(dataset.features, key=key)
    copies = [type(f)() for f in ordered]
    for copy, f in zip(copies, ordered, strict=True):
        copy.CopyFrom(f)
    del dataset.features[:]
    dataset.features.extend(copies)
