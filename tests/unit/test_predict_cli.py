"""``cvpipe predict`` and the ``cvpipe label`` group, in-process through click, with a Label Studio stand-in."""

from __future__ import annotations

import json
from pathlib import Path

import click
import yaml
from click.testing import CliRunner
from fakes.label_studio_server import FakeLabelStudio
from predict_testdata import make_images, make_tiny_model

from components.core.labelmap import LabelMap
from components.core.lineage import LineageStore
from components.core.spec import load_spec
from components.predict.logs import PredictionLog
from components.registry import RegisterRequest
from components.registry.cli_ops import open_registry
from components.sample.core import LabellingBatch
from pipelines.cli.label import label_group
from pipelines.cli.predict import predict_cmd, serve_cmd

LABELS = LabelMap.from_names(["circle", "square", "star"])


def test_predict_then_label_round_trip_from_the_command_line(tmp_path: Path, monkeypatch) -> None:
    cli = click.Group("cvpipe", commands={"predict": predict_cmd, "serve": serve_cmd, "label": label_group})
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(
        yaml.safe_dump(
            {
                "name": "shapes",
                "task": "detection",
                "data": {"source": str(tmp_path / "annotations.json")},
                "registry": {"root": str(tmp_path / "registry")},
                "runtime": {"root": str(tmp_path / "runs"), "metadata": {"url": f"sqlite:///{tmp_path / 'mlmd.sqlite'}"}},
            }
        )
    )
    registry = open_registry(load_spec(spec_file))
    registry.register(
        RegisterRequest(
            model_dir=make_tiny_model(tmp_path / "model", "detection", LABELS), model_name="shapes", blessed=True, aliases=["champion"]
        )
    )
    truth = make_images(tmp_path / "prod", 12, LABELS, "detection", seed=3)
    truth_file = truth.save(tmp_path / "truth.json")
    runner = CliRunner()

    out = runner.invoke(cli, ["predict", "shapes@champion", str(tmp_path / "prod"), "--spec", str(spec_file), "--batch-size", "5"])
    assert out.exit_code == 0, out.output
    assert "12 predictions of shapes:1 logged" in out.output
    repo = tmp_path / "runs" / "prediction_log"
    assert (repo / "feature_store.yaml").is_file() and len(list((repo / "data" / "predictions").glob("part-*.parquet"))) == 1

    batch_dir = tmp_path / "batch"
    out = runner.invoke(
        cli,
        [
            "label",
            "sample",
            "shapes@champion",
            "--spec",
            str(spec_file),
            "--out",
            str(batch_dir),
            "--max-items",
            "6",
            "--random-share",
            "0.5",
            "--per-class",
            "1",
        ],
    )
    assert out.exit_code == 0, out.output
    batch = LabellingBatch.load(batch_dir)
    assert len(batch.items) <= 6 and batch.counts()["random"] == 3 and batch.batch_id in out.output

    monkeypatch.setenv("CVPIPE_CLI_LS_TOKEN", "tok")
    with FakeLabelStudio(token="tok") as ls:
        # a batch the spec's store does not know is refused before anything is sent
        stray = tmp_path / "stray"
        stray.mkdir()
        for f in batch_dir.iterdir():
            (stray / f.name).write_bytes(f.read_bytes())
        push = ["label", "push", "--url", ls.url, "--token-env", "CVPIPE_CLI_LS_TOKEN", "--spec", str(spec_file)]
        out = runner.invoke(cli, [*push, str(stray)])
        assert out.exit_code == 1 and f"no LabellingBatch artifact in the metadata store has the URI {stray}" in out.output
        assert ls.projects == {}

        out = runner.invoke(cli, [*push, str(batch_dir)])
        assert out.exit_code == 0, out.output
        assert f"{len(batch.items)} tasks imported" in out.output and ls.projects[1]["label_config"].startswith("<View>")
        store = LineageStore(f"sqlite:///{tmp_path / 'mlmd.sqlite'}")
        sent = store.latest("LabellingBatch", batch_id=batch.batch_id)
        assert sent is not None and f"recorded on LabellingBatch #{sent.id}: sent to project 1" in out.output
        assert sent.properties["labelstudio_project"] == 1 and sent.properties["labelstudio_url"] == ls.url.rstrip("/")
        assert sent.properties["sent_tasks"] == len(batch.items) and "annotated" not in sent.properties
        assert [t["data"]["image_sha256"] for t in ls.tasks[1]] == [i.image_sha256 for i in batch.items]

        export_file = tmp_path / "export.json"
        out = runner.invoke(cli, ["label", "simulate", str(batch_dir), "--truth", str(truth_file), "-o", str(export_file)])
        assert out.exit_code == 0, out.output
        simulated = {t["data"]["image_sha256"]: t["annotations"] for t in json.loads(export_file.read_text())}
        ls.annotate(1, lambda task: simulated[task["data"]["image_sha256"]])
        pulled = tmp_path / "pulled.json"
        out = runner.invoke(
            cli, ["label", "pull", "--url", ls.url, "--project", "1", "--token-env", "CVPIPE_CLI_LS_TOKEN", "-o", str(pulled)]
        )
        assert out.exit_code == 0, out.output
        assert f"{len(batch.items)} tasks ({len(batch.items)} annotated)" in out.output
        pull = ["label", "pull", "--url", ls.url, "--project", "1", "--token-env", "CVPIPE_CLI_LS_TOKEN", "-o", str(pulled)]
        out = runner.invoke(cli, [*pull, "--spec", str(spec_file)])
        assert out.exit_code == 0 and f"recorded on LabellingBatch #{sent.id}: {len(batch.items)} annotated" in out.output
        assert store.get(sent.id).properties["annotated"] == len(batch.items)
        from components.sample.labelstudio import LabelStudioClient

        other = LabelStudioClient(ls.url, "CVPIPE_CLI_LS_TOKEN").create_project("other", ls.projects[1]["label_config"])
        out = runner.invoke(
            cli, [*pull[:5], str(other), *pull[6:-1], str(tmp_path / "other.json"), "--spec", str(spec_file)]
        )  # a project no batch was sent to
        assert out.exit_code == 0, out.output
        assert f"no labelling batch of this spec was sent to project {other}: nothing recorded" in out.output

    out = runner.invoke(
        cli, ["label", "import", str(pulled), "--batch", str(batch_dir), "--spec", str(spec_file), "--out", str(tmp_path / "imported")]
    )
    assert out.exit_code == 0, out.output
    assert f"{len(batch.items)} images labelled" in out.output
    assert len(PredictionLog(repo).read_labels()) == len(batch.items)
    assert LineageStore(f"sqlite:///{tmp_path / 'mlmd.sqlite'}").latest("LabellingBatch", batch_id=batch.batch_id) is not None

    out = runner.invoke(
        cli, ["label", "pull", "--url", "http://127.0.0.1:9", "--project", "1", "--token-env", "CVPIPE_NOT_SET", "-o", str(pulled)]
    )
    assert out.exit_code == 1 and "error: Label Studio API token: set the environment variable CVPIPE_NOT_SET" in out.output
