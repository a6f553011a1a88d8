"""Slices: which images each slice of the test split holds.

Every metric is reported overall and per slice. The slice features:

- ``class``: per class (the task's per-class metrics; no image subsetting);
- ``image_size``: small / medium / large by image area (width x height,
  inclusive upper bounds: :data:`IMAGE_SIZE_BUCKETS`);
- user features from ``evaluate.slices`` in the spec: ``split`` (the manifest
  record's split) or a key of the manifest record's ``source`` dict, written
  ``source.KEY`` or just ``KEY``. Images without the feature are in no slice
  of it (as TFMA does with missing features).

A slice is named ``feature=value``; a threshold can name a sliced metric as
``metric@feature=value`` (``map_50@image_size=small``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["IMAGE_SIZE_BUCKETS", "ImageMeta", "image_size_bucket", "slice_images", "slice_value"]

IMAGE_SIZE_BUCKETS: tuple[tuple[str, int], ...] = (("small", 256 * 256), ("medium", 768 * 768), ("large", 2**62))
"""``(name, largest area in pixels)`` of the image-size buckets, ascending."""


@dataclass(frozen=True)
class ImageMeta:
    """What slicing knows about one test image.

    Attributes:
        image_id: the image's id (``source_id`` of the examples).
        width: pixels.
        height: pixels.
        split: the manifest record's split, if any.
        source: the manifest record's ``source`` extras.
    """

    image_id: str
    width: int
    height: int
    split: str | None = None
    source: dict[str, Any] = field(default_factory=dict)


def image_size_bucket(width: int, height: int, buckets: Sequence[tuple[str, int]] = IMAGE_SIZE_BUCKETS) -> str:
    """The size bucket of an image.

    Args:
        width: pixels.
        height: pixels.
        buckets: ``(name, largest area)`` pairs, ascending.

    Returns:
        The bucket name.
    """
    area = int(width) * int(height)
    for name, top in buckets:
        if area <= top:
            return name
    return buckets[-1][0]


def slice_value(meta: ImageMeta, feature: str) -> str | None:
    """The value of a slice feature for one image, or None when it has none.

    Args:
        meta: the image.
        feature: ``image_size``, ``split``, ``source.KEY`` or ``KEY`` (of ``source``).

    Returns:
        The value as a string, or None.
    """
    if feature == "image_size":
        return image_size_bucket(meta.width, meta.height)
    if feature == "split":
        return meta.split
    key = feature.removeprefix("source.")
    v = meta.source.get(key)
    return None if v is None else str(v)


def slice_images(metas: Sequence[ImageMeta], features: Sequence[str]) -> dict[tuple[str, str], list[int]]:
    """Groups images by slice.

    Args:
        metas: the test images.
        features: slice features (``class`` is skipped: it needs no image subset).

    Returns:
        ``(feature, value)`` -> indices into ``metas``, in a stable order
        (features as given, values sorted).
    """
    out: dict[tuple[str, str], list[int]] = {}
    for feature in dict.fromkeys(features):
        if feature == "class":
            continue
        groups: dict[str, list[int]] = {}
        for i, m in enumerate(metas):
            v = slice_value(m, feature)
            if v is not None:
                groups.setdefault(v, []).append(i)
        for v in sorted(groups):
            out[(feature, v)] = groups[v]
    return out
