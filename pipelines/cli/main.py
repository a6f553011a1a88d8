"""The ``cvpipe`` root group: logging, the command groups, the console-script entry point.

Each command group lives in its own module of this package and is added
here; the commands import the TensorFlow/kfp stack only when they run, so
``cvpipe --help`` and ``cvpipe validate-spec`` answer in about a second.
"""

from __future__ import annotations

import click

from components.core.log import configure_logging

from . import alerts, console, datasets, label, models, pipeline, predict, runs, schedule

__all__ = ["cli", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="cvpipe")
def cli() -> None:
    """cvpipe: declarative MLOps pipelines for computer vision on Kubeflow Pipelines."""
    # The library only creates loggers; the command line is the application that shows them.
    configure_logging()


for _command in (
    pipeline.validate_spec,
    pipeline.compile_cmd,
    pipeline.run_cmd,
    runs.lineage_cmd,
    runs.runs_group,
    datasets.datasets_group,
    pipeline.demo_cmd,
    models.models_group,
    predict.predict_cmd,
    predict.serve_cmd,
    predict.logs_group,
    label.label_group,
    schedule.schedule_cmd,
    schedule.scheduler_cmd,
    schedule.ce_group,
    runs.submit_cmd,
    alerts.alerts_group,
    console.ui_cmd,
):
    cli.add_command(_command)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="cvpipe")
