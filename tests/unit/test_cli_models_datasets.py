"""``cvpipe datasets synth`` and ``cvpipe models promote|rollback|archive|tree`` through the command line.

The commands run through the group behind the ``cvpipe`` console script
(found from its entry point, wherever the CLI module lives) with click's
runner, on a real local registry (MLMD on SQLite, model files on disk); the
assertions cover what a user reads: the one-line answers, the exit codes and
the error messages.
"""

from __future__ import annotations

import importlib
import json
from importlib.metadata import entry_points
from pathlib import Path

import click
import pytest
import yaml
from click.testing import CliRunner, Result
from fakes.models import make_model, record_training

from components.core.spec import load_spec
from components.registry import RegisterRequest
from components.registry.cli_ops import open_registry


@pytest.fixture(scope="module")
def cvpipe() -> click.Group:
    """The click group the ``cvpipe`` console script runs."""
    [ep] = entry_points(group="console_scripts", name="cvpipe")
    module = importlib.import_module(ep.module)
    groups = [g for g in vars(module).values() if isinstance(g, click.Group) and "models" in g.commands]
    assert groups, f"no cvpipe group in {ep.module}"
    return groups[0]


def _run(group: click.Group, *args: str | Path) -> Result:
    return CliRunner().invoke(group, [str(a) for a in args])


# --------------------------------------------------------------------------- datasets synth


def test_datasets_synth_writes_the_set_it_reports(cvpipe: click.Group, tmp_path: Path) -> None:
    out = tmp_path / "set"
    args = ("datasets", "synth", "--out", out, "--num-images", "3", "--image-size", "48x40", "--classes", "circle,star", "--seed", "5")
    result = _run(cvpipe, *args)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("wrote 3 images, ") and str(out) in result.stdout
    coco = json.loads((out / "annotations.json").read_text())
    assert len(coco["images"]) == 3 and {c["name"] for c in coco["categories"]} == {"circle", "star"}
    assert {(i["width"], i["height"]) for i in coco["images"]} == {(48, 40)}
    objects = int(result.stdout.split(", ")[1].split()[0])
    assert objects == len(coco["annotations"])
    again = tmp_path / "again"
    assert _run(cvpipe, *args[:3], again, *args[4:]).exit_code == 0
    for image in coco["images"]:  # same seed, same bytes
        assert (again / image["file_name"]).read_bytes() == (out / image["file_name"]).read_bytes()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--num-images", "lots"], "--num-images: Input should be a valid integer"),
        (["--num-images", "0"], "--num-images: Input should be greater than or equal to 1"),
        (["--image-size", "wide"], "Error: --image-size: Input should be a valid integer, unable to parse string as an integer\n"),
        (["--classes", "circle,unicorn"], "unicorn"),
        (["--objects-per-image", "3-1"], "--objects-per-image:"),
        (["--brightness", "-1"], "--brightness: Input should be greater than 0"),
        (["--task", "panoptic"], "Invalid value for '--task': 'panoptic' is not one of"),
    ],
)
def test_datasets_synth_option_errors_name_the_option(cvpipe: click.Group, tmp_path: Path, args: list[str], message: str) -> None:
    result = _run(cvpipe, "datasets", "synth", "--out", tmp_path / "set", *args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output and not (tmp_path / "set").exists()


def test_datasets_synth_needs_an_output_directory(cvpipe: click.Group) -> None:
    result = _run(cvpipe, "datasets", "synth")
    assert result.exit_code == 2 and "Missing option '--out'" in result.output


# --------------------------------------------------------------------------- models


@pytest.fixture
def spec_path(tmp_path: Path) -> Path:
    """A spec naming a local registry and a SQLite metadata store, with versions 1 (champion) and 2 of ``demo``.

    Version 2 is warm-started from version 1, so the fork tree has two levels.
    """
    path = tmp_path / "spec.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "name": "demo",
                "task": "detection",
                "data": {"source": "data/annotations.json"},
                "registry": {"backend": "local", "root": str(tmp_path / "registry")},
                "runtime": {"root": str(tmp_path / "runs"), "metadata": {"url": f"sqlite:///{tmp_path / 'mlmd.sqlite'}"}},
            }
        )
    )
    registry = open_registry(load_spec(path))
    parent = None
    for n, aliases in ((1, ("champion",)), (2, ())):
        model_dir = make_model(tmp_path / "models" / f"r{n}", f"seed-{n}")
        lin = record_training(registry.store, f"r{n}", model_dir, parent=parent)
        registry.register(
            RegisterRequest(
                model_dir=model_dir,
                model_name="demo",
                metrics={"map": 0.5 + n / 10},
                blessed=True,
                source_model_id=lin["model"].id,
                blessing_id=lin["blessing"].id,
                aliases=aliases,
            )
        )
        parent = lin["model"]
    return path


def _listed(table: str) -> dict[int, str]:
    """Version -> state, from the rows of ``cvpipe models list NAME``."""
    rows = [[c.strip() for c in line.split("│")[1:-1]] for line in table.splitlines() if line.startswith("│")]
    return {int(r[1]): r[3] for r in rows}


def _holder(spec_path: Path, alias: str = "champion") -> int | None:
    v = open_registry(load_spec(spec_path)).holder("demo", alias)
    return v.version if v is not None else None


def test_models_promote_moves_the_alias(cvpipe: click.Group, spec_path: Path) -> None:
    result = _run(cvpipe, "models", "promote", "demo:2", "--spec", spec_path)
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "demo@champion -> version 2 (was version 1)"
    assert _holder(spec_path) == 2
    mobile = _run(cvpipe, "models", "promote", "demo:1", "--alias", "mobile", "--spec", spec_path)
    assert mobile.exit_code == 0 and mobile.output.strip() == "demo@mobile -> version 1"
    assert _holder(spec_path, "mobile") == 1 and _holder(spec_path) == 2


def test_models_promote_errors(cvpipe: click.Group, spec_path: Path, tmp_path: Path) -> None:
    missing = _run(cvpipe, "models", "promote", "demo:9", "--spec", spec_path)
    assert missing.exit_code == 1 and missing.output.startswith("error: model 'demo' has no version 9 in ")
    assert missing.output.rstrip().endswith("(versions: 1, 2)")
    unknown = _run(cvpipe, "models", "promote", "ghost:1", "--spec", spec_path)
    assert unknown.exit_code == 1 and unknown.output.startswith("error: model 'ghost' has no version 1 in ")
    assert _holder(spec_path) == 1  # nothing moved
    no_spec = _run(cvpipe, "models", "promote", "demo:2")
    assert no_spec.exit_code == 2 and "Missing option '--spec'" in no_spec.output
    absent = _run(cvpipe, "models", "promote", "demo:2", "--spec", tmp_path / "nope.yaml")
    assert absent.exit_code == 1 and absent.output.startswith(f"error: {tmp_path / 'nope.yaml'}: 1 problem(s)")
    assert "cannot read spec file: No such file or directory" in absent.output


def test_models_rollback_moves_the_alias_back(cvpipe: click.Group, spec_path: Path) -> None:
    assert _run(cvpipe, "models", "promote", "demo:2", "--spec", spec_path).exit_code == 0
    result = _run(cvpipe, "models", "rollback", "demo@champion", "--spec", spec_path)
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "demo@champion rolled back to version 1 (was version 2)"
    assert _holder(spec_path) == 1


def test_models_rollback_errors(cvpipe: click.Group, spec_path: Path) -> None:
    by_version = _run(cvpipe, "models", "rollback", "demo:2", "--spec", spec_path)
    assert by_version.exit_code == 1
    assert "error: rollback moves an alias: use NAME@ALIAS (for example demo@champion), not a version" in by_version.output
    no_history = _run(cvpipe, "models", "rollback", "demo", "--spec", spec_path)  # champion never moved
    assert no_history.exit_code == 1
    assert no_history.output.strip() == "error: alias 'champion' of model 'demo' has no earlier version to roll back to"
    assert _holder(spec_path) == 1


def test_models_archive_and_restore(cvpipe: click.Group, spec_path: Path) -> None:
    result = _run(cvpipe, "models", "archive", "demo:2", "--spec", spec_path)
    assert result.exit_code == 0 and result.output.strip() == "demo:2 archived"
    listed = _run(cvpipe, "models", "list", "demo", "--spec", spec_path)
    assert listed.exit_code == 0 and _listed(listed.output) == {1: "blessed"}
    everything = _run(cvpipe, "models", "list", "demo", "--archived", "--spec", spec_path)
    assert _listed(everything.output) == {1: "blessed", 2: "archived"}
    refused = _run(cvpipe, "models", "promote", "demo:2", "--spec", spec_path)
    assert refused.exit_code == 1 and refused.output.startswith("error: ") and "archived" in refused.output
    restored = _run(cvpipe, "models", "archive", "demo:2", "--restore", "--spec", spec_path)
    assert restored.exit_code == 0 and restored.output.strip() == "demo:2 restored"
    assert _run(cvpipe, "models", "promote", "demo:2", "--spec", spec_path).exit_code == 0


def test_models_archive_errors(cvpipe: click.Group, spec_path: Path) -> None:
    held = _run(cvpipe, "models", "archive", "demo:1", "--spec", spec_path)  # champion points at it
    assert held.exit_code == 1 and held.output.strip() == "error: demo:1 holds aliases champion; move them before archiving it"
    missing = _run(cvpipe, "models", "archive", "demo:7", "--spec", spec_path)
    assert missing.exit_code == 1 and "error: model 'demo' has no version 7" in missing.output


def test_models_tree_draws_the_fork(cvpipe: click.Group, spec_path: Path) -> None:
    result = _run(cvpipe, "models", "tree", "demo", "--spec", spec_path)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("model forks in ")
    first = next(i for i, line in enumerate(lines) if "demo:1 [champion]" in line)
    second = next(i for i, line in enumerate(lines) if "demo:2" in line)
    indent = [len(line) - len(line.lstrip(" │├└─")) for line in (lines[first], lines[second])]
    assert second > first and indent[1] > indent[0]  # version 2 drawn under the version it was warm-started from
    none = _run(cvpipe, "models", "tree", "ghost", "--spec", spec_path)
    assert none.exit_code == 0 and none.output.strip().startswith("no registered models named 'ghost' in ")
