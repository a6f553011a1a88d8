"""Recurring and continuous-evaluation runs: ``cvpipe schedule``, ``cvpipe scheduler`` and ``cvpipe ce run|compile|demo``.

::

    cvpipe schedule SPEC --target kubeflow --host URL | --target vertex --project P --region R
    cvpipe scheduler SPEC... [--once | --until TIME]
    cvpipe ce run SPEC | ce compile SPEC -o FILE | ce demo --dir DIR

Connection options can come from the environment as for ``cvpipe submit``:
``KF_PIPELINES_ENDPOINT`` (``--host``), ``CVPIPE_KFP_TOKEN`` (``--token``),
``CVPIPE_KFP_NAMESPACE`` (``--namespace``), ``CVPIPE_VERTEX_SETTINGS`` (``--settings``).
Heavy imports happen only when a command runs.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import click

from ..steps import CE_STEPS
from ._common import friendly, load_spec_arg, until_option
from .remote import Remote, remote_options, target_option

__all__ = ["ce_compile", "ce_demo", "ce_group", "ce_run", "schedule_cmd", "scheduler_cmd"]

_PIPELINES = ["auto", "continuous-eval", "training"]


def _when(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not an ISO 8601 time (2026-11-22T10:00:00+00:00)") from None
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


@click.command("schedule")
@click.argument("spec", type=click.Path(dir_okay=False))
@target_option()
@click.option(
    "--pipeline",
    type=click.Choice(_PIPELINES),
    default="auto",
    show_default=True,
    help="auto: continuous-eval when the spec has monitoring.",
)
@click.option("--cron", default=None, help="Five-field cron expression (default: the spec's schedule.cron).")
@click.option("--name", default=None, help="Display name of the schedule (default: the pipeline's name).")
@remote_options
@click.option("--experiment", help="[kubeflow] Experiment (got or created; default: the spec's name).")
@click.option("--pipeline-root", help="[vertex] gs:// pipeline root (default: the spec's gs:// root, else the settings').")
@click.option("--service-account", help="Service account the runs use (Kubernetes SA on Kubeflow, IAM SA on Vertex AI).")
@click.option("--json", "as_json", is_flag=True, help="Print the schedule as JSON.")
@friendly
def schedule_cmd(
    spec: str,
    target: str,
    pipeline: str,
    cron: str | None,
    name: str | None,
    remote: Remote,
    experiment: str | None,
    pipeline_root: str | None,
    service_account: str | None,
    as_json: bool,
) -> None:
    """Create a recurring run of a spec's pipeline on Kubeflow Pipelines or a Vertex AI schedule (from schedule.cron)."""
    runner = remote.runner(target, experiment=experiment, pipeline_root=pipeline_root, service_account=service_account)
    result = runner.schedule(load_spec_arg(spec), pipeline=pipeline, cron=cron, name=name)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
        return
    click.echo(
        f"scheduled {result.pipeline} pipeline on {result.target}: {result.name} ({result.schedule_id}) '{result.cron}' {result.state}"
    )
    if result.url:
        click.echo(f"  {result.url}")
    for old in result.replaced:
        click.echo(f"  replaced {old}")
    for w in result.warnings:
        click.echo(f"  warning: {w}", err=True)


@click.command("scheduler")
@click.argument("specs", nargs=-1, required=True, type=click.Path(exists=True))
@click.option(
    "--pipeline",
    type=click.Choice(_PIPELINES),
    default="auto",
    show_default=True,
    help="auto: continuous-eval when the spec has monitoring.",
)
@click.option("--once", is_flag=True, help="Run what is due now, then exit.")
@click.option("--until", "until_text", default=None, help="Keep scheduling until this ISO 8601 time, then exit.")
@click.option("--now", "now_text", default=None, help="Take this ISO 8601 time as now (tests, backfills); the clock stands still.")
@friendly
def scheduler_cmd(specs: tuple[str, ...], pipeline: str, once: bool, until_text: str | None, now_text: str | None) -> None:
    """Run the pipelines of SPECS (files or directories) on their cron schedules, in this process, with kfp.local.

    A spec seen for the first time runs at its next scheduled time; the last time
    run is kept in <runtime.root>/scheduler.json. Without --once or --until it runs
    until interrupted.
    """
    from ..schedule import Scheduler

    fixed = _when(now_text)
    scheduler = Scheduler(list(specs), pipeline, clock=(lambda: fixed) if fixed is not None else None, echo=click.echo)
    if not scheduler.entries:
        raise click.UsageError("no spec with a schedule section among the given paths")
    if fixed is not None and not once and until_text is None:
        raise click.UsageError("--now needs --once or --until (the clock stands still)")
    runs = scheduler.run(once=once or (fixed is not None and until_text is None), until=_when(until_text))
    failed = [r for r in runs if not r.succeeded]
    click.echo(f"{len(runs)} run(s), {len(failed)} failed")
    if failed:
        sys.exit(1)


@click.group("ce")
def ce_group() -> None:
    """Continuous evaluation of the model in production (the spec's monitoring section)."""


@ce_group.command("run")
@click.argument("spec", type=click.Path(dir_okay=False))
@until_option(CE_STEPS)
@friendly
def ce_run(spec: str, until: str | None) -> None:
    """Run the continuous-evaluation pipeline once, locally with kfp.local."""
    from ..render import render_summary
    from ..runners.local import run_local

    summary = run_local(load_spec_arg(spec), until=until, pipeline="continuous-eval")
    click.echo(render_summary(summary))


@ce_group.command("compile")
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("-o", "--output", default="continuous-eval.yaml", show_default=True, help="Compiled KFP v2 pipeline YAML.")
@friendly
def ce_compile(spec: str, output: str) -> None:
    """Compile the continuous-evaluation pipeline for Kubeflow or Vertex AI."""
    from ..compiler import compile_spec

    click.echo(f"wrote {compile_spec(load_spec_arg(spec), output, pipeline='continuous-eval')}")


@ce_group.command("demo")
@click.option(
    "--dir", "directory", default="demo", show_default=True, type=click.Path(file_okay=False), help="The training demo's directory."
)
@friendly
def ce_demo(directory: str) -> None:
    """After `cvpipe demo`: shifted production traffic, labels, drift, an alert and one retraining run."""
    from ..demo_ce import run_ce_demo

    run_ce_demo(Path(directory), echo=click.echo)
