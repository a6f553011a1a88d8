"""JPEG header parsing for the copy fast path: is this file an upright, complete RGB JPEG?

Only header markers are read, so deciding costs microseconds; anything not
certain to be an upright 8-bit three-component JPEG is decoded instead.
"""

from __future__ import annotations

from typing import Literal

__all__ = ["exif_orientation", "jpeg_copy_size"]


def exif_orientation(tiff: bytes) -> int | None:
    """Orientation tag of an EXIF TIFF block.

    Args:
        tiff: the TIFF block of an APP1 ``Exif`` segment (after ``Exif\\0\\0``).

    Returns:
        The orientation, None when the block has none, -1 when it cannot be read.
    """
    if len(tiff) < 8 or tiff[:2] not in (b"II", b"MM"):
        return -1
    order: Literal["little", "big"] = "little" if tiff[:2] == b"II" else "big"
    ifd = int.from_bytes(tiff[4:8], order)
    if ifd + 2 > len(tiff):
        return -1
    count = int.from_bytes(tiff[ifd : ifd + 2], order)
    for k in range(count):
        e = ifd + 2 + 12 * k
        if e + 12 > len(tiff):
            return -1
        if int.from_bytes(tiff[e : e + 2], order) == 0x0112:
            return int.from_bytes(tiff[e + 8 : e + 10], order)
    return None


def jpeg_copy_size(data: bytes) -> tuple[int, int] | None:
    """``(height, width)`` when ``data`` can go into a record unchanged, else None.

    That is a complete (ends with the EOI marker) baseline or progressive
    JPEG with three 8-bit components and no EXIF rotation. Anything else
    (gray, CMYK, truncated, rotated, lossless, not a JPEG) is decoded instead.
    Only header markers are read, so this costs microseconds.

    Args:
        data: the file's bytes.

    Returns:
        The size, or None.
    """
    n = len(data)
    if n < 4 or data[:3] != b"\xff\xd8\xff" or data[-2:] != b"\xff\xd9":
        return None
    i = 2
    size: tuple[int, int] | None = None
    while i + 4 <= n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:
            i += 2
            continue
        if marker == 0xD9:
            return None
        seglen = int.from_bytes(data[i + 2 : i + 4], "big")
        if seglen < 2 or i + 2 + seglen > n:
            return None
        seg = data[i + 4 : i + 2 + seglen]
        if marker in (0xC0, 0xC1, 0xC2):
            if len(seg) < 6 or seg[0] != 8 or seg[5] != 3:
                return None
            size = (int.from_bytes(seg[1:3], "big"), int.from_bytes(seg[3:5], "big"))
            if size[0] == 0 or size[1] == 0:
                return None
        elif 0xC3 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            return None  # lossless, hierarchical or arithmetic-coded
        elif marker == 0xE1 and seg.startswith(b"Exif\x00\x00"):
            if exif_orientation(seg[6:]) not in (None, 1):
                return None
        elif marker == 0xDA:
            return size
        i += 2 + seglen
    return None
