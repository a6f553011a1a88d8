"""Tiny on-disk datasets for the ingest tests (real image files written with Pillow)."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from components.core.spec import DataSpec


def write_image(path: Path, width: int, height: int, seed: int = 0) -> Path:
    """Writes a small random RGB image (format from the extension)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8)).save(path)
    return path


def write_bomb_png(path: Path, width: int = 100_000, height: int = 100_000) -> Path:
    """Writes a PNG whose header claims a huge size (a decompression-bomb header) and no real pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b""))
    return path


def write_json(path: Path, doc: Any) -> Path:
    """Writes JSON (NaN and Infinity allowed, as Python writes them)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def kinds_by(report: Any, key: str = "annotation_id") -> dict[str | None, str]:
    """Quarantine items as ``{item.<key>: kind}``."""
    return {getattr(i, key): i.kind for i in report.items}


def data_spec(source: Path | str, **fields: Any) -> DataSpec:
    """A validated DataSpec (format inferred from the source unless given)."""
    return DataSpec.model_validate({"source": str(source), **{k: (str(v) if isinstance(v, Path) else v) for k, v in fields.items()}})
