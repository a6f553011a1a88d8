"""Reading Parquet files safely on the pinned pyarrow.

TFDV and tfx-bsl 1.16 pin ``pyarrow==10.0.1``, which is affected by
CVE-2023-47248: a Parquet or Arrow IPC file may declare a column of the
extension type ``arrow.py_extension_type``, whose type is a pickle that
pyarrow unpickles while reading the schema, so a crafted file runs code in
the reading process. The fix (pyarrow 14.0.1) cannot be installed beside
TFDV; ``pyarrow_hotfix`` (Arrow's own mitigation) replaces that extension
type with one that refuses to be read.

Importing this module installs the hotfix. Every cvpipe module that reads
Parquet (itself or through pandas, Feast or Dask) imports this module before
its first read, so every process cvpipe starts is protected whichever
entry point it came in by (a test checks that no reader is missed). Files
cvpipe writes never use the extension type, so nothing legitimate is refused.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow_hotfix  # noqa: F401 - installs on import (idempotent)

from .errors import DataError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["FORBIDDEN_EXTENSION_TYPE", "hotfix_installed", "read_frame"]

FORBIDDEN_EXTENSION_TYPE = "arrow.py_extension_type"
"""The extension type whose deserialisation unpickles data from the file."""


def hotfix_installed() -> bool:
    """Whether pyarrow refuses ``arrow.py_extension_type`` in this process.

    Returns:
        True once the hotfix is installed (always, after importing this module).
    """
    import pyarrow as pa

    return bool(getattr(pa, "_hotfix_installed", False))


def _refused(error: BaseException) -> bool:
    return FORBIDDEN_EXTENSION_TYPE in str(error) and "Disallowed deserialization" in str(error)


def read_frame(path: str | os.PathLike[str], **kwargs: Any) -> pd.DataFrame:
    """``pandas.read_parquet`` with a refused extension type reported as bad input.

    Args:
        path: the Parquet file (or directory of part files).
        **kwargs: passed to ``pandas.read_parquet``.

    Returns:
        The rows.

    Raises:
        DataError: the file declares a column of type ``arrow.py_extension_type``
            (reading it would run code stored in the file); the message names the file.
    """
    import pandas as pd

    try:
        return pd.read_parquet(path, **kwargs)
    except Exception as e:
        if _refused(e):
            raise DataError(
                f"{Path(path)}: refused: a column has the extension type {FORBIDDEN_EXTENSION_TYPE}, whose reading would run "
                "code stored in the file (CVE-2023-47248); cvpipe never writes that type, so the file did not come from cvpipe"
            ) from None
        raise
