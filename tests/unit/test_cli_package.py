"""The ``cvpipe`` command line as one package: usage errors in one line, logging configured by the CLI only."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipelines.cli import cli

SPEC = "name: demo\ntask: detection\ndata: {source: data/annotations.json}\n"


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    p = tmp_path / "spec.yaml"
    p.write_text(SPEC)
    return p


def test_compile_until_bogus_is_a_one_line_usage_error(spec: Path, tmp_path: Path) -> None:
    out = tmp_path / "p.yaml"
    r = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "compile", str(spec), "-o", str(out), "--until", "bogus"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2
    assert r.stderr.splitlines() == ["error: --until: unknown step 'bogus'; steps are ingest, validate, transform, train, evaluate, push"]
    assert not out.exists()


@pytest.mark.parametrize(
    ("command", "extra", "steps"),
    [
        (["run"], [], "ingest, validate"),
        (["ce", "run"], [], "read_window, sample"),
        (["submit"], ["--target", "kubeflow", "--host", "http://127.0.0.1:9"], "ingest, validate"),
    ],
)
def test_every_until_names_its_pipeline_steps(spec: Path, command: list[str], extra: list[str], steps: str) -> None:
    r = CliRunner().invoke(cli, [*command, str(spec), *extra, "--until", "trian"])
    assert r.exit_code == 2
    assert r.output.startswith(f"error: --until: unknown step 'trian'; steps are {steps}")
    assert len(r.output.splitlines()) == 1


USER_STEPS = (
    "steps:\n"
    "  - {name: dedupe, after: ingest, function: 'gates:dedupe'}\n"
    "  - {name: floor, after: validate, component: floor.yaml}\n"
    "  - {name: last-look, after: evaluate, function: 'gates:look'}\n"
)


@pytest.mark.parametrize(
    ("command", "extra"),
    [(["run"], []), (["compile"], ["-o", "p.yaml"]), (["submit"], ["--target", "kubeflow", "--host", "http://127.0.0.1:9"])],
)
def test_until_names_the_specs_own_steps_in_pipeline_order(tmp_path: Path, command: list[str], extra: list[str]) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC + USER_STEPS)
    r = CliRunner().invoke(cli, [*command, str(spec), *extra, "--until", "dedup"])
    assert r.exit_code == 2, r.output
    assert r.output.splitlines() == [
        "error: --until: unknown step 'dedup'; steps are ingest, dedupe, validate, floor, transform, train, evaluate, last-look, push"
    ]
    assert not (tmp_path / "p.yaml").exists()


def test_compile_until_a_user_step_keeps_the_steps_up_to_it(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        SPEC
        + "steps:\n  - {name: dedupe, after: ingest, function: 'gates:dedupe'}\n  - {name: later, after: ingest, function: 'gates:dedupe'}\n"
    )
    out = tmp_path / "p.yaml"
    r = CliRunner().invoke(cli, ["compile", str(spec), "-o", str(out), "--until", "dedupe"])
    assert r.exit_code == 0, r.output
    import yaml

    tasks = yaml.safe_load(out.read_text())["root"]["dag"]["tasks"]
    assert set(tasks) == {"ingest", "dedupe"} and tasks["dedupe"]["dependentTasks"] == ["ingest"]
    # a built-in step keeps the user steps after it, as before
    r = CliRunner().invoke(cli, ["compile", str(spec), "-o", str(out), "--until", "ingest"])
    assert r.exit_code == 0, r.output
    assert set(yaml.safe_load(out.read_text())["root"]["dag"]["tasks"]) == {"ingest", "dedupe", "later"}


_LIBRARY_LOGGING = """
import logging, sys
from components.core.log import configure_logging, get_logger
from components.core.step import StepContext
root = logging.getLogger("cvpipe")
assert root.handlers == [] and root.level == logging.NOTSET and root.propagate, (root.handlers, root.level)
get_logger("ingest").info("not shown: the application did not ask")
configure_logging()
configure_logging()
assert len(root.handlers) == 1
get_logger("ingest").info("shown")
"""


def test_the_library_creates_loggers_only_and_the_application_shows_them() -> None:
    r = subprocess.run([sys.executable, "-c", _LIBRARY_LOGGING], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].endswith(" cvpipe.ingest: shown"), r.stderr
