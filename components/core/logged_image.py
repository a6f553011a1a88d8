"""Checks that the file a prediction-log row points at is the image that was predicted.

The server logs where it kept the bytes it received (``image_uri``) beside
their sha256. Every step that later reads a logged image (sampling, the label
import, the retraining dataset merge) checks the file against the row: a file
changed, replaced or swapped for a link to something else since it was logged
is quarantined instead of being sent for labelling or copied into training data.
"""

from __future__ import annotations

from pathlib import Path

from .io import sha256_file

__all__ = ["logged_image_problem"]


def logged_image_problem(uri: str, sha256: str, missing_ok: bool = False) -> str | None:
    """Why the image at a logged ``image_uri`` is not the one its row describes, or None.

    Remote URIs (``gs://``, ``https://``...) are not read by cvpipe's steps and are
    not checked here.

    Args:
        uri: the row's ``image_uri`` (a path, or ``file://`` URL).
        sha256: the row's ``image_sha256``.
        missing_ok: a missing file is no problem (a later step reports it).

    Returns:
        The problem, or None when the file holds exactly the logged bytes.
    """
    if not uri:
        return None if missing_ok else "the log row has no image_uri"
    if "://" in uri and not uri.startswith("file://"):
        return None
    path = Path(uri.removeprefix("file://"))
    if not path.is_file():
        return None if missing_ok else f"{path}: the logged image is missing"
    try:
        actual = sha256_file(path)
    except OSError as e:
        return f"{path}: cannot read the logged image: {e.strerror or e}"
    if actual != sha256:
        return f"{path}: sha256 {actual[:12]}... is not the logged {sha256[:12]}...: not the image that was predicted"
    return None
