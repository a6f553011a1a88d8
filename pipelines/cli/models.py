"""``cvpipe models``: the model registry a spec names (versions, aliases, rollback, fork tree).

The text each command prints comes from :mod:`components.registry.cli_ops`.
"""

from __future__ import annotations

import click

from ._common import friendly, load_spec_arg

__all__ = ["models_group"]


@click.group("models")
def models_group() -> None:
    """The model registry named by a spec: versions, aliases, rollback, fork tree."""


_spec_option = click.option(
    "--spec", "spec", required=True, type=click.Path(dir_okay=False), help="Spec naming the registry and metadata store."
)


@models_group.command("list")
@click.argument("name", required=False)
@click.option("--archived", is_flag=True, help="Include archived versions.")
@_spec_option
@friendly
def models_list(name: str | None, archived: bool, spec: str) -> None:
    """List models, or the versions of one model."""
    from components.registry.cli_ops import list_text, open_registry

    click.echo(list_text(open_registry(load_spec_arg(spec), create=False), name, include_archived=archived))


@models_group.command("show")
@click.argument("ref")
@_spec_option
@friendly
def models_show(ref: str, spec: str) -> None:
    """Show one version (NAME:VERSION, NAME@ALIAS or NAME for the newest)."""
    from components.registry.cli_ops import open_registry, show_text

    click.echo(show_text(open_registry(load_spec_arg(spec), create=False), ref))


@models_group.command("promote")
@click.argument("ref")
@click.option("--alias", default="champion", show_default=True, help="Alias to move onto the version.")
@_spec_option
@friendly
def models_promote(ref: str, alias: str, spec: str) -> None:
    """Point an alias at a version (each consuming application can pin its own alias)."""
    from components.registry.cli_ops import open_registry, promote_text

    click.echo(promote_text(open_registry(load_spec_arg(spec), create=False), ref, alias=alias))


@models_group.command("rollback")
@click.argument("ref")
@click.option("--alias", default="champion", show_default=True)
@_spec_option
@friendly
def models_rollback(ref: str, alias: str, spec: str) -> None:
    """Move an alias back to the version it pointed to before."""
    from components.registry.cli_ops import open_registry, rollback_text

    click.echo(rollback_text(open_registry(load_spec_arg(spec), create=False), ref, alias=alias))


@models_group.command("archive")
@click.argument("ref")
@click.option("--restore", is_flag=True, help="Un-archive instead.")
@_spec_option
@friendly
def models_archive(ref: str, restore: bool, spec: str) -> None:
    """Archive a version (it keeps its files and lineage but no alias can point at it)."""
    from components.registry.cli_ops import archive_text, open_registry

    click.echo(archive_text(open_registry(load_spec_arg(spec), create=False), ref, restore=restore))


@models_group.command("tree")
@click.argument("name", required=False)
@_spec_option
@friendly
def models_tree(name: str | None, spec: str) -> None:
    """Draw the fork hierarchy of models warm-started from parents, with their datasets."""
    from components.registry.cli_ops import open_registry, tree_text

    click.echo(tree_text(open_registry(load_spec_arg(spec), create=False), name))
