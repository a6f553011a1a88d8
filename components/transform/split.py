"""Split and balance: which split an image goes to, and how often rare-class images repeat.

The split depends only on the image's content hash and the fractions, so the
same bytes land in the same split in every run and dataset version.
Balancing is repeat-factor sampling, capped at :data:`MAX_REPEAT` copies.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence

from components.core.manifest import ImageRecord, Task
from components.core.spec import SplitSpec

__all__ = ["MAX_REPEAT", "class_copies", "hash_unit", "normalise_split", "split_for"]

MAX_REPEAT = 20
"""Largest number of copies class balancing makes of one image."""

_SPLIT_ALIASES = {
    "train": "train",
    "training": "train",
    "val": "validation",
    "valid": "validation",
    "validation": "validation",
    "dev": "validation",
    "test": "test",
    "testing": "test",
}


def normalise_split(name: str | None) -> str | None:
    """Maps a source's split name (``val``, ``training``...) to train/validation/test, or None."""
    if not name:
        return None
    return _SPLIT_ALIASES.get(name.strip().lower())


def hash_unit(hex_digest: str, offset: int = 0) -> float:
    """A number in [0, 1) from 16 hex digits of a digest.

    Args:
        hex_digest: a hex digest (anything else is hashed first).
        offset: where the 16 digits start.

    Returns:
        The number.
    """
    chunk = hex_digest[offset : offset + 16]
    try:
        return int(chunk, 16) / float(1 << (4 * len(chunk)))
    except ValueError:
        return hash_unit(hashlib.sha256(hex_digest.encode()).hexdigest(), offset)


def split_for(sha256: str, fractions: SplitSpec) -> str:
    """The split of an image with this content hash.

    Depends only on the hash and the fractions, so an image keeps its split
    across runs and dataset versions.

    Args:
        sha256: hex sha256 of the image file.
        fractions: split fractions.

    Returns:
        ``train``, ``validation`` or ``test``.
    """
    u = hash_unit(sha256.lower())
    if u < fractions.train:
        return "train"
    if u < fractions.train + fractions.validation:
        return "validation"
    return "test" if fractions.test > 0 else ("validation" if fractions.validation > 0 else "train")


def _classes_of(record: ImageRecord, task: Task) -> set[int]:
    if task == "classification":
        return {record.class_id} if record.class_id is not None else set()
    return {o.class_id for o in record.objects if not o.is_crowd}


def class_copies(records: Sequence[ImageRecord], task: Task) -> list[int]:
    """Repeat-factor sampling: copies of each record so rare classes match the most frequent one.

    Args:
        records: the training split's images.
        task: the dataset's task (classification counts image labels, others objects).

    Returns:
        The number of copies of each record (at least 1, at most :data:`MAX_REPEAT`).
    """
    freq: Counter[int] = Counter()
    for r in records:
        freq.update(_classes_of(r, task))
    if not freq:
        return [1] * len(records)
    top = max(freq.values())
    out = []
    for r in records:
        factor = max((top / freq[c] for c in _classes_of(r, task)), default=1.0)
        factor = min(factor, float(MAX_REPEAT))
        whole = int(factor)
        # the fractional part is resolved by the image's hash: deterministic, unbiased over many images
        out.append(whole + (1 if hash_unit(r.sha256.lower(), 16) < factor - whole else 0))
    return out
