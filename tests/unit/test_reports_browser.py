"""Every HTML report opens offline in a real browser: headless Chromium, network blocked, no console error, plots drawn.

Debian's ``chromium`` is driven by the ``playwright`` package; the fixture
installs it with apt-get when it is missing (as the MariaDB test does).
"""

from __future__ import annotations

import functools
import json
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from components.core.io import atomic_write_html
from components.core.labelmap import LabelMap
from components.core.spec import LiveMetricSpec, MetricThreshold
from components.evaluate.blessing import bless
from components.evaluate.evaluation import evaluate_detection_set
from components.evaluate.metrics_detection import Detections, GroundTruth
from components.evaluate.report import ReportSample, pr_figure, render_report, sample_image
from components.evaluate.slicing import ImageMeta

CHROMIUM = Path("/usr/bin/chromium")
LM = LabelMap.from_names(["cat", "dog", "bird"])


def _install_chromium() -> None:
    if CHROMIUM.exists():
        return
    for _ in range(30):  # dpkg may be locked by another install: wait and retry
        r = subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", "chromium"], capture_output=True, text=True)
        if r.returncode == 0:
            return
        if "lock" not in (r.stderr + r.stdout):
            subprocess.run(["apt-get", "update"], capture_output=True, check=False)
        time.sleep(2)
    raise RuntimeError(f"cannot install chromium: {r.stderr[-500:]}")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    _install_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield b
        b.close()


def _open_offline(browser: Any, page_file: Path) -> tuple[Any, list[str], list[str]]:
    """Loads a file with every non-file request aborted; returns (page, console errors, blocked URLs)."""
    page = browser.new_page()
    errors: list[str] = []
    blocked: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))

    def route(r: Any) -> None:
        url = r.request.url
        if url.startswith(("file:", "data:", "about:")):
            r.continue_()
        else:
            blocked.append(url)
            r.abort()

    page.route("**/*", route)
    page.goto(page_file.as_uri(), wait_until="load")
    return page, errors, blocked


def _drawn_images(page: Any) -> int:
    """Images that decoded (a broken or blocked image has naturalWidth 0)."""
    return int(page.evaluate("Array.from(document.images).filter(i => i.complete && i.naturalWidth > 0).length"))


def _detection_evaluation() -> tuple[Any, Any, list[ImageMeta]]:
    gt = GroundTruth.from_arrays(["a", "a", "b", "c"], [1, 2, 1, 3], [[0, 0, 20, 20], [30, 30, 20, 20], [5, 5, 30, 30], [10, 10, 15, 15]])
    dt = Detections.from_arrays(
        ["a", "a", "b", "c", "c"],
        [1, 2, 1, 3, 1],
        [[1, 1, 20, 20], [30, 30, 18, 20], [5, 5, 28, 30], [10, 10, 15, 15], [40, 40, 5, 5]],
        [0.9, 0.8, 0.7, 0.6, 0.4],
    )
    metas = [ImageMeta(image_id=i, width=64, height=64, split="test") for i in "abc"]
    return gt, dt, metas


def _evaluate_page(out: Path) -> Path:
    gt, dt, metas = _detection_evaluation()
    cand = evaluate_detection_set(gt, dt, metas, LM)
    base = evaluate_detection_set(gt, dt.select(np.array([True, False, True, True, True])), metas, LM)
    blessing = bless(cand, [MetricThreshold(metric="map_50", lower=0.5)], base, "det:1")
    samples = [
        ReportSample(
            "a",
            np.full((64, 64, 3), (0, 180, 0), np.uint8),
            np.array([[0, 0, 20, 20]]),
            ["cat"],
            np.array([[1, 1, 20, 20]]),
            ["cat"],
            [0.9],
        )
    ]
    return atomic_write_html(out / "evaluate" / "report", render_report(cand, blessing, baseline=base, samples=samples, title="demo"))


@functools.cache
def _statistics() -> tuple[Any, Any]:
    import tensorflow_data_validation as tfdv

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"brightness": rng.normal(120, 30, 200), "format": rng.choice(["jpeg", "png"], 200)})
    older = pd.DataFrame({"brightness": rng.normal(100, 30, 150), "format": rng.choice(["jpeg", "png"], 150)})
    return tfdv.generate_statistics_from_dataframe(frame, n_jobs=1), tfdv.generate_statistics_from_dataframe(older, n_jobs=1)


def _validate_page(out: Path) -> Path:
    from components.validate.report import ReportInputs, render_html

    current, previous = _statistics()
    inputs = ReportInputs(
        pipeline="demo",
        run_id="r1",
        failed=False,
        findings=[],
        images_in=200,
        images_validated=200,
        objects_in=300,
        objects_validated=300,
        schema_version=1,
        schema_source="inferred",
        statistics={"images": current},
        previous_statistics={"images": previous},
        class_counts={"cat": 150, "dog": 150},
        min_examples_per_class=12,
    )
    return atomic_write_html(out / "validate" / "report", render_html(inputs))


def _train_page(out: Path) -> Path:
    from components.train.report import write_report

    history = [
        {"epoch": e, "loss": 1.0 / (e + 1), "val_loss": 1.2 / (e + 1), "learning_rate": 1e-3, "images_per_s": 50.0} for e in range(4)
    ]
    report = {"model_name": "demo", "architecture": "compact_detector", "task": "detection", "history": history, "best_epoch": 3}
    return write_report(report, out / "train")["html"]


def _drift_page(out: Path) -> Path:
    from components.drift import DriftInputs, check_drift, write_drift_report

    rng = np.random.default_rng(3)
    ref = DriftInputs(
        predictions={"cat": 500, "dog": 500}, features={"brightness": rng.normal(120, 30, 3000)}, embeddings=rng.normal(size=(100, 8))
    )
    cur = DriftInputs(
        predictions={"cat": 900, "dog": 100},
        features={"brightness": rng.normal(150, 30, 2000)},
        embeddings=rng.normal(0.5, 1, size=(100, 8)),
    )
    start = datetime(2026, 12, 1, tzinfo=UTC)
    from components.alert import TimeWindow

    report = check_drift(ref, cur, model="m1", window=TimeWindow(start=start, end=start + timedelta(days=1)))
    return write_drift_report(report, out / "drift").html


def _live_page(out: Path) -> Path:
    from components.live_metrics import measure
    from components.live_metrics.core import render_html

    rows = []
    for i in range(40):
        box = [10.0 + i % 5, 10.0, 30.0, 30.0]
        rows.append(
            {
                "request_id": f"r{i}",
                "width": 100,
                "height": 100,
                "stratum": "random",
                "predictions": json.dumps({"task": "detection", "boxes": [box], "scores": [0.9], "class_ids": [1 + i % 2]}),
                "ground_truth": json.dumps({"task": "detection", "width": 100, "height": 100, "objects": [{"class_id": 1, "bbox": box}]}),
            }
        )
    report = measure(pd.DataFrame(rows), "detection", LM, [LiveMetricSpec(metric="recall")], None, min_labelled=0, bootstrap=20)
    return atomic_write_html(out / "live" / "report", render_html(report))


PAGES = {
    "evaluate": (_evaluate_page, "img", 3),  # PR curves, confusion matrix, a test image
    "validate": (_validate_page, "svg", 2),  # one chart per feature
    "train": (_train_page, "img", 1),
    "drift": (_drift_page, "img", 3),
    "live_metrics": (_live_page, None, 0),
}


@pytest.mark.parametrize("name", sorted(PAGES))
def test_report_opens_offline_and_draws(browser: Any, tmp_path: Path, name: str) -> None:
    make, plot, minimum = PAGES[name]
    page_file = make(tmp_path)
    assert page_file.suffix == ".html", f"{name}: a browser shows the source of {page_file.name}"
    page, errors, blocked = _open_offline(browser, page_file)
    try:
        assert blocked == [], f"{name} fetched from the network: {blocked}"
        assert errors == [], f"{name} logged console errors: {errors}"
        if plot == "img":
            assert _drawn_images(page) >= minimum
        elif plot == "svg":
            assert page.locator("figure.stat-plot svg rect.bar").count() > 0
            assert page.locator("figure.stat-plot").count() >= minimum
        assert page.locator("h1").count() + page.locator("h2").count() > 0
    finally:
        page.close()


def test_the_tfdv_facets_view_is_not_used_because_it_fetches_scripts(tmp_path: Path) -> None:
    text = _validate_page(tmp_path).read_text()
    assert "<script" not in text and "facets" not in text.lower() and "https://" not in text


# -- point 16: the evaluate report reads well ------------------------------------------------------


def test_pr_legend_sits_beside_the_curves() -> None:
    gt, dt, metas = _detection_evaluation()
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = pr_figure(evaluate_detection_set(gt, dt, metas, LM))
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    ax = fig.axes[0]
    legend = ax.get_legend().get_window_extent(renderer)
    assert not legend.overlaps(ax.get_window_extent(renderer))


def test_support_is_a_count_and_wide_tables_scroll() -> None:
    gt, dt, metas = _detection_evaluation()
    cand = evaluate_detection_set(gt, dt, metas, LM)
    page = render_report(cand, bless(cand, []), title="t")
    support = cand.per_class["cat"]["support"]
    assert f"<td>{support:.0f}</td>" in page and f"{support:.4f}" not in page
    assert page.count("<table>") == page.count("<div class='scroll'><table>")


def test_thumbnail_labels_are_readable_on_shapes_of_their_colour() -> None:
    green = np.zeros((64, 64, 3), np.uint8)
    green[:, :] = (0, 200, 0)  # a green logo filling the image, as in the demo
    s = ReportSample("a", green, np.array([[10, 20, 40, 30]]), ["cat"], np.zeros((0, 4)), [], [])
    img = np.asarray(sample_image(s).convert("L"), dtype=np.float64)
    strip = img[8:20, 12:40]  # the label above the true box
    assert strip.max() - strip.min() > 120, "label text must contrast with its background"
    assert (strip > 230).any()  # white text
