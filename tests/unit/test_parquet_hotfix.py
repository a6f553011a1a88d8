"""CVE-2023-47248: cvpipe's Parquet readers refuse ``arrow.py_extension_type`` (pyarrow 10.0.1 is pinned).

A crafted file declares a column whose extension type is a pickle; pyarrow
10 unpickles it while reading the schema. The pickle here opens a marker
file for writing, so "code ran" is visible on disk. Each reader runs in a
fresh interpreter, as a cvpipe process would (this test process may already
have the hotfix from another import), and must neither create the marker
nor crash without naming the file.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

_WRITER = """
import sys
import pyarrow as pa
import pyarrow.parquet as pq

marker = sys.argv[2]

class Evil(pa.PyExtensionType):
    def __init__(self):
        super().__init__(pa.int64())

    def __reduce__(self):  # what reading the type unpickles: open(marker, "w")
        return (open, (marker, "w"))

pq.write_table(pa.table({"x": pa.ExtensionArray.from_storage(Evil(), pa.array([1, 2]))}), sys.argv[1])
"""


def _python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], capture_output=True, text=True, timeout=300, cwd=REPO)


@pytest.fixture
def crafted(tmp_path: Path) -> tuple[Path, Path]:
    """A window directory whose rows file carries the malicious type, and the marker its pickle would create."""
    window = tmp_path / "window"
    window.mkdir()
    marker = tmp_path / "code-ran"
    (window / "window.json").write_text(
        json.dumps({"start": "2026-12-01T00:00:00+00:00", "end": "2026-12-02T00:00:00+00:00", "model_name": "m", "model_version": 1})
    )
    done = _python(_WRITER, str(window / "predictions.parquet"), str(marker))
    assert done.returncode == 0, done.stderr
    assert not marker.exists()  # writing does not unpickle
    return window, marker


def test_window_reader_refuses_the_extension_type(crafted: tuple[Path, Path]) -> None:
    window, marker = crafted
    done = _python(
        """
        import os
        import sys
        from components.core.errors import DataError
        from components.monitor.window import load_window
        try:
            load_window(sys.argv[1])
        except DataError as e:
            print("REFUSED", e)
        sys.stdout.flush()
        os._exit(0)  # skip interpreter teardown: pyarrow/TensorFlow threads may abort it ("terminate called ...")
        """,
        str(window),
    )
    assert not marker.exists(), "reading the crafted file ran its pickle"
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith("REFUSED ")
    assert str(window / "predictions.parquet") in done.stdout and "arrow.py_extension_type" in done.stdout


def test_prediction_log_process_refuses_the_extension_type(crafted: tuple[Path, Path]) -> None:
    """The prediction log's readers (Feast, Dask, pyarrow) run wherever components.predict.logs is imported."""
    window, marker = crafted
    done = _python(
        """
        import os
        import sys
        import components.predict.logs
        import pyarrow.parquet as pq
        try:
            pq.read_table(sys.argv[1])
        except RuntimeError as e:
            print("REFUSED" if "Disallowed deserialization of 'arrow.py_extension_type'" in str(e) else "OTHER")
        sys.stdout.flush()
        os._exit(0)  # skip interpreter teardown (see above)
        """,
        str(window / "predictions.parquet"),
    )
    assert not marker.exists(), "reading the crafted file ran its pickle"
    assert done.stdout.strip() == "REFUSED", done.stderr[-3000:]


_READS = ("read_parquet", "read_table", "get_historical_features", "ParquetFile", "read_feather", "open_file", "open_stream")


def test_every_parquet_reader_imports_the_hotfix() -> None:
    """A module that reads Parquet/Arrow (itself or through pandas/Feast) imports components.core.parquet."""
    missing = []
    for path in sorted([*(REPO / "components").rglob("*.py"), *(REPO / "pipelines").rglob("*.py")]):
        if path == REPO / "components/core/parquet.py":
            continue
        tree = ast.parse(path.read_text())
        calls = {
            n.func.attr if isinstance(n.func, ast.Attribute) else getattr(n.func, "id", "")
            for n in ast.walk(tree)
            if isinstance(n, ast.Call)
        }
        if not calls & set(_READS):
            continue
        imported = {
            *(n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module),
            *(a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names),
        }
        if "components.core.parquet" not in imported:
            missing.append(str(path.relative_to(REPO)))
    assert missing == [], f"these modules read Parquet without importing components.core.parquet first: {missing}"
