"""Commands on a spec's training pipeline: ``validate-spec``, ``compile``, ``run`` and ``demo``."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from components.core.errors import SpecError

from ..steps import STEPS, training_steps
from ._common import check_until, echo_spec_error, friendly, load_spec_arg, until_option

__all__ = ["compile_cmd", "demo_cmd", "run_cmd", "validate_spec"]


@click.command("validate-spec")
@click.argument("spec", type=click.Path(dir_okay=False))
def validate_spec(spec: str) -> None:
    """Check a pipeline spec and report every problem with its key path (local files named must exist)."""
    from components.core.spec import check_local_paths, dump_spec

    try:
        parsed = load_spec_arg(spec)
        missing = check_local_paths(parsed)
        if missing:
            raise SpecError(missing, spec)
    except SpecError as e:
        echo_spec_error(e, spec)
        sys.exit(1)
    inferred = "" if "format" in parsed.data.model_fields_set else " (inferred)"
    click.echo(f"{spec}: valid {parsed.task} pipeline '{parsed.name}'")
    click.echo(f"data: {parsed.data.source} read as {parsed.data.format}{inferred}")
    if parsed.steps:
        from components.user_step.api import check_function_steps

        click.echo("steps: " + ", ".join(f"{s.name} (after {s.after})" for s in parsed.steps))
        # a step's package may be installed only in the cluster's image: say so, but the spec is valid
        for path, msg in check_function_steps(parsed.steps):
            click.echo(f"warning: {path}: {msg}", err=True)
    if os.environ.get("CVPIPE_SHOW_SPEC"):
        click.echo(dump_spec(parsed))


@click.command("compile")
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("-o", "--output", default="pipeline.yaml", show_default=True, help="Compiled KFP v2 pipeline YAML.")
@until_option(None, help=f"Last step to include ({', '.join(STEPS)}, or one of the spec's steps).")
@friendly
def compile_cmd(spec: str, output: str, until: str | None) -> None:
    """Compile a spec into a KFP v2 pipeline YAML for Kubeflow or Vertex AI."""
    from ..compiler import compile_spec

    parsed = load_spec_arg(spec)
    check_until(until, training_steps(parsed))
    path = compile_spec(parsed, output, until=until)
    click.echo(f"wrote {path}")


@click.command("run")
@click.argument("spec", type=click.Path(dir_okay=False))
@until_option(None, help=f"Last step to run ({', '.join(STEPS)}, or one of the spec's steps).")
@click.option("-v", "--verbose", is_flag=True, help="Show everything: each task's executor input, full log and outputs, TensorFlow's logs.")
@friendly
def run_cmd(spec: str, until: str | None, verbose: bool) -> None:
    """Run a spec's pipeline locally with kfp.local (no cluster).

    Prints one line per step as it starts and ends (status, time, the step's
    one-line result), a live line for the running step on a terminal, then
    whether the model was pushed and why; ``-v`` prints everything.
    """
    import contextlib

    from rich.console import Console

    from components.core.spec import check_local_paths

    from ..render import render_summary
    from ..runners.local import run_local
    from .progress import StepFeed
    from .runs import push_outcome

    parsed = load_spec_arg(spec)
    check_until(until, training_steps(parsed))
    missing = check_local_paths(parsed)
    if parsed.steps:  # a local run imports every function step: fail now rather than after the steps before it
        from components.user_step.api import check_function_steps

        missing += check_function_steps(parsed.steps)
    if missing:
        raise SpecError(missing, spec)
    if verbose:
        summary = run_local(parsed, until=until)
        click.echo(render_summary(summary))
        click.echo(f"outcome: {push_outcome(summary.artifacts) or (f'stopped after {until}' if until else 'no push step')}")
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's C++ start-up logs, in every task process
    console = Console(file=sys.stdout, highlight=False)
    names = [s.name + ("-lineage" if s.component else "") for s in parsed.steps]  # a component step's recorder task
    feed = StepFeed(console, name_width=max([12, *(len(n) for n in names)]))
    try:
        with contextlib.redirect_stdout(feed):
            summary = run_local(parsed, until=until)
    finally:
        feed.close()
    outcome = push_outcome(summary.artifacts) or (f"stopped after {until}" if until else "no push step")
    console.print(f"run {summary.run_id} succeeded in {summary.seconds:.0f}s: {outcome}", soft_wrap=True)
    console.print(f"run folder: {summary.run_dir}  (cvpipe run -v prints every task's full log)", soft_wrap=True)


@click.command("demo")
@click.option(
    "--dir", "directory", default="demo", show_default=True, type=click.Path(file_okay=False), help="Where data, spec and runs go."
)
@click.option("--num-images", default=240, show_default=True, type=int)
@until_option(STEPS, help="Last step of the training pipeline to run (stops the demo there).")
@click.option("--skip-continuous-eval", is_flag=True, help="Stop after the training runs.")
@friendly
def demo_cmd(directory: str, num_images: int, until: str | None, skip_continuous_eval: bool) -> None:
    """Generate a dataset, run the training pipeline locally end to end, print the summary and lineage."""
    from ..demo import run_demo

    run_demo(Path(directory), num_images=num_images, until=until, echo=click.echo, continuous_eval=not skip_continuous_eval)
