"""The ``cvpipe label`` command group.

::

    cvpipe label sample MODEL_REF --spec SPEC --out DIR      draw a batch: tasks.json, batch.json, ...
    cvpipe label push DIR --url URL [--project ID] [--spec SPEC]   send its tasks to Label Studio
    cvpipe label pull --url URL --project ID -o EXPORT.json [--spec SPEC]   fetch Label Studio's JSON export
    cvpipe label simulate DIR --truth MANIFEST -o EXPORT.json   an export made from true labels
    cvpipe label import EXPORT.json --batch DIR --spec SPEC --out DIR   ground truth in

The API token is read from an environment variable (``--token-env``,
default ``LABEL_STUDIO_API_KEY``). With ``--spec``, push and pull record on
the batch's ``LabellingBatch`` artifact that it was sent (project, tasks) and
how many tasks are annotated (:mod:`components.sample.queue`), which the
console's labelling queue shows.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ._common import friendly, load_spec_arg
from .predict import feature_repo_for

if TYPE_CHECKING:
    from components.core.lineage import LineageStore

__all__ = ["label_group"]

_spec_option = click.option(
    "--spec", "spec_path", required=True, type=click.Path(dir_okay=False), help="Spec naming the registry and metadata store."
)
_repo_option = click.option(
    "--feature-repo", default=None, type=click.Path(file_okay=False), help="Feast repository of the prediction log."
)
_record_option = click.option(
    "--spec",
    "spec_path",
    default=None,
    type=click.Path(dir_okay=False),
    help="Spec whose metadata store keeps the batch's labelling state (shown in the console's labelling queue).",
)
_url_option = click.option("--url", required=True, help="Label Studio base URL, e.g. http://localhost:8080.")
_project_option = click.option("--project", "project_id", required=True, type=int, help="Label Studio project id.")
_token_option = click.option(
    "--token-env", default="LABEL_STUDIO_API_KEY", show_default=True, help="Environment variable holding the API token."
)


def _store(spec_path: str | None) -> LineageStore | None:
    """The metadata store of ``--spec`` (never created here: the batch was recorded in it), or None without one."""
    if spec_path is None:
        return None
    from components.core.lineage import LineageStore

    spec = load_spec_arg(spec_path)
    return LineageStore.for_spec(spec.runtime.metadata, base_dir=spec.runtime.root, create=False)


def _run_id(kind: str) -> str:
    from datetime import UTC, datetime

    return f"{kind}-{datetime.now(UTC):%Y%m%dT%H%M%S}"


@click.group("label")
def label_group() -> None:
    """Human labelling of production images: sample a batch, Label Studio round trip, import ground truth."""


@label_group.command("sample")
@click.argument("model_ref")
@_spec_option
@_repo_option
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Batch directory to write.")
@click.option(
    "--hours", default=24.0, show_default=True, type=click.FloatRange(min=0, min_open=True), help="Window length, ending at --end."
)
@click.option("--end", default=None, help="Window end, ISO 8601 (default: now).")
@click.option("--per-class", type=click.IntRange(min=0), default=None, help="Images per predicted class.")
@click.option("--uncertain", type=click.IntRange(min=0), default=None, help="Least confident images.")
@click.option("--random-share", type=click.FloatRange(0, 1), default=None, help="Share of the batch drawn uniformly.")
@click.option("--max-items", type=click.IntRange(min=1), default=None, help="Batch size limit.")
@click.option("--seed", type=int, default=None, help="Random seed.")
@friendly
def label_sample(
    model_ref: str,
    spec_path: str,
    feature_repo: str | None,
    out_dir: str,
    hours: float,
    end: str | None,
    per_class: int | None,
    uncertain: int | None,
    random_share: float | None,
    max_items: int | None,
    seed: int | None,
) -> None:
    """Draw a labelling batch from the last HOURS of MODEL_REF's logged predictions."""
    from datetime import datetime, timedelta

    from components.core.step import StepContext
    from components.sample.core import run, sampling_config

    spec = load_spec_arg(spec_path)
    given = {"per_class": per_class, "uncertain": uncertain, "random_share": random_share, "max_items": max_items, "seed": seed}
    cfg = sampling_config(spec).model_copy(update={k: v for k, v in given.items() if v is not None})
    result = run(
        StepContext(spec=spec, run_id=_run_id("sample"), component="sample"),
        feature_repo_for(spec, feature_repo),
        model_ref,
        Path(out_dir),
        window_end=datetime.fromisoformat(end) if end else None,
        window=timedelta(hours=hours),
        config=cfg,
    )
    b = result.batch
    counts = ", ".join(f"{k}={v}" for k, v in b.counts().items())
    click.echo(f"{b.batch_id}: {len(b.items)} of {b.window_images} images ({counts}) -> {result.files['tasks']}")


@label_group.command("push")
@click.argument("batch_dir", type=click.Path(exists=True, file_okay=False))
@_url_option
@click.option("--project", "project_id", type=int, default=None, help="Label Studio project id (default: create one).")
@_token_option
@click.option("--min-score", default=0.3, show_default=True, type=float, help="Detections below this are not pre-annotated.")
@_record_option
@friendly
def label_push(batch_dir: str, url: str, project_id: int | None, token_env: str, min_score: float, spec_path: str | None) -> None:
    """Send a batch's tasks, with pre-annotations, to a Label Studio project."""
    from components.sample.core import LabellingBatch
    from components.sample.labelstudio import LabelStudioClient, label_config, to_tasks
    from components.sample.queue import find_batch, mark_sent

    batch = LabellingBatch.load(batch_dir)
    store = _store(spec_path)
    artifact = find_batch(store, batch_dir) if store is not None else None  # before sending: a wrong spec sends nothing
    client = LabelStudioClient(url, token_env)
    pid = (
        project_id
        if project_id is not None
        else client.create_project(f"cvpipe {batch.model_name} {batch.batch_id}", label_config(batch.task, batch.label_map))
    )
    answer = client.import_tasks(pid, to_tasks(batch, min_score=min_score))
    sent = int(answer.get("task_count", len(batch.items)))
    click.echo(f"project {pid}: {sent} tasks imported ({answer.get('prediction_count', 0)} with predictions)")
    if store is not None and artifact is not None:
        mark_sent(store, artifact, url, pid, sent)
        click.echo(f"recorded on LabellingBatch #{artifact.id}: sent to project {pid}")


@label_group.command("pull")
@_url_option
@_project_option
@_token_option
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Where to write the JSON export.")
@_record_option
@friendly
def label_pull(url: str, project_id: int, token_env: str, output: str, spec_path: str | None) -> None:
    """Fetch a Label Studio project's JSON export (tasks with annotations)."""
    from components.core.io import atomic_write_json
    from components.sample.labelstudio import LabelStudioClient
    from components.sample.queue import mark_annotated

    store = _store(spec_path)
    tasks = LabelStudioClient(url, token_env).export(project_id)
    atomic_write_json(output, tasks)
    done = sum(1 for t in tasks if any(not a.get("was_cancelled") for a in t.get("annotations") or []))
    click.echo(f"{len(tasks)} tasks ({done} annotated) -> {output}")
    if store is not None:
        marked = mark_annotated(store, url, project_id, done)
        if marked is None:
            click.echo(f"no labelling batch of this spec was sent to project {project_id}: nothing recorded", err=True)
        else:
            click.echo(f"recorded on LabellingBatch #{marked.id}: {done} annotated")


@label_group.command("simulate")
@click.argument("batch_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--truth", required=True, type=click.Path(exists=True, dir_okay=False), help="Manifest (or COCO file) with the true labels.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Where to write the export.")
@click.option("--mask-format", default="polygon", show_default=True, type=click.Choice(["polygon", "brush"]))
@friendly
def label_simulate(batch_dir: str, truth: str, output: str, mask_format: str) -> None:
    """Write the Label Studio export people would produce, from known true labels (demos, tests)."""
    from components.core.io import atomic_write_json
    from components.core.manifest import Manifest
    from components.sample.core import LabellingBatch
    from components.sample.simulate import simulate_labels

    batch = LabellingBatch.load(batch_dir)
    try:
        manifest = Manifest.load(truth)
    except (ValueError, OSError):
        from components.core.spec import DataSpec
        from components.ingest import read_source

        manifest = read_source(DataSpec(source=truth), batch.task).manifest
    export = simulate_labels(batch, manifest, mask_format="brush" if mask_format == "brush" else "polygon")
    atomic_write_json(output, export)
    labelled = sum(1 for t in export if t["annotations"])
    click.echo(f"{labelled} of {len(export)} tasks labelled from {truth} -> {output}")


@label_group.command("import")
@click.argument("export", type=click.Path(exists=True, dir_okay=False))
@click.option("--batch", "batch_dir", required=True, type=click.Path(exists=True, file_okay=False), help="The labelling batch directory.")
@_spec_option
@_repo_option
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Directory for the manifest and quarantine report.")
@friendly
def label_import(export: str, batch_dir: str, spec_path: str, feature_repo: str | None, out_dir: str) -> None:
    """Import a Label Studio JSON export of a batch as ground truth (validated; bad labels quarantined)."""
    from components.core.step import StepContext
    from components.sample.core import run_import

    spec = load_spec_arg(spec_path)
    out = Path(out_dir)
    result = run_import(
        StepContext(spec=spec, run_id=_run_id("import"), component="import_labels"),
        Path(export),
        Path(batch_dir),
        feature_repo_for(spec, feature_repo),
        out / "labelled",
        out / "quarantine",
    )
    li = result.labels
    click.echo(
        f"{len(li.labels)} images labelled -> {result.files['manifest']}; "
        f"{li.quarantine.rejected_images} quarantined -> {result.files['quarantine']}; {len(li.unlabelled)} unlabelled"
    )
    if li.unlabelled:
        click.echo(json.dumps(li.unlabelled[:5]) + (" ..." if len(li.unlabelled) > 5 else ""))
