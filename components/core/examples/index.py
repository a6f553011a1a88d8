"""The examples index, ``examples_dir/examples.json``: each split's shards, the task, the label map, counts."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from ..errors import DataError
from ..io import atomic_write_json, read_json
from ..labelmap import LabelMap
from ..manifest import Task
from .features import EXAMPLES_INDEX

__all__ = ["ExamplesIndex", "ShardInfo", "SplitInfo", "load_index", "shard_paths"]


class ShardInfo(BaseModel):
    """One finished TFRecord shard.

    Attributes:
        file: file name, relative to the examples directory.
        records: number of records in it.
        sha256: hex sha256 of the file's bytes (compressed bytes when GZIP).
        bytes: file size.
    """

    file: str
    records: int
    sha256: str
    bytes: int = 0


class SplitInfo(BaseModel):
    """One split of an examples directory.

    Attributes:
        records: records written (oversampled duplicates included).
        images: distinct images written.
        class_counts: class name -> examples in the written records (objects for
            detection/segmentation, images for classification).
        shards: the shard files, in order.
    """

    records: int = 0
    images: int = 0
    class_counts: dict[str, int] = Field(default_factory=dict)
    shards: list[ShardInfo] = Field(default_factory=list)


class ExamplesIndex(BaseModel):
    """``examples.json``: what an examples directory holds.

    Attributes:
        format_version: version of this contract.
        task: classification, detection or segmentation.
        gzip: whether shards are GZIP-compressed.
        label_map: the label map the ids refer to (its ``version`` included).
        image_size: ``[height, width]`` every image was resized to, or None (original sizes).
        splits: split name -> its shards and counts.
        quarantined: images transform rejected (see its quarantine report).
        extra: anything else worth keeping (options, timings).
    """

    format_version: int = 1
    task: Task
    gzip: bool = False
    label_map: LabelMap
    image_size: tuple[int, int] | None = None
    splits: dict[str, SplitInfo] = Field(default_factory=dict)
    quarantined: int = 0
    extra: dict[str, Any] = Field(default_factory=dict)

    @property
    def counts(self) -> dict[str, int]:
        """Records per split."""
        return {name: s.records for name, s in self.splits.items()}

    def save(self, examples_dir: str | os.PathLike[str]) -> Path:
        """Writes ``examples.json`` atomically into ``examples_dir``.

        Args:
            examples_dir: the examples directory.

        Returns:
            The index file's path.
        """
        return atomic_write_json(Path(examples_dir) / EXAMPLES_INDEX, self.model_dump(mode="json"))


def load_index(examples_dir: str | os.PathLike[str]) -> ExamplesIndex:
    """Reads ``examples.json`` from an examples directory.

    Args:
        examples_dir: the directory transform wrote.

    Returns:
        The index.

    Raises:
        DataError: the directory has no (valid) index, i.e. transform did not finish there.
    """
    p = Path(examples_dir) / EXAMPLES_INDEX
    try:
        return ExamplesIndex.model_validate(read_json(p))
    except FileNotFoundError:
        raise DataError(f"{p}: no examples index; transform did not finish writing this directory") from None
    except ValueError as e:
        raise DataError(f"{p}: malformed examples index: {e}") from None


def shard_paths(examples_dir: str | os.PathLike[str], split: str) -> list[Path]:
    """Absolute paths of one split's shards, in order.

    Args:
        examples_dir: the directory transform wrote.
        split: ``train``, ``validation`` or ``test``.

    Returns:
        The shard files (empty when the split has no records).

    Raises:
        DataError: no index, or no such split.
    """
    index = load_index(examples_dir)
    if split not in index.splits:
        have = ", ".join(index.splits) or "none"
        raise DataError(f"{examples_dir}: no split {split!r} in {EXAMPLES_INDEX} (splits: {have})")
    return [Path(examples_dir) / s.file for s in index.splits[split].shards]
