"""The evaluation report: one self-contained HTML file, and the KFP metrics content.

:func:`render_report` writes PR curves (detection), the confusion matrix, a
per-class table, a slice table, the threshold table with pass/fail and a grid
of test images with true and predicted boxes, masks or labels drawn. Every
image is a PNG embedded as base64, so the file opens anywhere (KFP's HTML
viewer, a mail attachment) with nothing beside it.

:func:`kfp_scalars` and :func:`kfp_confusion` give what the component logs to
KFP's ``Metrics`` and ``ClassificationMetrics`` artifacts.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from components.core.catalog import COUNT_METRICS

from .blessing import Blessing
from .evaluation import ModelEvaluation

__all__ = ["ReportSample", "kfp_confusion", "kfp_scalars", "pr_figure", "render_report", "sample_image"]


@dataclass
class ReportSample:
    """One test image to draw in the report.

    Attributes:
        image_id: the image's id.
        image: ``[H, W, 3]`` uint8 pixels.
        true_boxes: ``[N, 4]`` true boxes ``x, y, w, h`` in pixels of ``image``.
        true_labels: class name per true box.
        pred_boxes: ``[M, 4]`` predicted boxes ``x, y, w, h``.
        pred_labels: class name per predicted box.
        pred_scores: score per predicted box.
        true_mask: ``[H, W]`` true class ids (segmentation), or None.
        pred_mask: ``[H, W]`` predicted class ids, or None.
        true_class: the true class name (classification), or None.
        pred_class: the predicted class name and score (classification), or None.
    """

    image_id: str
    image: np.ndarray
    true_boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))
    true_labels: Sequence[str] = ()
    pred_boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))
    pred_labels: Sequence[str] = ()
    pred_scores: Sequence[float] = ()
    true_mask: np.ndarray | None = None
    pred_mask: np.ndarray | None = None
    true_class: str | None = None
    pred_class: str | None = None


def _png(fig: object) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")  # type: ignore[attr-defined]
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _img_tag(b64: str, alt: str, width: int | None = None) -> str:
    w = f' width="{width}"' if width else ""
    return f'<img alt="{html.escape(alt)}"{w} src="data:image/png;base64,{b64}">'


def _pr_figure(ev: ModelEvaluation, baseline: ModelEvaluation | None) -> str | None:
    fig = pr_figure(ev, baseline)
    return None if fig is None else _png(fig)


def pr_figure(ev: ModelEvaluation, baseline: ModelEvaluation | None = None) -> Any:
    """The precision-recall figure (matplotlib), its legend beside the axes so it never covers a curve.

    Args:
        ev: the candidate's evaluation.
        baseline: the baseline's evaluation, if any.

    Returns:
        The figure, or None without PR curves.
    """
    if not ev.pr_curves:
        return None
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8.5, 4.5))
    ax = fig.subplots()
    rec = ev.pr_curves["recall"]
    for name, prec in ev.pr_curves.items():
        if name in ("recall", "mean") or (prec and prec[0] < 0):
            continue
        ax.plot(rec, prec, linewidth=1, alpha=0.6, label=name)
    if ev.pr_curves["mean"] and ev.pr_curves["mean"][0] >= 0:
        ax.plot(rec, ev.pr_curves["mean"], color="black", linewidth=2.5, label="mean (candidate)")
    if baseline is not None and baseline.pr_curves and baseline.pr_curves["mean"][0] >= 0:
        ax.plot(rec, baseline.pr_curves["mean"], color="grey", linestyle="--", linewidth=2, label="mean (baseline)")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_title("Precision-recall at IoU 0.5 (interpolated, COCO)")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, ncol=1 if len(ax.lines) <= 16 else 2)
    return fig


def _confusion_figure(ev: ModelEvaluation) -> str | None:
    if not ev.confusion_matrix:
        return None
    from matplotlib.figure import Figure

    cm = np.asarray(ev.confusion_matrix, dtype=np.float64)
    labels = ev.confusion_labels
    n = len(labels)
    rows = cm.sum(axis=1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    size = min(12.0, 2.5 + 0.45 * n)
    fig = Figure(figsize=(size, size))
    ax = fig.subplots()
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), labels=labels, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(n), labels=labels, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if n <= 30:
        for i in range(n):
            for j in range(n):
                if cm[i, j]:
                    ax.text(j, i, str(int(cm[i, j])), ha="center", va="center", fontsize=6, color="white" if norm[i, j] > 0.5 else "black")
    ax.set_title("Confusion matrix (colour: share of the true row)")
    return _png(fig)


_PALETTE = np.array(
    [
        [0, 0, 0],
        [230, 25, 75],
        [60, 180, 75],
        [255, 225, 25],
        [0, 130, 200],
        [245, 130, 48],
        [145, 30, 180],
        [70, 240, 240],
        [240, 50, 230],
        [210, 245, 60],
    ],
    dtype=np.uint8,
)


def _overlay(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    colours = _PALETTE[np.asarray(mask, dtype=np.int64) % len(_PALETTE)]
    fg = (np.asarray(mask) > 0) & (np.asarray(mask) != 255)
    out = image.astype(np.float32)
    out[fg] = 0.5 * out[fg] + 0.5 * colours[fg]
    return out.astype(np.uint8)


def _label(draw: ImageDraw.ImageDraw, xy: tuple[float, float], text: str, background: tuple[int, int, int]) -> None:
    """White text on a filled box of the outline's colour: readable on any image (green text on green shapes was not)."""
    left, top, right, bottom = draw.textbbox(xy, text)
    draw.rectangle([left - 2, top - 1, right + 2, bottom + 1], fill=background)
    draw.text(xy, text, fill=(255, 255, 255))


_TRUE = (0, 110, 0)
_PRED = (190, 20, 20)


def sample_image(s: ReportSample, max_side: int = 320) -> Image.Image:
    """A test image with true boxes (dark green) and predictions (dark red), labels on filled boxes.

    The image is scaled to ``max_side`` first and the boxes drawn after, so
    labels keep a readable size whatever the image size.

    Args:
        s: the sample.
        max_side: longest side of the result, in pixels.

    Returns:
        The drawn image.
    """
    img = np.asarray(s.image, dtype=np.uint8)
    if s.true_mask is not None and s.pred_mask is not None:
        img = np.concatenate([_overlay(img, s.true_mask), _overlay(img, s.pred_mask)], axis=1)
    pil = Image.fromarray(img)
    scale = min(1.0, max_side / max(pil.size))
    if scale < 1:
        pil = pil.resize((max(1, round(pil.width * scale)), max(1, round(pil.height * scale))))
    draw = ImageDraw.Draw(pil)
    for box, name in zip(np.asarray(s.true_boxes).reshape(-1, 4), s.true_labels, strict=False):
        x, y, w, h = (float(v) * scale for v in box)
        draw.rectangle([x, y, x + w, y + h], outline=_TRUE, width=2)
        _label(draw, (x + 2, max(0.0, y - 12)), name, _TRUE)
    scores = list(s.pred_scores) or [float("nan")] * len(s.pred_labels)
    for box, name, sc in zip(np.asarray(s.pred_boxes).reshape(-1, 4), s.pred_labels, scores, strict=False):
        x, y, w, h = (float(v) * scale for v in box)
        draw.rectangle([x, y, x + w, y + h], outline=_PRED, width=1)
        _label(draw, (x + 2, y + h + 1), f"{name} {sc:.2f}", _PRED)
    return pil


def _sample_png(s: ReportSample, max_side: int = 320) -> str:
    pil = sample_image(s, max_side)
    buf = io.BytesIO()
    pil.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _num(v: float | None, metric: str = "") -> str:
    if v is None:
        return "–"
    if metric in COUNT_METRICS or metric == "images":
        return f"{v:.0f}"  # a count, not 7.0000
    return f"{v:.4f}" if abs(v) < 1000 else f"{v:.0f}"


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], raw: bool = False) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c if raw else html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
    # wide tables (many slices or metrics) scroll inside the page instead of overflowing it
    return f"<div class='scroll'><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>"


_CSS = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222}
table{border-collapse:collapse;margin:8px 0 20px;font-size:13px}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}
th:first-child,td:first-child{text-align:left}
th{background:#f2f2f2}
.pass{color:#0a7d22;font-weight:600}.fail{color:#c0161b;font-weight:600}.skip{color:#888}
.badge{display:inline-block;padding:4px 12px;border-radius:4px;color:white;font-weight:700}
.grid{display:flex;flex-wrap:wrap;gap:10px}.grid figure{margin:0;font-size:11px}
.scroll{overflow-x:auto;max-width:100%}
img{max-width:100%;height:auto}
"""


def render_report(
    candidate: ModelEvaluation,
    blessing: Blessing,
    *,
    baseline: ModelEvaluation | None = None,
    samples: Sequence[ReportSample] = (),
    title: str = "cvpipe evaluation",
) -> str:
    """Renders the self-contained HTML report.

    Args:
        candidate: the candidate's evaluation.
        blessing: the blessing.
        baseline: the baseline's evaluation on the same data, if any.
        samples: test images to draw (true in green, predicted in red).
        title: page title.

    Returns:
        The HTML text.
    """
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"]
    colour = "#0a7d22" if blessing.blessed else "#c0161b"
    verdict = "BLESSED" if blessing.blessed else "NOT BLESSED"
    parts.append(f"<h1>{html.escape(title)}</h1><p><span class='badge' style='background:{colour}'>{verdict}</span> ")
    parts.append(
        f"{candidate.task}, {candidate.num_images} test images"
        + (f", baseline {html.escape(blessing.baseline_id or '')}" if baseline else ", no baseline")
    )
    parts.append("</p><ul>" + "".join(f"<li>{html.escape(r)}</li>" for r in blessing.reasons) + "</ul>")

    parts.append("<h2>Thresholds</h2>")
    rows = []
    for t in blessing.thresholds:
        status = (
            "<span class='skip'>skipped</span>"
            if t.skipped
            else ("<span class='pass'>pass</span>" if t.passed else "<span class='fail'>FAIL</span>")
        )
        rows.append(
            [html.escape(t.metric), t.kind, _num(t.value), _num(t.baseline_value), html.escape(t.bound), status, html.escape(t.reason)]
        )
    parts.append(
        _table(["metric", "kind", "value", "baseline", "bound", "result", "reason"], rows, raw=True)
        if rows
        else "<p>No thresholds configured.</p>"
    )

    parts.append("<h2>Metrics</h2>")
    rows = []
    for k, v in candidate.metrics.items():
        b = baseline.metrics.get(k) if baseline else None
        d = (v - b) if (v is not None and b is not None) else None
        rows.append([k, _num(v), _num(b), ("+" if d is not None and d > 0 else "") + _num(d) if d is not None else "–"])
    parts.append(_table(["metric", "candidate", "baseline", "change"], rows))

    pr = _pr_figure(candidate, baseline)
    if pr:
        parts.append("<h2>Precision-recall curves</h2>" + _img_tag(pr, "precision-recall curves"))
    cm = _confusion_figure(candidate)
    if cm:
        parts.append("<h2>Confusion matrix</h2>" + _img_tag(cm, "confusion matrix"))

    parts.append("<h2>Per class</h2>")
    if candidate.per_class:
        names = list(next(iter(candidate.per_class.values())).keys())
        rows = [[cls, *(_num(m.get(n), n) for n in names)] for cls, m in candidate.per_class.items()]
        parts.append(_table(["class", *names], rows))

    parts.append("<h2>Slices</h2>")
    other = [s for s in candidate.slices if s.feature != "class"]
    if other:
        names = list(dict.fromkeys(k for s in other for k in s.metrics))
        rows = [[s.name, str(s.num_images), *(_num(s.metrics.get(n), n) for n in names)] for s in other]
        parts.append(_table(["slice", "images", *names], rows))
    else:
        parts.append("<p>No slices.</p>")

    if samples:
        parts.append(
            "<h2>Test images</h2><p>green: ground truth (label above the box); red: predictions (label below)"
            + (" (left: truth, right: prediction)" if samples[0].true_mask is not None else "")
            + "</p><div class='grid'>"
        )
        for s in samples:
            caption = html.escape(s.image_id)
            if s.true_class is not None:
                caption += f"<br>true: {html.escape(s.true_class)}<br>pred: {html.escape(s.pred_class or '')}"
            parts.append(f"<figure>{_img_tag(_sample_png(s), s.image_id)}<figcaption>{caption}</figcaption></figure>")
        parts.append("</div>")
    parts.append("</body></html>")
    return "".join(parts)


def kfp_scalars(candidate: ModelEvaluation, blessing: Blessing) -> dict[str, float]:
    """Scalar metrics for KFP's ``Metrics`` artifact (undefined ones left out).

    Args:
        candidate: the candidate's evaluation.
        blessing: the blessing.

    Returns:
        Metric name -> value, plus ``blessed`` (0/1) and ``num_images``.
    """
    out = {k: float(v) for k, v in candidate.metrics.items() if v is not None}
    out["blessed"] = 1.0 if blessing.blessed else 0.0
    out["num_images"] = float(candidate.num_images)
    return out


def kfp_confusion(candidate: ModelEvaluation) -> tuple[list[str], list[list[int]]]:
    """Categories and matrix for ``ClassificationMetrics.log_confusion_matrix``.

    Args:
        candidate: the candidate's evaluation.

    Returns:
        ``(categories, matrix)``, rows true, columns predicted.
    """
    return list(candidate.confusion_labels), [list(map(int, r)) for r in candidate.confusion_matrix]
