"""``cvpipe submit``, ``cvpipe runs list|show|wait`` and ``cvpipe lineage``: pipeline runs, here and on a cluster.

``runs list`` lists the runs in the local metadata store (``--target local``,
the default) or the newest runs on Kubeflow or Vertex AI; ``lineage`` walks the
local store upstream from an artifact or model version.

Connection options can come from the environment: ``KF_PIPELINES_ENDPOINT``
(``--host``), ``CVPIPE_KFP_TOKEN`` (``--token``), ``CVPIPE_KFP_NAMESPACE``
(``--namespace``) and ``CVPIPE_VERTEX_SETTINGS`` (``--settings``).
Heavy imports (kfp, aiplatform) happen only when a command runs.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import click

from ..steps import STEPS, training_steps
from ._common import apply_options, check_until, friendly, load_spec_arg, until_option
from .remote import TARGETS, Remote, build_runner, remote_options, target_option

if TYPE_CHECKING:
    from components.core.lineage import LineageStore
    from components.core.runs import SubmittedRun

__all__ = [
    "build_runner",
    "lineage_cmd",
    "push_outcome",
    "run_overview",
    "runs_cancel",
    "runs_group",
    "runs_list",
    "runs_show",
    "runs_wait",
    "submit_cmd",
]


def _echo_run(run: SubmittedRun, as_json: bool, verb: str = "") -> None:
    if as_json:
        click.echo(json.dumps(run.to_dict(), indent=2))
        return
    head = f"{verb} " if verb else ""
    click.echo(f"{head}{run.target} run {run.run_id} ({run.name}): {run.state}")
    if run.url:
        click.echo(f"  {run.url}")
    for key in ("pipeline_id", "version_id", "experiment", "resource_name", "pipeline_root"):
        if run.details.get(key):
            click.echo(f"  {key}: {run.details[key]}")
    if run.error:
        click.echo(f"  error: {run.error}")
    if run.steps:
        width = max(len(s.name) for s in run.steps)
        click.echo("  steps:")
        for s in run.steps:
            started = s.started.replace("T", " ").replace("Z", "") if s.started else "-"
            took = f"{s.duration_s:.0f} s" if s.duration_s is not None else ("running" if s.state == "RUNNING" else "-")
            line = f"    {s.name:<{width}}  {s.state:<10}  {started:<19}  {took}"
            click.echo(f"{line}  error: {s.error}" if s.error else line.rstrip())


def _on_change(as_json: bool) -> Callable[[SubmittedRun], None] | None:
    if as_json:
        return None
    return lambda run: click.echo(f"{run.target} run {run.run_id}: {run.state}", err=True)


# -- submit -----------------------------------------------------------------------------


@click.command("submit")
@click.argument("spec", type=click.Path(dir_okay=False))
@target_option()
@remote_options
@click.option("--experiment", help="[kubeflow] Experiment (got or created; default: the spec's name).")
@click.option("--pipeline-name", help="[kubeflow] Pipeline name to upload under (default: the spec's name).")
@click.option("--run-name", help="[kubeflow] Run display name (default: <name>-<UTC time>).")
@click.option("--pipeline-root", help="[vertex] gs:// pipeline root (default: the spec's gs:// root, else the settings').")
@click.option("--job-id", help="[vertex] Pipeline job id (default: <name>-<UTC time>-<random>).")
@click.option("--label", "labels", multiple=True, metavar="KEY=VALUE", help="[vertex] Extra job label (repeatable).")
@click.option("--service-account", help="Service account the run's tasks use (Kubernetes SA on Kubeflow, IAM SA on Vertex AI).")
@until_option(None, help=f"Last step to include ({', '.join(STEPS)}, or one of the spec's steps).")
@click.option("--strict", is_flag=True, help="Fail instead of warning when the spec names local paths or SQLite metadata.")
@click.option("--wait", "wait_", is_flag=True, help="Wait until the run finishes; exit 1 unless it succeeded.")
@click.option("--timeout", default=3600.0, show_default=True, type=float, help="With --wait: seconds to wait at most.")
@click.option("--poll", default=15.0, show_default=True, type=float, help="With --wait: seconds between polls.")
@click.option("--json", "as_json", is_flag=True, help="Print the run as JSON.")
@friendly
def submit_cmd(
    spec: str,
    target: str,
    remote: Remote,
    experiment: str | None,
    pipeline_name: str | None,
    run_name: str | None,
    pipeline_root: str | None,
    job_id: str | None,
    labels: tuple[str, ...],
    service_account: str | None,
    until: str | None,
    strict: bool,
    wait_: bool,
    timeout: float,
    poll: float,
    as_json: bool,
) -> None:
    """Compile SPEC and run it on Kubeflow Pipelines or Vertex AI Pipelines (the spec `cvpipe run` runs, unchanged)."""
    from ..runners.remote import portability_warnings

    parsed = load_spec_arg(spec)
    check_until(until, training_steps(parsed))
    warnings = portability_warnings(parsed, "vertex" if target == "vertex" else "kubeflow")
    for w in warnings:
        click.echo(f"warning: {w}", err=True)
    if strict and warnings:
        raise click.ClickException(f"{len(warnings)} portability problem(s) in {spec} (--strict)")
    extra: dict[str, str] = {}
    for item in labels:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="--label")
        extra[key] = value
    runner = remote.runner(
        target,
        experiment=experiment,
        pipeline_name=pipeline_name,
        pipeline_root=pipeline_root,
        service_account=service_account,
        labels=extra,
    )
    run = runner.submit(parsed, until=until, run_name=run_name if target == "kubeflow" else job_id)
    _echo_run(run, as_json and not wait_, "submitted")
    if wait_:
        run = runner.wait(run.run_id, timeout=timeout, poll=poll, on_change=_on_change(as_json))
        _echo_run(run, as_json, "finished")
        if not run.succeeded:
            sys.exit(1)


# -- runs show / wait / list ------------------------------------------------------------


@click.command("show")
@click.argument("run_id")
@target_option()
@remote_options
@click.option("--json", "as_json", is_flag=True, help="Print the run as JSON.")
@friendly
def runs_show(
    run_id: str,
    target: str,
    remote: Remote,
    as_json: bool,
) -> None:
    """Show the state of a run on Kubeflow (run id) or Vertex AI (pipeline job id), with each step's state, start, duration and error."""
    runner = remote.runner(target)
    _echo_run(runner.get(run_id), as_json)


@click.command("wait")
@click.argument("run_id")
@target_option()
@remote_options
@click.option("--timeout", default=3600.0, show_default=True, type=float, help="Seconds to wait at most.")
@click.option("--poll", default=15.0, show_default=True, type=float, help="Seconds between polls.")
@click.option("--json", "as_json", is_flag=True, help="Print the finished run as JSON.")
@friendly
def runs_wait(
    run_id: str,
    target: str,
    remote: Remote,
    timeout: float,
    poll: float,
    as_json: bool,
) -> None:
    """Wait until a run finishes; exit 1 unless it succeeded (2 when still running after --timeout)."""
    from components.core.errors import PipelineRunError

    runner = remote.runner(target)
    try:
        run = runner.wait(run_id, timeout=timeout, poll=poll, on_change=_on_change(as_json))
    except PipelineRunError as e:
        if "still" in str(e) and "after" in str(e):
            click.echo(f"error: {e}", err=True)
            sys.exit(2)
        raise
    _echo_run(run, as_json, "finished")
    if not run.succeeded:
        sys.exit(1)


@click.command("cancel")
@click.argument("run_id")
@target_option()
@remote_options
@click.option("--json", "as_json", is_flag=True, help="Print the run as JSON.")
@friendly
def runs_cancel(
    run_id: str,
    target: str,
    remote: Remote,
    as_json: bool,
) -> None:
    """Stop a run on Kubeflow (terminate) or Vertex AI (cancel); a finished run keeps its state."""
    runner = remote.runner(target)
    _echo_run(runner.cancel(run_id), as_json, "cancelled")


def _list_remote(
    target: str,
    remote: Remote,
    experiment: str | None,
    pipeline: str | None,
    limit: int,
    as_json: bool,
) -> None:
    from ..render import render_table

    runner = remote.runner(target, experiment=experiment)
    runs = runner.list(pipeline=pipeline, limit=limit)
    if as_json:
        click.echo(json.dumps([r.to_dict() for r in runs], indent=2))
        return
    rows = [[r.run_id, r.name, r.state, r.created] for r in runs]
    click.echo(render_table(f"{target} runs", ["run", "name", "state", "created"], rows))


_list_options = [
    click.option("--experiment", help="[kubeflow] Only runs of this experiment."),
    click.option("--pipeline", help="[vertex] Only jobs of this pipeline (the spec's name)."),
    click.option("--limit", default=20, show_default=True, type=int, help="At most this many runs, newest first."),
    click.option("--json", "as_json", is_flag=True, help="Print the runs as JSON."),
]


@click.group("runs")
def runs_group() -> None:
    """Pipeline runs recorded in the metadata store."""


_store_options = [
    click.option("--spec", "spec", default=None, type=click.Path(dir_okay=False), help="Use this spec's metadata store."),
    click.option(
        "--metadata",
        default=None,
        envvar="CVPIPE_METADATA",
        help="Metadata URL (sqlite:///path or mysql://user@host:port/db; env CVPIPE_METADATA).",
    ),
    click.option("--root", default="runs", show_default=True, help="Run root a relative SQLite path is resolved against."),
]


def _store(spec: str | None, metadata: str | None, root: str) -> LineageStore:
    from components.core.lineage import LineageStore

    # read-only: a store that does not exist is an error naming where it looked, never created
    if spec:
        s = load_spec_arg(spec)
        return LineageStore.for_spec(s.runtime.metadata, base_dir=s.runtime.root, create=False)
    return LineageStore(metadata or "sqlite:///mlmd.sqlite", base_dir=root, create=False)


@runs_group.command("list")
@apply_options(_store_options)
@target_option(required=False, choices=("local", *TARGETS), default="local")
@remote_options
@apply_options(_list_options)
@friendly
def runs_list(
    spec: str | None,
    metadata: str | None,
    root: str,
    target: str,
    remote: Remote,
    experiment: str | None,
    pipeline: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """List local runs: status, start, duration, steps and outcome (pushed version or why not).

    With --target kubeflow or vertex, list the newest runs there instead.
    """
    if target != "local":
        _list_remote(target, remote, experiment, pipeline, limit, as_json)
        return
    from ..render import render_table

    store = _store(spec, metadata, root)
    runs = [run_overview(store, run_id) for run_id in store.run_ids()][-limit:]
    if as_json:
        click.echo(json.dumps(runs, indent=2))
        return
    rows = [
        [r["run_id"], r["status"], r["started"].replace("T", " ").removesuffix("Z"), f"{r['duration_s']:.0f}s", r["steps"], r["outcome"]]
        for r in runs
    ]
    click.echo(render_table("runs", ["run", "status", "started (UTC)", "duration", "steps", "outcome"], rows))


def push_outcome(artifacts: Sequence[Any]) -> str:
    """Whether a run pushed its model, in a few words: ``pushed demo:3`` or ``not pushed: <the failed threshold>``.

    Args:
        artifacts: the run's artifacts (:class:`~components.core.lineage.ArtifactRef`).

    Returns:
        The outcome, or "" when the run has no push step (yet).
    """
    pushed = [a for a in artifacts if a.kind == "PushedModel"]
    if not pushed:
        return ""
    p = pushed[-1].properties
    if p.get("pushed"):
        ref = p.get("ref") or (f"{p['model_name']}:{p.get('version')}" if p.get("model_name") else p.get("version"))
        return f"pushed {ref}"
    try:
        reasons = [str(x) for x in json.loads(str(p.get("reasons") or "[]"))]
    except ValueError:
        reasons = [str(p.get("reasons"))]
    why = next((x for x in reasons if not x.startswith("default blessing")), reasons[0] if reasons else "not blessed")
    return f"not pushed: {why}"


def run_overview(store: LineageStore, run_id: str) -> dict[str, Any]:
    """One local run as ``runs list`` shows it: status, start, duration, steps and outcome.

    Status is ``failed`` when a step failed, ``succeeded`` when the run reached
    its last step (push, or the continuous-evaluation trigger), else
    ``incomplete`` (running now, stopped by ``--until``, or killed). The start
    is the first step's record time less its duration; the outcome is the
    pushed version, or why the model was not pushed; a run a user step vetoed
    says which step and why.

    Args:
        store: the metadata store.
        run_id: the run.

    Returns:
        ``run_id``, ``status``, ``started`` (ISO, UTC), ``duration_s``, ``steps``, ``outcome``.
    """
    from datetime import UTC, datetime

    execs = store.executions(run_id=run_id)
    comps = [e["component"] for e in execs]
    failed = [e["component"] for e in execs if e["state"] == "FAILED"]
    starts = [e["recorded_ms"] / 1000 - float(e["properties"].get("duration_s") or 0) for e in execs]
    begin = min(starts) if starts else 0.0
    end = max((e["recorded_ms"] / 1000 for e in execs), default=begin)
    status = "failed" if failed else ("succeeded" if comps and comps[-1] in ("push", "trigger") else "incomplete")
    outcome = f"failed at {failed[0]}" if failed else ""
    vetoed = [e for e in execs if e["state"] == "FAILED" and e["properties"].get("veto")]
    if vetoed:
        outcome = f"vetoed by {vetoed[0]['component']}: {vetoed[0]['properties']['veto']}"
    # only a run with a push step has a push outcome: a continuous-evaluation run's context also holds the
    # production model's PushedModel record (an input of its steps), which is not news about this run
    pushed = push_outcome(store.artifacts_of_run(run_id)) if "push" in comps else ""
    if pushed:
        outcome = pushed
    elif status == "incomplete":
        outcome = f"last step {comps[-1]}" if comps else ""
    return {
        "run_id": run_id,
        "status": status,
        "started": datetime.fromtimestamp(begin, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "duration_s": round(max(0.0, end - begin), 1),
        "steps": f"{len(execs)} steps" if len(execs) != 1 else "1 step",
        "outcome": outcome,
    }


runs_group.add_command(runs_show)
runs_group.add_command(runs_wait)
runs_group.add_command(runs_cancel)


@click.command("lineage")
@click.argument("ref")
@apply_options(_store_options)
@friendly
def lineage_cmd(ref: str, spec: str | None, metadata: str | None, root: str) -> None:
    """Print the upstream lineage of an artifact id or a model NAME:VERSION."""
    from ..lookup import resolve_artifact

    store = _store(spec, metadata, root)
    artifact = resolve_artifact(store, ref)
    click.echo(store.upstream(artifact.id).render())
