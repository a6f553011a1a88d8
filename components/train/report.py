"""The training report: loss curves (PNG), an over-fitting check, JSON and HTML.

Over-fitting is flagged when, over the last epochs, validation loss rises
while training loss keeps falling (least-squares slopes of opposite sign),
and the last validation loss is clearly above the best one. The report says
which epochs it looked at and the two slopes, so the flag can be checked by eye
on ``loss.png``.
"""

from __future__ import annotations

import base64
import html
import math
from pathlib import Path
from typing import Any

from components.core.io import atomic_path, atomic_write_json, atomic_write_text

__all__ = ["OVERFIT_WINDOW", "detect_overfitting", "plot_losses", "write_report"]

OVERFIT_WINDOW = 3
"""Epochs at the end of training the over-fitting check looks at."""


def _slope(values: list[float]) -> float:
    n = len(values)
    xs = range(n)
    mx = (n - 1) / 2.0
    my = sum(values) / n
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, values, strict=True)) / den if den else 0.0


def detect_overfitting(history: list[dict[str, float]], window: int = OVERFIT_WINDOW, tolerance: float = 0.02) -> dict[str, Any]:
    """Whether validation loss rose while training loss fell over the last epochs.

    Args:
        history: per-epoch rows with ``loss`` and ``val_loss``.
        window: epochs to look at (the last ``window``; at least 3 epochs are needed).
        tolerance: the last validation loss must exceed the best by this fraction.

    Returns:
        ``overfitting`` (bool), ``epochs`` (the epochs looked at), ``train_slope``,
        ``val_slope`` (loss change per epoch) and ``message``.
    """
    rows = [r for r in history if math.isfinite(r.get("loss", math.nan)) and math.isfinite(r.get("val_loss", math.nan))]
    if len(rows) < 3:
        return {"overfitting": False, "epochs": [], "train_slope": 0.0, "val_slope": 0.0, "message": "too few epochs to judge over-fitting"}
    tail = rows[-min(window, len(rows)) :]
    train = [r["loss"] for r in tail]
    val = [r["val_loss"] for r in tail]
    ts, vs = _slope(train), _slope(val)
    best = min(r["val_loss"] for r in rows)
    rising = vs > 0 and val[-1] > best * (1 + tolerance) + 1e-12
    flag = bool(rising and ts < 0)
    epochs = [int(r["epoch"]) for r in tail]
    if flag:
        msg = (
            f"over-fitting: over epochs {epochs[0]}-{epochs[-1]} validation loss rose ({vs:+.4f}/epoch) while training loss fell "
            f"({ts:+.4f}/epoch); the best weights (val_loss {best:.4f}) were kept"
        )
    else:
        msg = f"no over-fitting signal over epochs {epochs[0]}-{epochs[-1]} (train {ts:+.4f}/epoch, val {vs:+.4f}/epoch)"
    return {"overfitting": flag, "epochs": epochs, "train_slope": ts, "val_slope": vs, "message": msg}


def plot_losses(history: list[dict[str, float]], path: Path, best_epoch: int = 0, title: str = "") -> Path:
    """Draws training and validation loss per epoch into a PNG (matplotlib, Agg).

    Args:
        history: per-epoch rows.
        path: the PNG to write (atomically).
        best_epoch: epoch marked as the kept weights (0: none).
        title: plot title.

    Returns:
        The path written.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.0), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    epochs = [int(r["epoch"]) for r in history]
    ax.plot(epochs, [r.get("loss", math.nan) for r in history], marker="o", label="train loss")
    ax.plot(epochs, [r.get("val_loss", math.nan) for r in history], marker="o", label="validation loss")
    if best_epoch:
        ax.axvline(best_epoch, color="grey", linestyle="--", linewidth=1, label=f"best epoch ({best_epoch})")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_title(title or "training and validation loss")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png")
    return path


def _html(report: dict[str, Any], png: bytes) -> str:
    e = html.escape
    rows = "".join(
        "<tr>"
        + "".join(
            f"<td>{e(str(round(r.get(k, math.nan), 4)))}</td>" for k in ("epoch", "loss", "val_loss", "learning_rate", "images_per_s")
        )
        + "</tr>"
        for r in report.get("history", [])
    )
    facts = [
        ("model", f"{report.get('model_name')} ({report.get('architecture')}, {report.get('task')})"),
        ("image size", "x".join(str(v) for v in report.get("image_size", []))),
        (
            "epochs run",
            f"{report.get('epochs_run')} of {report.get('epochs_max')}" + (" (stopped early)" if report.get("stopped_early") else ""),
        ),
        ("best epoch", f"{report.get('best_epoch')} (val_loss {report.get('best_val_loss', math.nan):.4f})"),
        ("over-fitting", report.get("overfitting", {}).get("message", "")),
        ("strategy", report.get("strategy", "")),
        ("resumed from step", str(report.get("resumed_from_step", 0))),
        ("warm start", str(report.get("parent") or "none")),
        ("hyperparameters", ", ".join(f"{k}={v}" for k, v in report.get("hyperparameters", {}).items())),
    ]
    fact_rows = "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in facts)
    img = base64.b64encode(png).decode()
    warn = '<p style="color:#b00"><b>Over-fitting detected.</b></p>' if report.get("overfitting", {}).get("overfitting") else ""
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>cvpipe training report</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}</style>"
        f"</head><body><h1>Training report: {e(str(report.get('model_name', '')))}</h1>{warn}"
        f"<table>{fact_rows}</table><h2>Loss</h2><img alt='loss curves' src='data:image/png;base64,{img}'>"
        "<h2>Epochs</h2><table><tr><th>epoch</th><th>loss</th><th>val_loss</th><th>learning rate</th><th>images/s</th></tr>"
        f"{rows}</table></body></html>"
    )


def write_report(report: dict[str, Any], report_dir: Path, model_dir: Path | None = None) -> dict[str, Path]:
    """Writes ``training_report.json``, ``loss.png`` and ``index.html``.

    Args:
        report: the report content (``history``, ``best_epoch``, ... see :mod:`components.train.core`).
        report_dir: the report artifact directory.
        model_dir: also write the JSON and PNG here (the model directory layout has them).

    Returns:
        Name -> written path (in ``report_dir``).
    """
    report_dir.mkdir(parents=True, exist_ok=True)
    png = plot_losses(
        report.get("history", []), report_dir / "loss.png", int(report.get("best_epoch", 0)), f"{report.get('model_name', '')} loss"
    )
    written = {
        "json": atomic_write_json(report_dir / "training_report.json", report),
        "png": png,
        "html": atomic_write_text(report_dir / "index.html", _html(report, png.read_bytes())),
    }
    if model_dir is not None:
        atomic_write_json(model_dir / "training_report.json", report)
        with atomic_path(model_dir / "loss.png", suffix=".png") as tmp:
            tmp.write_bytes(png.read_bytes())
    return written
