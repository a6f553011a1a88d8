"""probe_file: one read of an image for its header and hash, the same answers as Pillow on every kind of file."""

from __future__ import annotations

import hashlib
import io
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from components.core.errors import ImageError
from components.core.images import _jpeg_header, probe_file, probe_image

RNG = np.random.default_rng(7)


def _pixels(w: int, h: int, channels: int) -> np.ndarray:
    shape = (h, w) if channels == 1 else (h, w, channels)
    return RNG.integers(0, 255, shape, dtype=np.uint8)


def _exif(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "cvpipe camera"  # a second tag before and after: the walk must find the right entry
    exif[0x0131] = "cvpipe"
    return exif.tobytes()


def _big_endian_exif(orientation: int, kind: int = 3, count: int = 1) -> bytes:
    """An EXIF block in Motorola byte order (Pillow writes Intel order), tag type and count as given."""
    entry = struct.pack(">HHI", 0x0112, kind, count) + (struct.pack(">HH", orientation, 0) if kind == 3 else struct.pack(">I", orientation))
    return b"Exif\x00\x00MM\x00*" + struct.pack(">I", 8) + struct.pack(">H", 1) + entry + struct.pack(">I", 0)


def _with_app1(jpeg: bytes, payload: bytes) -> bytes:
    """The JPEG with an APP1 segment holding ``payload`` right after its start marker."""
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload + jpeg[2:]


def _jpeg(w: int = 40, h: int = 24, channels: int = 3, **save: object) -> bytes:
    mode = {1: "L", 3: "RGB", 4: "CMYK"}[channels]
    buf = io.BytesIO()
    Image.fromarray(_pixels(w, h, 4 if channels == 4 else channels), "CMYK" if channels == 4 else None).convert(mode).save(
        buf, format="JPEG", **save
    )
    return buf.getvalue()


def _encoded(image: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt)
    return buf.getvalue()


def _png(mode: str) -> bytes:
    return _encoded(Image.fromarray(_pixels(20, 10, 3)).convert(mode), "PNG")


FAST = {
    "rgb.jpg": _jpeg(),
    "gray.jpg": _jpeg(channels=1),
    "cmyk.jpg": _jpeg(channels=4),
    "progressive.jpg": _jpeg(progressive=True),
    "optimized.jpg": _jpeg(optimize=True, quality=60),
    "subsampled.jpeg": _jpeg(51, 33, subsampling=2),
    "big-endian-exif.jpg": _with_app1(_jpeg(30, 50), _big_endian_exif(6)),
    "exif-without-orientation.jpg": _with_app1(_jpeg(), Image.Exif().tobytes()),  # Pillow writes the "Exif" prefix
    "named-wrong.png": _jpeg(),
    **{f"orientation-{k}.jpg": _jpeg(30, 50, exif=_exif(k)) for k in range(1, 9)},
}

SLOW = {
    "icc.jpg": _jpeg(icc_profile=b"\x00" * 200),
    "xmp.jpg": _with_app1(_jpeg(), b"http://ns.adobe.com/xap/1.0/\x00<x:xmpmeta><tiff:Orientation>6</tiff:Orientation></x:xmpmeta>"),
    "long-orientation.jpg": _with_app1(_jpeg(30, 50), _big_endian_exif(3, kind=4)),
    "broken-exif.jpg": _with_app1(_jpeg(), b"Exif\x00\x00MM\x00*\x00\x00\xff\xff"),
    "junk-between-segments.jpg": _jpeg()[:2] + b"\x00\x00" + _jpeg()[2:],
    "truncated-header.jpg": _jpeg()[:120],
    "rgb.png": _png("RGB"),
    "rgba.png": _png("RGBA"),
    "palette.png": _png("P"),
    "gray.bmp": _encoded(Image.fromarray(_pixels(9, 7, 1)), "BMP"),
    "text.jpg": b"this is not an image",
}


@pytest.mark.parametrize("name", sorted(FAST) + sorted(SLOW))
def test_probe_file_answers_as_pillow_and_hashes_the_bytes(tmp_path: Path, name: str) -> None:
    data = FAST.get(name, SLOW.get(name))
    assert data is not None
    path = tmp_path / name
    path.write_bytes(data)
    assert (_jpeg_header(data) is not None) == (name in FAST)  # each case takes the path it is meant to test
    try:
        expected = probe_image(path)
    except ImageError as e:
        with pytest.raises(ImageError) as got:
            probe_file(path)
        assert got.value.path == e.path and got.value.problem.split(":")[0] == e.problem.split(":")[0]
        return
    assert probe_file(path) == (expected, hashlib.sha256(data).hexdigest())


def test_orientation_and_size_come_from_the_header(tmp_path: Path) -> None:
    (tmp_path / "o.jpg").write_bytes(_jpeg(30, 50, exif=_exif(6)))
    info, _ = probe_file(tmp_path / "o.jpg")
    assert (info.width, info.height, info.mode, info.format, info.exif_orientation) == (30, 50, "RGB", "JPEG", 6)


def test_empty_missing_and_bomb_files_are_refused(tmp_path: Path) -> None:
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(ImageError, match="empty"):
        probe_file(tmp_path / "empty.jpg")
    with pytest.raises(ImageError, match="not found"):
        probe_file(tmp_path / "missing.jpg")
    (tmp_path / "big.jpg").write_bytes(_jpeg(64, 64))
    with pytest.raises(ImageError, match="decompression bomb"):
        probe_file(tmp_path / "big.jpg", max_pixels=64 * 63)


def test_large_files_are_streamed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import components.core.images as images

    data = _jpeg(64, 48, exif=_exif(3))
    (tmp_path / "a.jpg").write_bytes(data)
    monkeypatch.setattr(images, "_WHOLE_FILE_BYTES", 100)
    assert probe_file(tmp_path / "a.jpg") == (probe_image(tmp_path / "a.jpg"), hashlib.sha256(data).hexdigest())
