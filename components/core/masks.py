"""COCO segmentation encodings: polygons and run-length encoding (RLE), both ways.

Implements COCO's RLE (column-major runs starting with background) and its
compressed string form (the LEB128-like encoding of pycocotools' maskApi.c),
written from the format's definition so cvpipe needs no C extension at run time.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image, ImageDraw

__all__ = ["decode_segmentation", "mask_area", "mask_to_bbox", "polygons_to_mask", "rle_decode", "rle_encode"]


def _counts_from_string(s: str) -> list[int]:
    counts: list[int] = []
    p = 0
    while p < len(s):
        x = 0
        k = 0
        more = True
        while more:
            c = ord(s[p]) - 48
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and (c & 0x10):
                x |= -1 << (5 * k)
        if len(counts) > 2:
            x += counts[-2]
        counts.append(x)
    return counts


def _counts_to_string(counts: list[int]) -> str:
    out = []
    for i, c in enumerate(counts):
        x = int(c)
        if i > 2:
            x -= int(counts[i - 2])
        more = True
        while more:
            ch = x & 0x1F
            x >>= 5
            more = (x != -1) if (ch & 0x10) else (x != 0)
            if more:
                ch |= 0x20
            out.append(chr(ch + 48))
    return "".join(out)


def rle_decode(rle: dict[str, Any]) -> np.ndarray:
    """Decodes a COCO RLE (compressed string or list of counts) to an ``HxW`` bool mask.

    Args:
        rle: ``{"size": [h, w], "counts": str | list[int]}``.

    Returns:
        The mask.

    Raises:
        ValueError: the runs do not add up to ``h * w``.
    """
    h, w = (int(v) for v in rle["size"])
    counts = rle["counts"]
    if isinstance(counts, bytes):
        counts = counts.decode("ascii")
    runs = _counts_from_string(counts) if isinstance(counts, str) else [int(c) for c in counts]
    if any(r < 0 for r in runs) or sum(runs) != h * w:
        raise ValueError(f"RLE runs add up to {sum(runs)}, expected {h * w} for size {h}x{w}")
    flat = np.zeros(h * w, dtype=bool)
    pos = 0
    val = False
    for r in runs:
        if val:
            flat[pos : pos + r] = True
        pos += r
        val = not val
    return flat.reshape((w, h)).T


def rle_encode(mask: np.ndarray, compress: bool = True) -> dict[str, Any]:
    """Encodes an ``HxW`` mask as COCO RLE.

    Args:
        mask: truthy where the object is.
        compress: emit the compressed string form (as pycocotools does).

    Returns:
        ``{"size": [h, w], "counts": ...}``.
    """
    h, w = mask.shape
    flat = np.asarray(mask, dtype=bool).T.reshape(-1)
    change = np.flatnonzero(np.diff(flat.astype(np.int8))) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    runs = np.diff(bounds).tolist()
    if flat.size and flat[0]:
        runs = [0, *runs]
    if not flat.size:
        runs = [0]
    return {"size": [int(h), int(w)], "counts": _counts_to_string(runs) if compress else [int(r) for r in runs]}


def polygons_to_mask(polygons: list[list[float]], height: int, width: int) -> np.ndarray:
    """Rasterises COCO polygons (``[[x1, y1, x2, y2, ...], ...]``) to an ``HxW`` bool mask."""
    img = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(img)
    for poly in polygons:
        pts = [(float(poly[i]), float(poly[i + 1])) for i in range(0, len(poly) - 1, 2)]
        if len(pts) >= 3:
            draw.polygon(pts, fill=1, outline=1)
    return np.asarray(img, dtype=bool)


def decode_segmentation(segmentation: list[list[float]] | dict[str, Any], height: int, width: int) -> np.ndarray:
    """Decodes either COCO segmentation form to an ``HxW`` bool mask."""
    if isinstance(segmentation, dict):
        return rle_decode(segmentation)
    return polygons_to_mask(segmentation, height, width)


def mask_area(mask: np.ndarray) -> int:
    """Number of pixels set in a mask."""
    return int(np.count_nonzero(mask))


def mask_to_bbox(mask: np.ndarray) -> list[float]:
    """Tight ``[x, y, w, h]`` box of a mask (zeros for an empty mask)."""
    ys, xs = np.nonzero(mask)
    if xs.size == 0:
        return [0.0, 0.0, 0.0, 0.0]
    x0, y0 = int(xs.min()), int(ys.min())
    return [float(x0), float(y0), float(xs.max() - x0 + 1), float(ys.max() - y0 + 1)]
