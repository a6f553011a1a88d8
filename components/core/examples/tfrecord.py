"""TFRecord framing (length, masked CRC32C) without TensorFlow: :class:`TFRecordWriter` and :func:`iter_records`."""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from ..errors import DataError

__all__ = ["TFRecordWriter", "iter_records"]


def _crc32c_table() -> list[int]:
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_TABLE: list[int] | None = None


def _crc32c_python(data: bytes) -> int:
    global _TABLE
    if _TABLE is None:
        _TABLE = _crc32c_table()
    t = _TABLE
    crc = 0xFFFFFFFF
    for b in data:
        crc = t[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


try:  # the C implementation (a locked transitive dependency); pure Python otherwise
    import google_crc32c as _gcrc

    if getattr(_gcrc, "implementation", "c") != "c":
        raise ImportError("google_crc32c without its C extension")

    def _crc32c(data: bytes) -> int:
        return int(_gcrc.value(data))

except ImportError:  # pragma: no cover - depends on the environment
    _crc32c = _crc32c_python


def _masked_crc(data: bytes) -> int:
    crc = _crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


class _HashingFile:
    """A write-only file that hashes (sha256) and counts what passes through."""

    def __init__(self, raw: IO[bytes]):
        self.raw = raw
        self.hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.raw.write(data)
        self.hash.update(data)
        self.size += len(data)
        return len(data)

    def flush(self) -> None:
        self.raw.flush()


class TFRecordWriter:
    """Writes TFRecord files (optionally GZIP) without TensorFlow.

    Each record is framed as TensorFlow does: length (uint64 LE), masked
    CRC32C of the length, data, masked CRC32C of the data. The file's sha256
    and size are computed while writing (:attr:`sha256`, :attr:`bytes`).

    Args:
        path: the file to write (callers write to a temporary name and rename).
        gzip_compress: write a GZIP stream (``compression_type="GZIP"`` when reading).
        fsync: flush to disk on close. Off by default, as ``tf.io.TFRecordWriter``: a
            killed process loses nothing the kernel already has, and the
            temporary-name-then-rename protocol guards readers.
    """

    def __init__(self, path: str | os.PathLike[str], gzip_compress: bool = False, fsync: bool = False):
        self.path = Path(path)
        self._raw: IO[bytes] = open(path, "wb")  # noqa: SIM115 - closed in close()
        self._file = _HashingFile(self._raw)
        self._gz = gzip.GzipFile(fileobj=self._file, mode="wb", compresslevel=6, mtime=0) if gzip_compress else None  # type: ignore[arg-type]
        self._out: Any = self._gz if self._gz is not None else self._file
        self.records = 0
        self._fsync = fsync
        self._closed = False

    def write(self, record: bytes) -> None:
        """Appends one record.

        Args:
            record: the serialised record.
        """
        header = struct.pack("<Q", len(record))
        out = self._out
        out.write(header + struct.pack("<I", _masked_crc(header)))
        out.write(record)
        out.write(struct.pack("<I", _masked_crc(record)))
        self.records += 1

    @property
    def sha256(self) -> str:
        """Hex sha256 of the bytes written to the file so far (complete after :meth:`close`)."""
        return self._file.hash.hexdigest()

    @property
    def bytes(self) -> int:
        """Bytes written to the file so far (complete after :meth:`close`)."""
        return self._file.size

    def close(self) -> None:
        """Flushes and closes the file (and fsyncs it when asked to)."""
        if self._closed:
            return
        self._closed = True
        if self._gz is not None:
            self._gz.close()
        self._raw.flush()
        if self._fsync:
            os.fsync(self._raw.fileno())
        self._raw.close()

    def __enter__(self) -> TFRecordWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def iter_records(path: str | os.PathLike[str], gzip_compressed: bool | None = None, verify: bool = True) -> Iterator[bytes]:
    """Reads the records of a TFRecord file without TensorFlow.

    Args:
        path: the file.
        gzip_compressed: whether it is GZIP; None guesses from the ``.gz`` suffix.
        verify: check both CRCs of every record.

    Yields:
        Each record's bytes.

    Raises:
        DataError: the file is truncated or a CRC does not match.
    """
    p = os.fspath(path)
    compressed = p.endswith(".gz") if gzip_compressed is None else gzip_compressed
    with gzip.open(p, "rb") if compressed else open(p, "rb") as f:
        n = 0
        while True:
            header = f.read(12)
            if not header:
                return
            if len(header) < 12:
                raise DataError(f"{p}: truncated record header after {n} records")
            (length,) = struct.unpack("<Q", header[:8])
            if verify and struct.unpack("<I", header[8:])[0] != _masked_crc(header[:8]):
                raise DataError(f"{p}: length CRC mismatch in record {n}")
            data = f.read(length)
            footer = f.read(4)
            if len(data) < length or len(footer) < 4:
                raise DataError(f"{p}: truncated record {n}")
            if verify and struct.unpack("<I", footer)[0] != _masked_crc(data):
                raise DataError(f"{p}: data CRC mismatch in record {n}")
            n += 1
            yield data
