"""``cvpipe datasets``: generated datasets for demos and tests."""

from __future__ import annotations

from pathlib import Path

import click

from ._common import friendly

__all__ = ["datasets_group", "datasets_synth"]


@click.group("datasets")
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
        # one line per option (a WIDTHxHEIGHT that fails fails for both parts: say it once)
        problems = dict.fromkeys(f"--{str(err['loc'][0]).replace('_', '-')}: {err['msg']}" for err in e.errors() if err["loc"])
        raise click.UsageError("; ".join(problems) or str(e)) from None
    result = generate(config, Path(out_dir))
    click.echo(f"wrote {result.num_images} images, {result.num_objects} objects ({result.class_counts}) to {result.out_dir}")
