"""Safe image I/O: header probing with a decompression-bomb guard, decoding, RGB conversion.

Pillow reads only the header on ``Image.open``; cvpipe checks the claimed
size against a pixel limit *before* any pixel is decoded, so a file claiming
100000x100000 pixels is rejected cheaply instead of exhausting memory.
"""

from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ImageError

__all__ = ["MAX_PIXELS", "ImageInfo", "decode_rgb", "encode_jpeg", "encode_png", "needs_rgb_conversion", "probe_image"]

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
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(p) as im:
                w, h = im.size
                fmt = im.format or ""
                mode = im.mode
                orientation = None
                try:
                    orientation = im.getexif().get(0x0112)
                except Exception:  # a broken EXIF block is not a broken image
                    orientation = None
    except UnidentifiedImageError:
        raise ImageError(p, "not a recognised image format") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise ImageError(p, f"unreadable image header: {e}") from None
    if w <= 0 or h <= 0:
        raise ImageError(p, f"invalid image size {w}x{h}")
    if w * h > max_pixels:
        raise ImageError(p, f"image header claims {w}x{h} pixels, over the limit of {max_pixels} (possible decompression bomb)")
    ext = os.path.splitext(p)[1].lower()
    matches = ext in _FORMAT_EXT.get(fmt, {ext})
    return ImageInfo(width=w, height=h, mode=mode, format=fmt, exif_orientation=orientation, extension_matches=matches)


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
