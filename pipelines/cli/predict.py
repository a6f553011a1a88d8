"""Click commands ``cvpipe predict`` and ``cvpipe serve``.

Both read the registry and the metadata store a spec names; predictions go to
the prediction log's Feast repository: ``--feature-repo``, else the spec's
``monitoring.prediction_log``, else ``<runtime.root>/prediction_log``. A
repository that does not exist yet is created with
:func:`~components.predict.logs.init_feature_repo`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ._common import friendly, load_spec_arg

__all__ = ["feature_repo_for", "logs_compact_cmd", "logs_group", "predict_cmd", "serve_cmd"]


def feature_repo_for(spec: Any, override: str | None) -> Path:
    """The prediction log's Feast repository for a spec, created when missing.

    Args:
        spec: the pipeline spec.
        override: a directory given on the command line.

    Returns:
        The repository directory.
    """
    from components.predict.logs import init_feature_repo

    if override:
        repo = Path(override)
    else:
        monitoring = getattr(spec, "monitoring", None)
        repo = monitoring.log_dir(spec.runtime.root) if monitoring is not None else Path(spec.runtime.root) / "prediction_log"
    if not (repo / "feature_store.yaml").is_file():
        init_feature_repo(repo)
    return repo


_spec_option = click.option(
    "--spec", "spec_path", required=True, type=click.Path(dir_okay=False), help="Spec naming the registry and metadata store."
)
_repo_option = click.option(
    "--feature-repo", default=None, type=click.Path(file_okay=False), help="Feast repository of the prediction log."
)


@click.command("predict")
@click.argument("model_ref")
@click.argument("images", type=click.Path(exists=True))
@_spec_option
@_repo_option
@click.option("--batch-size", default=16, show_default=True, type=click.IntRange(min=1), help="Images per model call.")
@friendly
def predict_cmd(model_ref: str, images: str, spec_path: str, feature_repo: str | None, batch_size: int) -> None:
    """Predict on IMAGES (a folder or a manifest) with MODEL_REF (NAME@ALIAS or NAME:VERSION) and log every prediction."""
    from datetime import UTC, datetime

    from components.core.step import StepContext
    from components.predict.core import run

    spec = load_spec_arg(spec_path)
    repo = feature_repo_for(spec, feature_repo)
    run_id = f"predict-{datetime.now(UTC):%Y%m%dT%H%M%S}"
    out = Path(spec.runtime.root) / spec.name / "predict" / run_id
    result = run(StepContext(spec=spec, run_id=run_id, component="predict_batch"), model_ref, images, repo, out, batch_size=batch_size)
    classes: dict[str, int] = {}
    for r in result.rows:
        classes[r.predicted_class_name or "(none)"] = classes.get(r.predicted_class_name or "(none)", 0) + 1
    click.echo(f"{len(result.rows)} predictions of {result.model_name}:{result.model_version} logged to {repo}")
    click.echo("top classes: " + (", ".join(f"{k}={v}" for k, v in sorted(classes.items())) or "none"))
    if len(result.quarantine):
        click.echo(f"{len(result.quarantine)} images not predicted; see {out / 'quarantine.csv'}")


@click.command("serve")
@click.argument("model_ref")
@_spec_option
@_repo_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535), help="TCP port (0: any free port).")
@click.option(
    "--image-store",
    default=None,
    type=click.Path(file_okay=False),
    help="Keep request images here for labelling (default: <feature repo>/data/images).",
)
@click.option("--no-log", is_flag=True, help="Do not log predictions.")
@click.option("--max-batch-size", default=None, type=click.IntRange(min=1), help="Override serving.max_batch_size.")
@click.option("--max-batch-wait-ms", default=None, type=click.FloatRange(min=0), help="Override serving.max_batch_wait_ms.")
@click.option("--max-queue", default=None, type=click.IntRange(min=1), help="Override serving.max_queue.")
@click.option("--log-roll-seconds", default=None, type=click.FloatRange(min=0.001), help="Override serving.log_roll_seconds.")
@click.option("--follow-seconds", default=None, type=click.FloatRange(min=0.001), help="Override serving.follow_seconds.")
@friendly
def serve_cmd(
    model_ref: str,
    spec_path: str,
    feature_repo: str | None,
    host: str,
    port: int,
    image_store: str | None,
    no_log: bool,
    max_batch_size: int | None,
    max_batch_wait_ms: float | None,
    max_queue: int | None,
    log_roll_seconds: float | None,
    follow_seconds: float | None,
) -> None:
    """Serve MODEL_REF (NAME@ALIAS is followed) over HTTP until SIGTERM, logging every prediction.

    Endpoints: POST /v1/predict (raw image or {"instances": [...]}), TensorFlow Serving's
    /v1/models/NAME[:predict], KServe v2's /v2/health/*, /v2/models/NAME[/infer], /metrics.
    Settings come from the spec's `serving` section; the options override them.
    """
    from components.core.spec import ServingSpec
    from components.predict.logs import PredictionLog
    from components.predict.server import serve
    from components.registry.cli_ops import open_registry

    spec = load_spec_arg(spec_path)
    config = spec.serving or ServingSpec()
    overrides = {
        "max_batch_size": max_batch_size,
        "max_batch_wait_ms": max_batch_wait_ms,
        "max_queue": max_queue,
        "log_roll_seconds": log_roll_seconds,
        "follow_seconds": follow_seconds,
    }
    config = config.model_copy(update={k: v for k, v in overrides.items() if v is not None})
    log = None if no_log else PredictionLog(feature_repo_for(spec, feature_repo))
    store = Path(image_store) if image_store else None
    serve(model_ref, host, port, log, registry=open_registry(spec), image_store=store, config=config)


@click.group("logs")
def logs_group() -> None:
    """Maintain the prediction log."""


@logs_group.command("compact")
@_spec_option
@_repo_option
@click.option("--day", "days", multiple=True, help="Only this UTC day (YYYYMMDD; repeatable). Default: every day.")
@friendly
def logs_compact_cmd(spec_path: str, feature_repo: str | None, days: tuple[str, ...]) -> None:
    """Merge each day's small parquet part files of the prediction log (and labels) into one, atomically.

    Safe while a server writes and readers read: new parts are merged next time, readers
    never see a row twice or miss one.
    """
    from components.predict.compact import compact_log
    from components.predict.logs import PredictionLog

    spec = load_spec_arg(spec_path)
    log = PredictionLog(feature_repo_for(spec, feature_repo))
    result = compact_log(log, list(days) or None)
    if not result.days:
        click.echo(f"nothing to compact in {log.repo_dir}")
        return
    click.echo(
        f"compacted {len(result.days)} day(s): {result.files_before} files -> {result.files_after} "
        f"({result.rows} rows, {result.duplicates} duplicate rows dropped) in {log.repo_dir}"
    )
