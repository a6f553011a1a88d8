"""Safe image I/O: header probing with a decompression-bomb guard, decoding, RGB conversion.

Pillow reads only the header on ``Image.open``; cvpipe checks the claimed
size against a pixel limit *before* any pixel is decoded, so a file claiming
100000x100000 pixels is rejected cheaply instead of exhausting memory.
"""

from __future__ import annotations

import hashlib
import io
import os
import warnings
from dataclasses import dataclass
from typing import Literal

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ImageError
from .io import sha256_file

__all__ = [
    "MAX_PIXELS",
    "ImageInfo",
    "decode_rgb",
    "encode_jpeg",
    "encode_png",
    "needs_rgb_conversion",
    "probe_file",
    "probe_image",
]

MAX_PIXELS = 8192 * 8192
"""Default largest width x height cvpipe decodes (64 Mpx)."""

# cvpipe applies its own, clearer guard; Pillow's would raise a bare DecompressionBombError.
Image.MAX_IMAGE_PIXELS = None

_FORMAT_EXT = {
    "JPEG": {".jpg", ".jpeg", ".jpe"},
    "PNG": {".png"},
    "BMP": {".bmp"},
    "GIF": {".gif"},
    "TIFF": {".tif", ".tiff"},
    "WEBP": {".webp"},
}


@dataclass(frozen=True)
class ImageInfo:
    """What an image header says.

    Attributes:
        width: pixels.
        height: pixels.
        mode: Pillow mode (``RGB``, ``L``, ``P``, ``RGBA``, ``CMYK``, ``I;16``...).
        format: container format (``JPEG``, ``PNG``...).
        exif_orientation: EXIF orientation tag (1 = upright) or None.
        extension_matches: whether the file extension agrees with the content.
    """

    width: int
    height: int
    mode: str
    format: str
    exif_orientation: int | None
    extension_matches: bool

    @property
    def channels(self) -> int:
        """Number of channels of the stored pixels."""
        return {
            "1": 1,
            "L": 1,
            "P": 1,
            "I": 1,
            "F": 1,
            "I;16": 1,
            "I;16B": 1,
            "I;16L": 1,
            "LA": 2,
            "RGB": 3,
            "YCbCr": 3,
            "LAB": 3,
            "HSV": 3,
            "RGBA": 4,
            "CMYK": 4,
        }.get(self.mode, 3)


def probe_image(path: str | os.PathLike[str], max_pixels: int = MAX_PIXELS) -> ImageInfo:
    """Reads an image header without decoding pixels.

    Args:
        path: the image file.
        max_pixels: largest allowed width x height.

    Returns:
        The header information.

    Raises:
        ImageError: the file is missing, empty, not an image, or claims more
            than ``max_pixels`` pixels.
    """
    p = os.fspath(path)
    try:
        size = os.path.getsize(p)
    except OSError:
        raise ImageError(p, "file not found") from None
    if size == 0:
        raise ImageError(p, "file is empty (0 bytes)")
    return _pillow_header(p, p, max_pixels)


_WHOLE_FILE_BYTES = 32 << 20
"""Files up to this size are read once for both the hash and the header; larger ones are streamed."""


def probe_file(path: str | os.PathLike[str], max_pixels: int = MAX_PIXELS) -> tuple[ImageInfo, str]:
    """Reads an image file once for its header (as :func:`probe_image`) and the sha256 of its bytes.

    The bytes are read once (files over 32 MB are streamed instead). A JPEG
    whose header is well formed is parsed directly (:func:`_jpeg_header`,
    several times faster than Pillow); anything else, or a JPEG with
    anything unusual before its first scan (an XMP or ICC block, fill bytes,
    a second frame), is read by Pillow, so both give the same answers.

    Args:
        path: the image file.
        max_pixels: largest allowed width x height.

    Returns:
        ``(header information, hex sha256 of the file)``.

    Raises:
        ImageError: as :func:`probe_image`.
    """
    p = os.fspath(path)
    try:
        with open(p, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            data = f.read() if size <= _WHOLE_FILE_BYTES else None
    except FileNotFoundError:
        raise ImageError(p, "file not found") from None
    except OSError as e:
        raise ImageError(p, f"cannot read: {e.strerror or e}") from None
    if data is None:
        return probe_image(p, max_pixels), sha256_file(p)
    if not data:
        raise ImageError(p, "file is empty (0 bytes)")
    digest = hashlib.sha256(data).hexdigest()
    header = _jpeg_header(data)
    if header is None:
        return _pillow_header(p, io.BytesIO(data), max_pixels), digest
    w, h, mode, orientation = header
    return _checked(p, w, h, mode, "JPEG", orientation, max_pixels), digest


def _pillow_header(name: str, source: str | io.BytesIO, max_pixels: int) -> ImageInfo:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(source) as im:
                w, h = im.size
                fmt = im.format or ""
                mode = im.mode
                orientation = None
                try:
                    orientation = im.getexif().get(0x0112)
                except Exception:  # a broken EXIF block is not a broken image
                    orientation = None
    except UnidentifiedImageError:
        raise ImageError(name, "not a recognised image format") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise ImageError(name, f"unreadable image header: {e}") from None
    except Exception as e:  # a hostile header can make a plugin fail any way (struct.error, IndexError...): still this file's problem
        raise ImageError(name, f"unreadable image header: {type(e).__name__}: {e}") from None
    return _checked(name, w, h, mode, fmt, orientation, max_pixels)


def _checked(name: str, w: int, h: int, mode: str, fmt: str, orientation: int | None, max_pixels: int) -> ImageInfo:
    if w <= 0 or h <= 0:
        raise ImageError(name, f"invalid image size {w}x{h}")
    if w * h > max_pixels:
        raise ImageError(name, f"image header claims {w}x{h} pixels, over the limit of {max_pixels} (possible decompression bomb)")
    ext = os.path.splitext(name)[1].lower()
    matches = ext in _FORMAT_EXT.get(fmt, {ext})
    return ImageInfo(width=w, height=h, mode=mode, format=fmt, exif_orientation=orientation, extension_matches=matches)


# Start-of-frame markers (baseline, extended, progressive, lossless; Huffman and arithmetic), as Pillow reads them.
_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
_JPEG_MODES = {1: "L", 3: "RGB", 4: "CMYK"}
_UNUSUAL = object()


def _jpeg_header(data: bytes) -> tuple[int, int, str, int | None] | None:
    """``(width, height, mode, EXIF orientation)`` of a JPEG whose header is well formed, else None (Pillow reads it).

    Walks the marker segments from the start of the image to the first scan.
    The frame (SOF) gives the size and, from its number of components, the
    mode Pillow gives (1: L, 3: RGB, 4: CMYK); the first EXIF block gives the
    orientation (tag 0x0112 of its first directory). Anything Pillow treats
    specially, or that this walk does not expect, returns None: bytes between
    segments, standalone markers, a second frame, a sample precision other
    than 8 bits, an APP1 block that is not EXIF (XMP can hold the
    orientation), APP2 (ICC profiles, multi-picture files) or a malformed EXIF block.
    """
    if data[:3] != b"\xff\xd8\xff":
        return None
    n = len(data)
    pos = 2
    frame: tuple[int, int, str] | None = None
    orientation: int | None = None
    exif_seen = False
    while True:
        if pos + 4 > n or data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xDA:
            break
        if marker == 0xFF or marker == 0xD8 or marker == 0x01 or 0xD0 <= marker <= 0xD7:
            return None
        end = pos + 2 + ((data[pos + 2] << 8) | data[pos + 3])
        if end < pos + 4 or end > n:
            return None
        if marker in _SOF:
            if frame is not None or end - pos < 10 or data[pos + 4] != 8:
                return None
            mode = _JPEG_MODES.get(data[pos + 9])
            if mode is None:
                return None
            frame = ((data[pos + 7] << 8) | data[pos + 8], (data[pos + 5] << 8) | data[pos + 6], mode)
        elif marker == 0xE1:
            if exif_seen or data[pos + 4 : pos + 10] != b"Exif\x00\x00":
                return None
            exif_seen = True
            found = _exif_orientation(data[pos + 10 : end])
            if found is _UNUSUAL:
                return None
            orientation = found  # type: ignore[assignment]
        elif marker == 0xE2:
            return None
        pos = end
    if frame is None:
        return None
    return frame[0], frame[1], frame[2], orientation


def _exif_orientation(tiff: bytes) -> int | object | None:
    """The orientation tag of an EXIF block's first directory, None without one, ``_UNUSUAL`` when malformed."""
    order: Literal["little", "big"]
    if tiff[:4] == b"II*\x00":
        order = "little"
    elif tiff[:4] == b"MM\x00*":
        order = "big"
    else:
        return _UNUSUAL
    n = len(tiff)
    ifd = int.from_bytes(tiff[4:8], order)
    if ifd < 8 or ifd + 2 > n:
        return _UNUSUAL
    count = int.from_bytes(tiff[ifd : ifd + 2], order)
    if ifd + 2 + 12 * count > n:
        return _UNUSUAL
    found: int | None = None
    for k in range(count):
        at = ifd + 2 + 12 * k
        if int.from_bytes(tiff[at : at + 2], order) != 0x0112:
            continue
        kind = int.from_bytes(tiff[at + 2 : at + 4], order)
        values = int.from_bytes(tiff[at + 4 : at + 8], order)
        if found is not None or kind != 3 or values != 1:
            return _UNUSUAL
        found = int.from_bytes(tiff[at + 8 : at + 10], order)
    return found


def needs_rgb_conversion(info: ImageInfo) -> bool:
    """Whether stored pixels are not plain 8-bit RGB (or EXIF asks for a rotation)."""
    return info.mode != "RGB" or (info.exif_orientation not in (None, 1))


def _to_rgb(im: Image.Image) -> Image.Image:
    if im.mode == "RGB":
        return im
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(im, dtype=np.float64)
        hi = 65535.0 if arr.max(initial=0) > 255 else 255.0
        return Image.fromarray(np.clip(arr / hi * 255.0 + 0.5, 0, 255).astype(np.uint8), "L").convert("RGB")
    if im.mode in ("RGBA", "LA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        bg = Image.new("RGB", rgba.size, (255, 255, 255))
        bg.paste(rgba, mask=rgba.getchannel("A"))
        return bg
    return im.convert("RGB")


def decode_rgb(source: str | os.PathLike[str] | bytes, max_pixels: int = MAX_PIXELS, apply_exif: bool = True) -> np.ndarray:
    """Decodes an image fully into an ``HxWx3`` uint8 RGB array.

    Grayscale, palette, RGBA (composited on white), CMYK and 16-bit images are
    converted; EXIF orientation is applied so pixels are upright.

    Args:
        source: a path or the encoded bytes.
        max_pixels: largest allowed width x height.
        apply_exif: rotate according to the EXIF orientation tag.

    Returns:
        The pixels.

    Raises:
        ImageError: the image is truncated, corrupt or too large.
    """
    name = "<bytes>" if isinstance(source, bytes) else os.fspath(source)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fp = io.BytesIO(source) if isinstance(source, bytes) else source
            with Image.open(fp) as im:
                w, h = im.size
                if w * h > max_pixels:
                    raise ImageError(
                        name, f"image header claims {w}x{h} pixels, over the limit of {max_pixels} (possible decompression bomb)"
                    )
                im.load()  # raises on truncated data
                upright: Image.Image = ImageOps.exif_transpose(im) if apply_exif else im
                return np.asarray(_to_rgb(upright), dtype=np.uint8)
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(name, "not a recognised image format") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise ImageError(name, f"cannot decode image: {e}") from None


def encode_jpeg(pixels: np.ndarray, quality: int = 95) -> bytes:
    """Encodes an ``HxWx3`` uint8 array as JPEG bytes."""
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def encode_png(pixels: np.ndarray) -> bytes:
    """Encodes a uint8 array (``HxW`` or ``HxWxC``) as PNG bytes."""
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()
