"""Small file helpers shared by every component: atomic writes and hashing.

Writes that others read (manifests, reports, shards, registry files) go to a
temporary name in the same directory and are renamed into place, so a reader
never sees half a file and a killed writer leaves nothing that looks finished.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pydantic_core

__all__ = [
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_html",
    "atomic_write_json",
    "atomic_write_text",
    "display_name",
    "read_json",
    "sha256_bytes",
    "sha256_file",
]

_CHUNK = 1 << 20


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Returns the hex sha256 of a file's bytes.

    Args:
        path: the file.

    Returns:
        64 hex characters.
    """
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def display_name(name: str) -> str:
    """A file name as printable UTF-8 text, losslessly escaped.

    On Linux a file name is bytes; Python holds bytes that are not UTF-8 as
    surrogate escapes, which cannot be written as UTF-8. They are shown as
    ``\\xNN`` (``caf\\xe9.jpg``); a name that is valid UTF-8 is returned unchanged.

    Args:
        name: the name, as ``os.fsdecode`` gives it.

    Returns:
        The displayable name.
    """
    try:
        raw = name.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a surrogate that is not an escaped byte (a JSON "\\ud800")
        return name.encode("utf-8", "backslashreplace").decode("utf-8")
    return raw.decode("utf-8", "backslashreplace")


def sha256_bytes(data: bytes) -> str:
    """Returns the hex sha256 of some bytes.

    Args:
        data: the bytes.

    Returns:
        64 hex characters.
    """
    return hashlib.sha256(data).hexdigest()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], suffix: str = ".tmp") -> Iterator[Path]:
    """Yields a temporary path beside ``path``; renames it onto ``path`` on success.

    On an exception the temporary file is removed and ``path`` is untouched.

    Args:
        path: the final path.
        suffix: suffix of the temporary name (it starts with a dot, so globbing
            for finished files does not see it).

    Yields:
        The temporary path to write to.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=suffix, dir=final.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    # mkstemp creates 0600; a finished file gets the ordinary umask-based mode others can read
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        yield tmp
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Writes bytes to ``path`` atomically.

    Args:
        path: the final path.
        data: the content.

    Returns:
        The final path.
    """
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    return Path(path)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Writes UTF-8 text to ``path`` atomically.

    Args:
        path: the final path.
        text: the content.

    Returns:
        The final path.
    """
    return atomic_write_bytes(path, text.encode("utf-8"))


def _default(obj: Any) -> Any:
    if hasattr(obj, "model_dump"):
        return obj.model_dump(mode="json")
    if hasattr(obj, "__pydantic_fields__"):  # a pydantic dataclass (ObjectAnnotation)
        return pydantic_core.to_jsonable_python(obj)
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "item"):
        return obj.item()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def atomic_write_json(path: str | os.PathLike[str], obj: Any, indent: int | None = 2) -> Path:
    """Writes an object as JSON to ``path`` atomically (pydantic models and numpy values allowed).

    Args:
        path: the final path.
        obj: the object.
        indent: JSON indent; None for compact.

    Returns:
        The final path.
    """
    return atomic_write_text(path, json.dumps(obj, indent=indent, default=_default, sort_keys=False) + "\n")


def atomic_write_html(path: str | os.PathLike[str], text: str) -> Path:
    """Writes an HTML page at ``path`` and, when ``path`` has no ``.html`` suffix, also as ``<path>.html``.

    A KFP ``Output[HTML]`` artifact's path has no extension (``validate/report``):
    the consoles render the page at that URI, while a browser opening the run
    folder shows the source of a file without ``.html``. The copy beside it is
    the one to open.

    Args:
        path: the artifact's path.
        text: the page.

    Returns:
        The ``.html`` file.
    """
    p = Path(path)
    atomic_write_text(p, text)
    if p.suffix.lower() in (".html", ".htm"):
        return p
    return atomic_write_text(p.with_name(p.name + ".html"), text)


def read_json(path: str | os.PathLike[str]) -> Any:
    """Reads a JSON file.

    Args:
        path: the file.

    Returns:
        The parsed value.
    """
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def open_text(path: str | os.PathLike[str]) -> IO[str]:
    """Opens a text file as UTF-8, tolerating a byte-order mark."""
    return open(path, encoding="utf-8-sig")
