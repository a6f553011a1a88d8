"""Shared pytest setup for cvpipe's test layers (unit, compile, local)."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden", action="store_true", default=False, help="Rewrite tests/compile/golden/*.yaml from the current compiler output."
    )


def _same(a: object, b: object) -> bool:
    """Equal values of the same types, all the way down."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=False))  # type: ignore[arg-type]
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)  # type: ignore[attr-defined, index]
    return a == b


@pytest.fixture(autouse=True)
def _objects_built_unchecked_are_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every ObjectAnnotation ingest builds without validation (``from_checked``) is also validated here, in every test.

    Ingest skips pydantic's validation of objects it checked itself (a million
    objects in a large COCO file); this makes each test that ingests
    anything prove that validating would have changed nothing.
    """
    from components.core.manifest import ObjectAnnotation

    unchecked = ObjectAnnotation.from_checked.__func__  # type: ignore[attr-defined]

    def checked(cls: type[ObjectAnnotation], *values: object) -> ObjectAnnotation:
        built = unchecked(cls, *values)
        names = ("class_id", "bbox", "area", "is_crowd", "segmentation", "annotation_id", "attributes")
        validated = ObjectAnnotation(**dict(zip(names, values, strict=True)))  # type: ignore[arg-type]
        # the types count down to each number: 1 == 1.0, but the manifest would say 1
        for name in names:
            assert _same(getattr(built, name), getattr(validated, name)), f"{name}: from_checked{values} differs from {validated}"
        return built

    monkeypatch.setattr(ObjectAnnotation, "from_checked", classmethod(checked))


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-golden"))


@pytest.fixture
def mlmd_url(tmp_path):
    """A fresh SQLite MLMD store URL in the test's temporary directory."""
    return f"sqlite:///{tmp_path / 'mlmd.sqlite'}"


@pytest.fixture(scope="session")
def label_studio_server(tmp_path_factory):
    """A real Label Studio (PyPI ``label-studio``, its own environment) on 127.0.0.1, once per session: ``(url, token)``.

    It takes about 30 s to start on an idle machine (tests/services/label_studio.py); skipped with the reason
    when it cannot be installed here.
    """
    import contextlib

    from services.label_studio import label_studio
    from services.processes import ServiceUnavailable

    token = "cvpipe-test-token-4f2a9c"
    with contextlib.ExitStack() as stack:
        try:
            url = stack.enter_context(label_studio(tmp_path_factory.mktemp("label-studio"), token))
        except ServiceUnavailable as e:
            pytest.skip(str(e))
        yield url, token


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory):
    """A real MLflow tracking server for the whole session (started on first use; about 30 s to minutes)."""
    from fakes.mlflow_server import MLflowServer, MLflowUnavailable

    try:
        server = MLflowServer(tmp_path_factory.mktemp("mlflow")).start()
    except MLflowUnavailable as e:
        pytest.skip(f"no MLflow server: {e}")
    yield server
    server.stop()


@pytest.fixture
def mlflow_uri(mlflow_server):
    """The session's MLflow server, emptied of registered models and runs for this test."""
    mlflow_server.wipe()
    return mlflow_server.uri


@pytest.fixture(scope="module")
def mariadb(tmp_path_factory):
    """A real MariaDB server (tests/fakes/mariadb.py) for the test module; skipped with the reason when it cannot be installed here."""
    from fakes.mariadb import MariaDB, MariaDBUnavailable

    server = MariaDB(tmp_path_factory.mktemp("mariadb"))
    try:
        server.start()
    except MariaDBUnavailable as e:
        pytest.skip(f"MariaDB unavailable: {e}")
    try:
        yield server
    finally:
        server.stop()
