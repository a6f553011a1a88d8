"""Shared pytest setup for cvpipe's test layers (unit, compile, local)."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden", action="store_true", default=False, help="Rewrite tests/compile/golden/*.yaml from the current compiler output."
    )


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-golden"))


@pytest.fixture
def mlmd_url(tmp_path):
    """A fresh SQLite MLMD store URL in the test's temporary directory."""
    return f"sqlite:///{tmp_path / 'mlmd.sqlite'}"
