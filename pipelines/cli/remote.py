"""Where a remote run lives: the Kubeflow and Vertex AI connection options every run command shares.

:func:`remote_options` adds the options to a command and hands them over as one
:class:`Remote`; :meth:`Remote.runner` (or :func:`build_runner`) turns them into
the :class:`~components.core.runs.Runner` the command then drives. ``submit``,
``runs list|show|wait|cancel`` and ``schedule`` all go through here, so an
option means the same in each.

Secrets: the Kubeflow token comes from ``CVPIPE_KFP_TOKEN`` or ``--token-file``;
``--token VALUE`` still works but is visible to every user of the machine (``ps``),
so the command warns when it is used.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
from click.core import ParameterSource

from ._common import apply_options

if TYPE_CHECKING:
    from components.core.runs import Runner

__all__ = ["TARGETS", "Remote", "build_runner", "remote_options", "target_option"]

F = TypeVar("F", bound=Callable[..., Any])
TARGETS = ("kubeflow", "vertex")

_OPTIONS = [
    click.option("--host", envvar="KF_PIPELINES_ENDPOINT", help="[kubeflow] KFP API endpoint (env KF_PIPELINES_ENDPOINT)."),
    click.option("--namespace", envvar="CVPIPE_KFP_NAMESPACE", help="[kubeflow] Profile namespace (multi-user Kubeflow)."),
    click.option(
        "--token",
        envvar="CVPIPE_KFP_TOKEN",
        help="[kubeflow] Bearer token (env CVPIPE_KFP_TOKEN; as a flag it is visible in `ps`, prefer the env or --token-file).",
    ),
    click.option(
        "--token-file",
        type=click.Path(dir_okay=False, exists=True),
        help="[kubeflow] File holding the bearer token (a mounted secret).",
    ),
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
_FIELDS = ("host", "namespace", "token", "settings_path", "project", "region", "api_endpoint")


@dataclass(frozen=True)
class Remote:
    """The connection options of one command.

    Attributes:
        host: [kubeflow] the KFP API endpoint.
        namespace: [kubeflow] profile namespace.
        token: [kubeflow] bearer token.
        settings_path: [vertex] settings YAML.
        project: [vertex] project.
        region: [vertex] region.
        api_endpoint: [vertex] API endpoint.
    """

    host: str | None = None
    namespace: str | None = None
    token: str | None = None
    settings_path: str | None = None
    project: str | None = None
    region: str | None = None
    api_endpoint: str | None = None

    def runner(self, target: str, **extra: Any) -> Runner:
        """The Runner for ``target`` with these options and a command's own (``experiment=``...).

        Args:
            target: ``kubeflow`` or ``vertex``.
            **extra: more keyword arguments of :func:`build_runner`.

        Returns:
            The runner.
        """
        return build_runner(target, **asdict(self), **extra)


def remote_options(fn: F) -> F:
    """Adds the connection options to a command and passes them as one ``remote: Remote`` argument.

    Args:
        fn: the command function; it takes ``remote`` instead of the seven options.

    Returns:
        The decorated function.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        token_file = kwargs.pop("token_file")
        values = {name: kwargs.pop(name) for name in _FIELDS}
        ctx = click.get_current_context()
        if values["token"] and ctx.get_parameter_source("token") == ParameterSource.COMMANDLINE:
            click.echo(
                "warning: --token on the command line is visible to other users (ps); use CVPIPE_KFP_TOKEN or --token-file", err=True
            )
        if token_file:
            values["token"] = Path(token_file).read_text().strip()
        return fn(*args, remote=Remote(**values), **kwargs)

    return apply_options(_OPTIONS)(wrapper)  # type: ignore[return-value]


def target_option(required: bool = True, choices: tuple[str, ...] = TARGETS, default: str | None = None) -> Callable[[F], F]:
    """The ``--target`` option: where the run is.

    Args:
        required: whether it must be given.
        choices: the targets offered.
        default: the default target.

    Returns:
        The option decorator.
    """
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
