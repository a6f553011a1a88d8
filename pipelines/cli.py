"""The ``cvpipe`` command line.

Commands import the TensorFlow/kfp stack only when they need it, so
``cvpipe --help`` and ``cvpipe validate-spec`` answer in about a second.
Errors cvpipe raises on purpose are printed as one clear message (exit 1),
never a stack trace; set ``CVPIPE_DEBUG=1`` to see the trace.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from components.core.cli import friendly
from components.core.errors import SpecError

__all__ = ["cli", "main"]

F = TypeVar("F", bound=Callable[..., Any])


def _load(path: str) -> Any:
    from components.core.spec import load_spec

    return load_spec(path)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="cvpipe")
def cli() -> None:
    """cvpipe: declarative MLOps pipelines for computer vision on Kubeflow Pipelines."""


@cli.command("validate-spec")
@click.argument("spec", type=click.Path(dir_okay=False))
def validate_spec(spec: str) -> None:
    """Check a pipeline spec and report every problem with its key path."""
    from components.core.spec import dump_spec

    try:
        parsed = _load(spec)
    except SpecError as e:
        click.echo(f"{spec}: {len(e.problems)} problem(s)", err=True)
        for path, msg in e.problems:
            click.echo(f"  {path}: {msg}" if path else f"  {msg}", err=True)
        sys.exit(1)
    click.echo(f"{spec}: valid {parsed.task} pipeline '{parsed.name}'")
    if os.environ.get("CVPIPE_SHOW_SPEC"):
        click.echo(dump_spec(parsed))


@cli.command("compile")
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("-o", "--output", default="pipeline.yaml", show_default=True, help="Compiled KFP v2 pipeline YAML.")
@click.option("--until", default=None, help="Last step to include (ingest, validate, transform, train, evaluate, push).")
@friendly
def compile_cmd(spec: str, output: str, until: str | None) -> None:
    """Compile a spec into a KFP v2 pipeline YAML for Kubeflow or Vertex AI."""
    from .compiler import compile_spec

    path = compile_spec(_load(spec), output, until=until)
    click.echo(f"wrote {path}")


@cli.command("run")
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--until", default=None, help="Last step to run (ingest, validate, transform, train, evaluate, push).")
@friendly
def run_cmd(spec: str, until: str | None) -> None:
    """Run a spec's pipeline locally with kfp.local (no cluster)."""
    from .render import render_summary
    from .runners.local import run_local

    summary = run_local(_load(spec), until=until)
    click.echo(render_summary(summary))


def _store(spec: str | None, metadata: str | None, root: str) -> Any:
    from components.core.lineage import LineageStore

    if spec:
        s = _load(spec)
        return LineageStore(s.runtime.metadata.url, base_dir=s.runtime.root)
    return LineageStore(metadata or "sqlite:///mlmd.sqlite", base_dir=root)


_store_options = [
    click.option("--spec", "spec", default=None, type=click.Path(dir_okay=False), help="Use this spec's metadata store."),
    click.option("--metadata", default=None, help="Metadata URL (sqlite:///path or mysql://user@host:port/db)."),
    click.option("--root", default="runs", show_default=True, help="Run root a relative SQLite path is resolved against."),
]


def _with_store_options(fn: F) -> F:
    for opt in reversed(_store_options):
        fn = opt(fn)
    return fn


@cli.command("lineage")
@click.argument("ref")
@_with_store_options
@friendly
def lineage_cmd(ref: str, spec: str | None, metadata: str | None, root: str) -> None:
    """Print the upstream lineage of an artifact id or a model NAME:VERSION."""
    from .lookup import resolve_artifact

    store = _store(spec, metadata, root)
    artifact = resolve_artifact(store, ref)
    click.echo(store.upstream(artifact.id).render())


@cli.group("runs")
def runs_group() -> None:
    """Pipeline runs recorded in the metadata store."""


@runs_group.command("list")
@_with_store_options
@friendly
def runs_list(spec: str | None, metadata: str | None, root: str) -> None:
    """List local runs with their steps."""
    from .render import render_table

    store = _store(spec, metadata, root)
    rows = []
    for run_id in store.run_ids():
        execs = store.executions(run_id=run_id)
        rows.append([run_id, len(execs), " -> ".join(e["component"] for e in execs)])
    click.echo(render_table("runs", ["run", "steps", "components"], rows))


@cli.group("datasets")
def datasets_group() -> None:
    """Generated datasets for demos and tests."""


@datasets_group.command("synth")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Output directory.")
@click.option("--task", default="detection", show_default=True, type=click.Choice(["detection", "classification", "segmentation"]))
@click.option("--num-images", default="240", show_default=True, help="Number of images.")
@click.option("--image-size", default="160x160", show_default=True, help="WIDTHxHEIGHT in pixels.")
@click.option("--classes", default=None, help="Comma-separated class names (default circle,square,triangle,star).")
@click.option("--objects-per-image", default=None, help="MIN-MAX objects per non-empty image (default 1-3).")
@click.option("--seed", default="0", show_default=True, help="Random seed (same seed, same bytes).")
@click.option("--brightness", default=None, help="Exposure factor (<1 darker), for shifted sets.")
@click.option("--noise", default=None, help="Gaussian pixel noise, fraction of 255.")
@click.option("--class-weights", default=None, help="Class mix, e.g. circle=3,star=0.")
@click.option("--crowd-fraction", default=None, help="Fraction of images with one iscrowd region.")
@click.option("--empty-fraction", default=None, help="Fraction of images without objects.")
@friendly
def datasets_synth(out_dir: str, **options: str | None) -> None:
    """Compose logo-like objects onto photographs bundled with scikit-image, with exact boxes and masks.

    Options are the fields of ``components.synth.SynthConfig`` and take its string forms.
    """
    from pydantic import ValidationError

    from components.synth.core import SynthConfig, generate

    given = {k: v for k, v in options.items() if v is not None}
    try:
        config = SynthConfig.model_validate(given)
    except ValidationError as e:
        problems = "; ".join(f"--{'-'.join(str(p) for p in err['loc']).replace('_', '-')}: {err['msg']}" for err in e.errors())
        raise click.UsageError(problems) from None
    result = generate(config, Path(out_dir))
    click.echo(f"wrote {result.num_images} images, {result.num_objects} objects ({result.class_counts}) to {result.out_dir}")


@cli.command("demo")
@click.option(
    "--dir", "directory", default="demo", show_default=True, type=click.Path(file_okay=False), help="Where data, spec and runs go."
)
@click.option("--num-images", default=240, show_default=True, type=int)
@click.option("--until", default=None, help="Last step of the training pipeline to run (stops the demo there).")
@click.option("--skip-continuous-eval", is_flag=True, help="Stop after the training runs.")
@friendly
def demo_cmd(directory: str, num_images: int, until: str | None, skip_continuous_eval: bool) -> None:
    """Generate a dataset, run the training pipeline locally end to end, print the summary and lineage."""
    from .demo import run_demo

    run_demo(Path(directory), num_images=num_images, until=until, echo=click.echo, continuous_eval=not skip_continuous_eval)


@cli.group("models")
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

    click.echo(list_text(open_registry(_load(spec)), name, include_archived=archived))


@models_group.command("show")
@click.argument("ref")
@_spec_option
@friendly
def models_show(ref: str, spec: str) -> None:
    """Show one version (NAME:VERSION, NAME@ALIAS or NAME for the newest)."""
    from components.registry.cli_ops import open_registry, show_text

    click.echo(show_text(open_registry(_load(spec)), ref))


@models_group.command("promote")
@click.argument("ref")
@click.option("--alias", default="champion", show_default=True, help="Alias to move onto the version.")
@_spec_option
@friendly
def models_promote(ref: str, alias: str, spec: str) -> None:
    """Point an alias at a version (each consuming application can pin its own alias)."""
    from components.registry.cli_ops import open_registry, promote_text

    click.echo(promote_text(open_registry(_load(spec)), ref, alias=alias))


@models_group.command("rollback")
@click.argument("ref")
@click.option("--alias", default="champion", show_default=True)
@_spec_option
@friendly
def models_rollback(ref: str, alias: str, spec: str) -> None:
    """Move an alias back to the version it pointed to before."""
    from components.registry.cli_ops import open_registry, rollback_text

    click.echo(rollback_text(open_registry(_load(spec)), ref, alias=alias))


@models_group.command("archive")
@click.argument("ref")
@click.option("--restore", is_flag=True, help="Un-archive instead.")
@_spec_option
@friendly
def models_archive(ref: str, restore: bool, spec: str) -> None:
    """Archive a version (it keeps its files and lineage but no alias can point at it)."""
    from components.registry.cli_ops import archive_text, open_registry

    click.echo(archive_text(open_registry(_load(spec)), ref, restore=restore))


@models_group.command("tree")
@click.argument("name", required=False)
@_spec_option
@friendly
def models_tree(name: str | None, spec: str) -> None:
    """Draw the fork hierarchy of models warm-started from parents, with their datasets."""
    from components.registry.cli_ops import open_registry, tree_text

    click.echo(tree_text(open_registry(_load(spec)), name))


def _register_loop_commands() -> None:
    # Commands of the continuous-evaluation loop live beside their components;
    # importing these modules loads only click (the stack loads inside the commands).
    from components.predict.cli import predict_cmd, serve_cmd
    from components.sample.cli import label_group

    cli.add_command(predict_cmd)
    cli.add_command(serve_cmd)
    cli.add_command(label_group)

    from .cli_ce import ce_group, schedule_cmd, scheduler_cmd
    from .cli_cluster import register_cluster_commands

    cli.add_command(schedule_cmd)
    cli.add_command(scheduler_cmd)
    cli.add_command(ce_group)
    register_cluster_commands(cli)


_register_loop_commands()


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="cvpipe")


if __name__ == "__main__":
    main()
