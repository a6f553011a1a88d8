"""``cvpipe ui``: serve the console (:mod:`pipelines.console`) over a spec's stores or a metadata URL.

The console is read-only unless ``$CVPIPE_CONSOLE_TOKEN`` holds a token
(never the spec: a spec is shared, a token is not); it binds to 127.0.0.1
unless ``--host`` says otherwise.
"""

from __future__ import annotations

import os

import click

from ._common import friendly, load_spec_arg

__all__ = ["ui_cmd"]


@click.command("ui")
@click.option(
    "--spec", "spec", default=None, type=click.Path(dir_okay=False), help="Spec naming the metadata store, registry and incident log."
)
@click.option(
    "--metadata",
    default=None,
    envvar="CVPIPE_METADATA",
    help="Metadata URL instead of a spec (sqlite:///path or mysql://user@host:port/db; env CVPIPE_METADATA).",
)
@click.option("--root", default="runs", show_default=True, help="With --metadata: directory a relative SQLite path is resolved against.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on (other machines reach it only if you say so).")
@click.option("--port", default=8050, show_default=True, type=click.IntRange(0, 65535), help="TCP port.")
@friendly
def ui_cmd(spec: str | None, metadata: str | None, root: str, host: str, port: int) -> None:
    """Serve the cvpipe console: models, lineage, runs, data, continuous evaluation, incidents.

    Actions (promote, roll back, archive, acknowledge, silence) need the token in
    $CVPIPE_CONSOLE_TOKEN; without it the console is read-only.
    """
    from ..console import serve
    from ..console.app import TOKEN_ENV
    from ..console.data import ConsoleData

    if spec and metadata:
        source = click.get_current_context().get_parameter_source("metadata")
        if source != click.core.ParameterSource.ENVIRONMENT:
            raise click.UsageError("give --spec SPEC or --metadata URL, not both")
        metadata = None  # $CVPIPE_METADATA is a default; a spec named on the command line wins
    if not spec and not metadata:
        raise click.UsageError("give --spec SPEC or --metadata URL (or set CVPIPE_METADATA)")
    data = ConsoleData.open(load_spec_arg(spec) if spec else None, metadata=metadata, base_dir=root)
    token = os.environ.get(TOKEN_ENV) or None
    mode = "actions allowed with the token" if token else f"read-only (set ${TOKEN_ENV} to allow actions)"
    click.echo(f"cvpipe console on http://{host}:{port}/ over {data.store.url}: {mode}", err=True)
    serve(data, host=host, port=port, token=token)
