"""Label Studio's brush RLE: the run-length encoding of an RGBA mask image that brush regions carry."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["brush_decode", "brush_encode"]


def _bits_to_int(bits: np.ndarray, pos: int, n: int) -> tuple[int, int]:
    if pos + n > bits.size:
        raise ValueError("brush RLE ends early")
    v = 0
    for b in bits[pos : pos + n]:
        v = (v << 1) | int(b)
    return v, pos + n


def brush_decode(rle: Sequence[int], width: int, height: int) -> np.ndarray:
    """Decodes Label Studio's brush RLE (as label-studio-converter writes it) to an ``HxW`` mask.

    The stream encodes the RGBA pixels of the mask image: a 32-bit value count,
    a 5-bit word size, four 4-bit run-length sizes, then runs (a 1 bit, a 2-bit size
    index, the length, one value) or literals (a 0 bit, size index, length, values).

    Args:
        rle: the ``value.rle`` bytes.
        width: image width.
        height: image height.

    Returns:
        Bool mask, True where the alpha channel is set.

    Raises:
        ValueError: the stream is malformed or not ``width x height x 4`` values.
    """
    data = np.asarray(list(rle), dtype=np.int64)
    if data.size == 0 or data.min() < 0 or data.max() > 255:
        raise ValueError("brush RLE must be a non-empty list of bytes")
    bits = np.unpackbits(data.astype(np.uint8))
    num, pos = _bits_to_int(bits, 0, 32)
    if num != width * height * 4:
        raise ValueError(f"brush RLE holds {num} values, expected {width * height * 4} for a {width}x{height} RGBA mask")
    word, pos = _bits_to_int(bits, pos, 5)
    word += 1
    sizes = []
    for _ in range(4):
        s, pos = _bits_to_int(bits, pos, 4)
        sizes.append(s + 1)
    out = np.zeros(num, np.uint8)
    i = 0
    while i < num:
        flag, pos = _bits_to_int(bits, pos, 1)
        idx, pos = _bits_to_int(bits, pos, 2)
        length, pos = _bits_to_int(bits, pos, sizes[idx])
        j = min(num, i + 1 + length)
        if flag:
            val, pos = _bits_to_int(bits, pos, word)
            out[i:j] = val
        else:
            for k in range(i, j):
                out[k], pos = _bits_to_int(bits, pos, word)
        i = j
    return out.reshape(height, width, 4)[:, :, 3] > 0


def brush_encode(mask: np.ndarray) -> list[int]:
    """Encodes an ``HxW`` mask as Label Studio brush RLE (RGBA, 255 where set), runs only.

    Args:
        mask: truthy where the region is.

    Returns:
        The ``value.rle`` bytes, decodable by :func:`brush_decode` and Label Studio.
    """
    flat = np.repeat(np.where(np.asarray(mask, bool).reshape(-1), 255, 0).astype(np.uint8), 4)
    sizes = [3, 4, 8, 16]
    bits: list[str] = [f"{flat.size:032b}", f"{8 - 1:05b}", *(f"{s - 1:04b}" for s in sizes)]
    change = np.flatnonzero(np.diff(flat.astype(np.int16))) + 1
    starts = np.concatenate([[0], change])
    ends = np.concatenate([change, [flat.size]])
    for s, e in zip(starts.tolist(), ends.tolist(), strict=True):
        value = int(flat[s])
        remaining = e - s
        while remaining > 0:
            chunk = min(remaining, 1 << 16)
            idx = next(k for k, size in enumerate(sizes) if chunk - 1 < (1 << size))
            bits.append(f"1{idx:02b}{chunk - 1:0{sizes[idx]}b}{value:08b}")
            remaining -= chunk
    stream = "".join(bits)
    stream += "0" * (-len(stream) % 8)
    return [int(stream[i : i + 8], 2) for i in range(0, len(stream), 8)]
