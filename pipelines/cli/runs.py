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
from typing import TYPE_CHECKING, Any, TypeVar

import click

from ..steps import STEPS
from ._common import apply_options, friendly, load_spec_arg, until_option

if TYPE_CHECKING:
    from components.core.lineage import LineageStore
    from components.core.runs import Runner, SubmittedRun

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

FC = TypeVar("FC", bound=Callable[..., Any])
TARGETS = ("kubeflow", "vertex")


# -- shared options ---------------------------------------------------------------------

_kubeflow_options = [
    click.option("--host", envvar="KF_PIPELINES_ENDPOINT", help="[kubeflow] KFP API endpoint (env KF_PIPELINES_ENDPOINT)."),
    click.option("--namespace", envvar="CVPIPE_KFP_NAMESPACE", help="[kubeflow] Profile namespace (multi-user Kubeflow)."),
    click.option("--token", envvar="CVPIPE_KFP_TOKEN", help="[kubeflow] Bearer token (env CVPIPE_KFP_TOKEN)."),
]
_vertex_options = [
    click.option(
        "--settings",
        "settings_path",
        envvar="CVPIPE_VERTEX_SETTINGS",
        type=click.Path(dir_okay=False),
        help="[vertex] Settings YAML (infra/vertex/settings.yaml); flags win over it.",
    ),
    click.option("--project", help="[vertex] Google Cloud project."),
    click.option("--region", help="[vertex] Vertex AI region."),
    click.option("--api-endpoint", help="[vertex] Vertex AI API endpoint (default: the region's)."),
]


def _target_option(required: bool = True, choices: tuple[str, ...] = TARGETS, default: str | None = None) -> Callable[[FC], FC]:
    return click.option(
        "--target",
        type=click.Choice(list(choices)),
        required=required,
        default=default,
        show_default=default is not None,
        help="Where the run is: " + ", ".join(choices) + ".",
    )


def build_runner(
    target: str,
    *,
    host: str | None = None,
    namespace: str | None = None,
    token: str | None = None,
    settings_path: str | None = None,
    project: str | None = None,
    region: str | None = None,
    api_endpoint: str | None = None,
    experiment: str | None = None,
    pipeline_name: str | None = None,
    pipeline_root: str | None = None,
    service_account: str | None = None,
    labels: dict[str, str] | None = None,
) -> Runner:
    """The Runner the connection options of a command name (every run command goes through it).

    Args:
        target: ``kubeflow`` or ``vertex``.
        host: [kubeflow] the KFP API endpoint.
        namespace: [kubeflow] profile namespace.
        token: [kubeflow] bearer token.
        settings_path: [vertex] settings YAML.
        project: [vertex] project.
        region: [vertex] region.
        api_endpoint: [vertex] API endpoint.
        experiment: [kubeflow] experiment.
        pipeline_name: [kubeflow] pipeline name to upload under.
        pipeline_root: [vertex] gs:// pipeline root.
        service_account: service account of the runs.
        labels: [vertex] extra job labels.

    Returns:
        The runner.
    """
    if target == "kubeflow":
        from ..runners.kubeflow import KubeflowConnection, KubeflowRunner

        if not host:
            raise click.UsageError("--target kubeflow needs --host (or KF_PIPELINES_ENDPOINT)")
        conn = KubeflowConnection(host=host, namespace=namespace, token=token)
        return KubeflowRunner(conn, experiment=experiment, pipeline_name=pipeline_name, service_account=service_account)
    from ..runners.vertex import VertexRunner, load_settings

    return VertexRunner(
        project,
        region,
        settings=load_settings(settings_path) if settings_path else None,
        pipeline_root=pipeline_root,
        service_account=service_account,
        api_endpoint=api_endpoint,
        labels=labels,
    )


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


def _on_change(as_json: bool) -> Callable[[SubmittedRun], None] | None:
    if as_json:
        return None
    return lambda run: click.echo(f"{run.target} run {run.run_id}: {run.state}", err=True)


# -- submit -----------------------------------------------------------------------------


@click.command("submit")
@click.argument("spec", type=click.Path(dir_okay=False))
@_target_option()
@apply_options(_kubeflow_options)
@click.option("--experiment", help="[kubeflow] Experiment (got or created; default: the spec's name).")
@click.option("--pipeline-name", help="[kubeflow] Pipeline name to upload under (default: the spec's name).")
@click.option("--run-name", help="[kubeflow] Run display name (default: <name>-<UTC time>).")
@apply_options(_vertex_options)
@click.option("--pipeline-root", help="[vertex] gs:// pipeline root (default: the spec's gs:// root, else the settings').")
@click.option("--job-id", help="[vertex] Pipeline job id (default: <name>-<UTC time>-<random>).")
@click.option("--label", "labels", multiple=True, metavar="KEY=VALUE", help="[vertex] Extra job label (repeatable).")
@click.option("--service-account", help="Service account the run's tasks use (Kubernetes SA on Kubeflow, IAM SA on Vertex AI).")
@until_option(STEPS, help=f"Last step to include ({', '.join(STEPS)}).")
@click.option("--strict", is_flag=True, help="Fail instead of warning when the spec names local paths or SQLite metadata.")
@click.option("--wait", "wait_", is_flag=True, help="Wait until the run finishes; exit 1 unless it succeeded.")
@click.option("--timeout", default=3600.0, show_default=True, type=float, help="With --wait: seconds to wait at most.")
@click.option("--poll", default=15.0, show_default=True, type=float, help="With --wait: seconds between polls.")
@click.option("--json", "as_json", is_flag=True, help="Print the run as JSON.")
@friendly
def submit_cmd(
    spec: str,
    target: str,
    host: str | None,
    namespace: str | None,
    token: str | None,
    experiment: str | None,
    pipeline_name: str | None,
    run_name: str | None,
    settings_path: str | None,
    project: str | None,
    region: str | None,
    api_endpoint: str | None,
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
    runner = build_runner(
        target,
        host=host,
        namespace=namespace,
        token=token,
        settings_path=settings_path,
        project=project,
        region=region,
        api_endpoint=api_endpoint,
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
@_target_option()
@apply_options(_kubeflow_options)
@apply_options(_vertex_options)
@click.option("--json", "as_json", is_flag=True, help="Print the run as JSON.")
@friendly
def runs_show(
    run_id: str,
    target: str,
    host: str | None,
    namespace: str | None,
    token: str | None,
    settings_path: str | None,
    project: str | None,
    region: str | None,
    api_endpoint: str | None,
    as_json: bool,
) -> None:
    """Show the state of a run on Kubeflow (run id) or Vertex AI (pipeline job id)."""
    runner = build_runner(
        target,
        host=host,
        namespace=namespace,
        token=token,
        settings_path=settings_path,
        project=project,
        region=region,
        api_endpoint=api_endpoint,
    )
    _echo_run(runner.get(run_id), as_json)


@click.command("wait")
@click.argument("run_id")
@_target_option()
@apply_options(_kubeflow_options)
@apply_options(_vertex_options)
@click.option("--timeout", default=3600.0, show_default=True, type=float, help="Seconds to wait at most.")
@click.option("--poll", default=15.0, show_default=True, type=float, help="Seconds between polls.")
@click.option("--json", "as_json", is_flag=True, help="Print the finished run as JSON.")
@friendly
def runs_wait(
    run_id: str,
    target: str,
    host: str | None,
    namespace: str | None,
    token: str | None,
    settings_path: str | None,
    project: str | None,
    region: str | None,
    api_endpoint: str | None,
    timeout: float,
    poll: float,
    as_json: bool,
) -> None:
    """Wait until a run finishes; exit 1 unless it succeeded (2 when still running after --timeout)."""
    from components.core.errors import PipelineRunError

    runner = build_runner(
        target,
        host=host,
        namespace=namespace,
        token=token,
        settings_path=settings_path,
        project=project,
        region=region,
        api_endpoint=api_endpoint,
    )
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
@_target_option()
@apply_options(_kubeflow_options)
@apply_options(_vertex_options)
@click.option("--json", "as_json", is_flag=True, help="Print the run as JSON.")
@friendly
def runs_cancel(
    run_id: str,
    target: str,
    host: str | None,
    namespace: str | None,
    token: str | None,
    settings_path: str | None,
    project: str | None,
    region: str | None,
    api_endpoint: str | None,
    as_json: bool,
) -> None:
    """Stop a run on Kubeflow (terminate) or Vertex AI (cancel); a finished run keeps its state."""
    runner = build_runner(
        target,
        host=host,
        namespace=namespace,
        token=token,
        settings_path=settings_path,
        project=project,
        region=region,
        api_endpoint=api_endpoint,
    )
    _echo_run(runner.cancel(run_id), as_json, "cancelled")


def _list_remote(
    target: str,
    host: str | None,
    namespace: str | None,
    token: str | None,
    settings_path: str | None,
    project: str | None,
    region: str | None,
    api_endpoint: str | None,
    experiment: str | None,
    pipeline: str | None,
    limit: int,
    as_json: bool,
) -> None:
    from ..render import render_table

    runner = build_runner(
        target,
        host=host,
        namespace=namespace,
        token=token,
        settings_path=settings_path,
        project=project,
        region=region,
        api_endpoint=api_endpoint,
        experiment=experiment,
    )
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
@click.option("--target", type=click.Choice(["local", *TARGETS]), default="local", show_default=True, help="Where the runs are.")
@apply_options(_kubeflow_options)
@apply_options(_vertex_options)
@apply_options(_list_options)
@friendly
def runs_list(
    spec: str | None,
    metadata: str | None,
    root: str,
    target: str,
    host: str | None,
    namespace: str | None,
    token: str | None,
    settings_path: str | None,
    project: str | None,
    region: str | None,
    api_endpoint: str | None,
    experiment: str | None,
    pipeline: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """List local runs: status, start, duration, steps and outcome (pushed version or why not).

    With --target kubeflow or vertex, list the newest runs there instead.
    """
    if target != "local":
        _list_remote(target, host, namespace, token, settings_path, project, region, api_endpoint, experiment, pipeline, limit, as_json)
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
    pushed version, or why the model was not pushed.

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
    pushed = push_outcome(store.artifacts_of_run(run_id))
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
