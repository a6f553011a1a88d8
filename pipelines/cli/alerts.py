"""On-call commands: ``cvpipe alerts list | show | ack | silence | unsilence`` over the incident log.

The incident log is the JSON-lines alert log of a spec's ``monitoring.alerts``
(``--spec SPEC``) or a log file named directly (``--log PATH``). With
Alertmanager sinks configured in the spec, ``silence`` and ``unsilence``
create and expire the silence in every Alertmanager too (its API v2), so it
shows in Alertmanager's UI and in ``amtool silence query``. ``list`` and
``show`` only read: they create nothing.

The group is registered by :mod:`pipelines.cli.main`.
"""

from __future__ import annotations

import getpass
import json
import os
from collections.abc import Callable
from typing import Any, TypeVar

import click

from ._common import friendly, load_spec_arg

__all__ = ["alerts_group"]

F = TypeVar("F", bound=Callable[..., Any])


def _where(fn: F) -> F:
    fn = click.option(
        "--alertmanager", "alertmanager", default=None, help="With --log: an Alertmanager URL that silences are also created in."
    )(fn)
    fn = click.option("--log", "log", default=None, type=click.Path(dir_okay=False), help="The incident log file (instead of --spec).")(fn)
    fn = click.option(
        "--spec", "spec", default=None, type=click.Path(dir_okay=False), help="Spec whose monitoring.alerts names the log and sinks."
    )(fn)
    return fn


def _dispatcher(spec: str | None, log: str | None, alertmanager: str | None = None) -> Any:
    from components.alert.config import AlertConfig
    from components.alert.dispatcher import AlertDispatcher
    from components.core.errors import CvpipeError

    if (spec is None) == (log is None):
        raise click.UsageError("name the incident log with exactly one of --spec SPEC or --log PATH")
    if spec is None:
        sinks = [{"type": "alertmanager", "url": alertmanager}] if alertmanager else []
        return AlertDispatcher(AlertConfig.model_validate({"log": str(log), "sinks": sinks}))
    if alertmanager:
        raise click.UsageError("--alertmanager goes with --log; with --spec the spec's alert sinks are used")
    parsed = load_spec_arg(spec)
    if parsed.monitoring is None:
        raise CvpipeError(f"{spec}: the spec has no monitoring section, so it has no incident log")
    return AlertDispatcher(parsed.monitoring.alert_config(parsed.runtime.root))


def _user() -> str:
    try:
        return os.environ.get("CVPIPE_USER") or getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


@click.group("alerts")
def alerts_group() -> None:
    """Incidents for on-call: list, show, acknowledge, silence."""


@alerts_group.command("list")
@_where
@click.option("--all", "show_all", is_flag=True, help="Resolved incidents too (default: firing only).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per incident.")
@friendly
def alerts_list(spec: str | None, log: str | None, alertmanager: str | None, show_all: bool, as_json: bool) -> None:
    """List incidents, newest first: id, state, severity, model, cause, summary."""
    d = _dispatcher(spec, log, alertmanager)
    incidents = [i for i in d.incidents() if show_all or i.status == "firing"]
    for i in incidents:
        flags = ",".join(
            f for f, on in (("acked", i.acked), (f"silenced:{i.silenced_by.id if i.silenced_by else ''}", i.silenced_by)) if on
        )
        if as_json:
            click.echo(
                json.dumps(
                    {
                        "id": i.incident_id,
                        "key": i.key,
                        "status": i.status,
                        "severity": i.alert.severity,
                        "model": i.alert.model,
                        "version": i.alert.version,
                        "cause": i.alert.cause,
                        "summary": i.alert.summary,
                        "acked_by": i.state.get("acked_by"),
                        "silenced_by": i.silenced_by.id if i.silenced_by else None,
                        "last": i.history[-1][1],
                    }
                )
            )
        else:
            click.echo(
                f"{i.incident_id}  {i.status:<9} {i.alert.severity:<8} {i.history[-1][1][:16]}  {i.alert.summary}"
                + (f"  [{flags}]" if flags else "")
            )
    if not as_json:
        if not incidents:
            click.echo("no firing incident" if not show_all else "no incident")
        active = [s for s in d.log.silences() if s.active(_now())]
        for s in active:
            click.echo(
                f"silence {s.id} until {s.ends_at:%Y-%m-%d %H:%M} UTC by {s.created_by}: {', '.join(map(str, s.matchers))} ({s.comment})"
            )


def _now() -> Any:
    from components.core.clock import utc_now

    return utc_now()


@alerts_group.command("show")
@click.argument("ref")
@_where
@friendly
def alerts_show(ref: str, spec: str | None, log: str | None, alertmanager: str | None) -> None:
    """Show one incident (id, id prefix or dedup key) as on-call sees it, with its history."""
    from components.alert.incident import incident_text

    d = _dispatcher(spec, log, alertmanager)
    i = d.find(ref)
    alert = i.alert.model_copy(update={"status": i.status})
    click.echo(incident_text(alert))
    if i.acked:
        click.echo(
            f"Acknowledged by {i.state.get('acked_by')} at {i.state.get('acked_at')}: {i.state.get('ack_comment') or ''}".rstrip(": ")
        )
    if i.silenced_by is not None:
        s = i.silenced_by
        click.echo(f"Silenced by {s.id} until {s.ends_at:%Y-%m-%d %H:%M} UTC ({s.created_by}: {s.comment})")
    if i.state.get("suppressed"):
        click.echo(f"Repeats suppressed: {i.state['suppressed']}")
    click.echo("History:")
    for reason, at, a in i.history:
        click.echo(f"  {at}  {reason:<11} {a.update or a.summary}")


@alerts_group.command("ack")
@click.argument("ref")
@_where
@click.option("--by", default=None, help="Who acknowledges (default: $CVPIPE_USER or the login name).")
@click.option("-c", "--comment", default="", help="What is being done about it.")
@friendly
def alerts_ack(ref: str, spec: str | None, log: str | None, alertmanager: str | None, by: str | None, comment: str) -> None:
    """Acknowledge a firing incident: no reminders until its severity changes."""
    i = _dispatcher(spec, log, alertmanager).ack(ref, by or _user(), comment)
    click.echo(f"acknowledged {i.incident_id} ({i.key}) as {i.state['acked_by']}")


@alerts_group.command("silence")
@click.argument("ref", required=False)
@_where
@click.option("-m", "--matcher", "matchers", multiple=True, help="Label matcher: name=value, name!=value, name=~re, name!~re (repeatable).")
@click.option("-d", "--duration", default="2h", show_default=True, help="How long: 30m, 2h, 1d...")
@click.option("--by", default=None, help="Author (default: $CVPIPE_USER or the login name).")
@click.option("-c", "--comment", required=True, help="Why (shown in Alertmanager).")
@friendly
def alerts_silence(
    ref: str | None,
    spec: str | None,
    log: str | None,
    alertmanager: str | None,
    matchers: tuple[str, ...],
    duration: str,
    by: str | None,
    comment: str,
) -> None:
    """Silence incidents matching labels (or one incident: REF) for a while; Alertmanager gets the same silence."""
    from components.alert.silence import Matcher, parse_matcher
    from components.core.spec import parse_duration

    d = _dispatcher(spec, log, alertmanager)
    parsed = [parse_matcher(m) for m in matchers]
    if ref is not None:
        parsed.append(Matcher(name="dedup_key", value=d.find(ref).key))
    if not parsed:
        raise click.UsageError("give an incident id or at least one --matcher (e.g. -m model=detector -m cause=input_drift)")
    try:
        seconds = parse_duration(duration).total_seconds()
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--duration") from None
    s = d.silence(parsed, seconds, by or _user(), comment)
    where = f"; Alertmanager silence {', '.join(f'{k}={v}' for k, v in s.alertmanager_ids.items())}" if s.alertmanager_ids else ""
    click.echo(f"silence {s.id} until {s.ends_at:%Y-%m-%d %H:%M} UTC: {', '.join(map(str, s.matchers))}{where}")


@alerts_group.command("unsilence")
@click.argument("silence_id")
@_where
@click.option("--by", default=None, help="Who expires it (default: $CVPIPE_USER or the login name).")
@friendly
def alerts_unsilence(silence_id: str, spec: str | None, log: str | None, alertmanager: str | None, by: str | None) -> None:
    """Expire a silence now (in the log and in Alertmanager)."""
    s = _dispatcher(spec, log, alertmanager).unsilence(silence_id, by or _user())
    click.echo(f"silence {s.id} expired")
