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

With a runner whose workers do not share this machine's disk (Dataflow,
Flink on a cluster), ``temp_location`` (a path the workers and this process
both see, such as ``gs://...``) must be among the spec's Beam options: the
statistics are written there and read back. The merged statistics are
written by a plain ``Map`` rather than ``tfdv.WriteStatisticsToBinaryFile``:
Beam's file sinks finalise through side inputs that the Dask runner
(``apache_beam.runners.dask.dask_runner.DaskRunner``, Beam 2.72) computes
wrongly (``ValueError: too many values to unpack`` in the sink's
``pre_finalize``).

``tfdv.GenerateStatistics`` itself cannot run on that Dask runner: it
combines with ``beam.CombinePerKey(...).with_hot_key_fanout(...)``, whose
first ParDo emits hot keys on a tagged output (``TaggedOutput("hot")``), and
the Dask runner's ParDo puts every tagged output into the main one, so the
hot-key elements reach the cold path and fail to unpack (``ValueError: too many values to
unpack`` or ``TypeError: cannot unpack non-iterable``). With the Dask runner
named in the spec, the statistics are computed on the DirectRunner in this
process (a warning says so) and transform's writing still runs on Dask.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from components.core.io import atomic_write_bytes
from components.core.log import get_logger
from components.core.spec import BeamSpec

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["DASK_RUNNER", "generate_statistics_beam", "record_batches"]

DASK_RUNNER = "apache_beam.runners.dask.dask_runner.DaskRunner"
"""Beam's Dask runner, by the class path the spec names it with."""


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

    from components.core.beam import beam_pipeline

    if beam.runner == DASK_RUNNER:
        get_logger("validate").warning(
            "TFDV statistics cannot run on Beam's Dask runner: tfdv.GenerateStatistics combines with "
            "CombinePerKey(...).with_hot_key_fanout(), a ParDo with a tagged output, and the Dask runner (Beam %s) sends "
            "every tagged output to the main one; computing them on the DirectRunner in this process instead "
            "(transform still writes on Dask)",
            b.__version__,
        )
        beam = BeamSpec(runner="DirectRunner")
    temp_root = beam.options.get("temp_location")
    local = not isinstance(temp_root, str) or "://" not in temp_root
    scratch = tempfile.mkdtemp(prefix="cvpipe-tfdv-") if local else f"{str(temp_root).rstrip('/')}/cvpipe-tfdv-{uuid.uuid4().hex}"
    paths: dict[str, str] = {}
    try:
        with beam_pipeline(beam) as p:
            for table, df in frames.items():
                batches, schema = record_batches(df, rows_per_batch)
                options = tfdv.StatsOptions(schema=schema) if schema is not None else tfdv.StatsOptions()
                paths[table] = f"{scratch}/{table}.pb"
                _ = (
                    p
                    | f"{table}: batches" >> b.Create(batches, reshuffle=False)
                    | f"{table}: statistics" >> tfdv.GenerateStatistics(options)
                    | f"{table}: write" >> b.Map(_write_statistics, paths[table])
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


def _write_statistics(stats: Any, path: str) -> None:
    """Writes the one merged statistics proto of a table (in place of Beam's file sink, see the module docstring)."""
    data = stats.SerializeToString()
    if "://" in path:
        from apache_beam.io.filesystems import FileSystems

        with FileSystems.create(path) as f:
            f.write(data)
    else:
        atomic_write_bytes(path, data)


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
