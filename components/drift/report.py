"""The drift report: what was compared, every check's verdict, and the data behind its plots.

:class:`DriftReport` is a pydantic model written as ``drift_report.json``;
:func:`write_drift_report` adds one PNG per plot (matplotlib, Agg backend)
and ``drift_report.html``, a single self-contained page with the PNGs
embedded, so the report can be attached to a ticket or opened from a KFP
artifact without a server. Everything the plots show is in the JSON, so a
report can be re-rendered later (:func:`load_drift_report`).
"""

from __future__ import annotations

import base64
import html
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from components.core.io import atomic_write_bytes, atomic_write_text, read_json

from . import plots as plotting
from .results import CheckResult, ClassMixData, DriftReport, HistogramData, MMDSummary

__all__ = [
    "REPORT_HTML",
    "REPORT_JSON",
    "CheckResult",
    "ClassMixData",
    "DriftReport",
    "DriftReportFiles",
    "HistogramData",
    "MMDSummary",
    "load_drift_report",
    "render_html",
    "write_drift_report",
]

REPORT_JSON = "drift_report.json"
"""File name of the JSON report inside an output directory."""
REPORT_HTML = "drift_report.html"
"""File name of the HTML page inside an output directory."""


@dataclass
class DriftReportFiles:
    """Where :func:`write_drift_report` put things.

    Attributes:
        json: the JSON report.
        html: the self-contained HTML page.
        plots: plot name -> PNG file.
    """

    json: Path
    html: Path
    plots: dict[str, Path] = field(default_factory=dict)


def load_drift_report(path: str | os.PathLike[str]) -> DriftReport:
    """Reads a report written by :func:`write_drift_report`.

    Args:
        path: the JSON file, or the directory holding ``drift_report.json``.

    Returns:
        The report.
    """
    p = Path(path)
    if p.is_dir():
        p = p / REPORT_JSON
    return DriftReport.model_validate(read_json(p))


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "feature"


def write_drift_report(report: DriftReport, out_dir: str | os.PathLike[str], plots: bool = True) -> DriftReportFiles:
    """Writes the JSON report, its PNG plots and the HTML page (each file atomically).

    Args:
        report: the report.
        out_dir: output directory (created).
        plots: whether to draw the PNGs (the JSON and HTML are always written).

    Returns:
        The files written.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pngs: dict[str, bytes] = {}
    if plots:
        if report.class_mix is not None:
            pngs["class_mix"] = plotting.class_mix_png(report.class_mix)
        for feature, mix in report.categories.items():
            pngs[f"mix_{_slug(feature)}"] = plotting.class_mix_png(mix, title=f"{feature}: category mix")
        for feature, hist in report.histograms.items():
            pngs[f"hist_{_slug(feature)}"] = plotting.histogram_png(feature, hist, [c for c in report.checks if c.feature == feature])
        if report.mmd is not None and report.mmd.null:
            pngs["mmd_null"] = plotting.mmd_null_png(report.mmd)
    files = DriftReportFiles(json=out / REPORT_JSON, html=out / REPORT_HTML)
    for name, data in pngs.items():
        files.plots[name] = atomic_write_bytes(out / "plots" / f"{name}.png", data)
    atomic_write_text(files.json, report.model_dump_json(indent=2) + "\n")
    atomic_write_text(files.html, render_html(report, pngs))
    return files


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em;color:#222;max-width:1400px}
h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;font-size:.9em} th,td{border:1px solid #ccc;padding:.3em .6em;text-align:left}
th{background:#f4f4f4} .drift{color:#b00020;font-weight:600} .ok{color:#1e7d32} .not_enough_data{color:#8a6d00}
.verdict{font-size:1.2em;padding:.5em 1em;display:inline-block;border-radius:4px}
.verdict.drift{background:#fde7ea} .verdict.ok{background:#e6f4ea} .verdict.not_enough_data{background:#fff6d6}
figure{display:inline-block;margin:.5em} img{max-width:560px}
"""


def _e(v: object) -> str:
    return html.escape("" if v is None else str(v))


def _num(v: float | None) -> str:
    return "" if v is None else f"{v:.4g}"


def _img(name: str, pngs: dict[str, bytes], caption: str) -> str:
    data = pngs.get(name)
    if data is None:
        return ""
    b64 = base64.b64encode(data).decode("ascii")
    return f'<figure><img alt="{_e(caption)}" src="data:image/png;base64,{b64}"><figcaption>{_e(caption)}</figcaption></figure>'


def render_html(report: DriftReport, pngs: dict[str, bytes] | None = None) -> str:
    """The report as one self-contained HTML page.

    Args:
        report: the report.
        pngs: plot name -> PNG bytes to embed (``class_mix``, ``hist_<feature>``, ``mix_<feature>``, ``mmd_null``).

    Returns:
        The HTML text.
    """
    pngs = pngs or {}
    status: Literal["ok", "drift", "not_enough_data"] = report.status
    window = f"{report.window.start.isoformat()} – {report.window.end.isoformat()}" if report.window else "not given"
    drifted = report.drifted_features()
    head = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>Drift report {_e(report.model)}</title><style>{_CSS}</style></head><body>",
        f"<h1>Drift report{': ' + _e(report.model) if report.model else ''}</h1>",
        f"<p><span class='verdict {status}'>{_e(status.replace('_', ' '))}</span></p>",
        f"<p>Created {_e(report.created_at.isoformat())}; window {_e(window)}.</p>",
        f"<p>Drifting: {_e(', '.join(drifted)) if drifted else 'nothing'}.</p>",
        "<p>Jensen-Shannon is the distance (square root of the divergence), base 2, in [0, 1]. "
        "A check with a test fires only when its value exceeds the threshold and its p-value is below alpha.</p>",
    ]
    rows = []
    for c in report.checks:
        rows.append(
            "<tr>"
            + "".join(
                f"<td>{x}</td>"
                for x in (
                    _e(c.name),
                    _e(c.feature),
                    _e(c.statistic),
                    _num(c.value),
                    _num(c.threshold),
                    _num(c.clear_threshold),
                    _num(c.p_value),
                    _num(c.alpha),
                    f"<span class='{c.status}'>{_e(c.status)}</span>",
                    _e(c.previous_status),
                    c.n_reference,
                    c.n_current,
                )
            )
            + "</tr>"
        )
    cols = [
        "check",
        "feature",
        "statistic",
        "value",
        "threshold",
        "clears below",
        "p-value",
        "alpha",
        "status",
        "previous",
        "n ref",
        "n cur",
    ]
    table = "<table><thead><tr>" + "".join(f"<th>{h}</th>" for h in cols) + "</tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
    body = ["<h2>Checks</h2>", table]
    if "class_mix" in pngs:
        body += ["<h2>Predicted class mix</h2>", _img("class_mix", pngs, "class shares, reference vs current")]
    hist = [_img(f"hist_{_slug(f)}", pngs, f) for f in report.histograms]
    hist += [_img(f"mix_{_slug(f)}", pngs, f) for f in report.categories]
    if any(hist):
        body += ["<h2>Numeric features</h2>", *hist]
    if "mmd_null" in pngs:
        body += ["<h2>Embeddings</h2>", _img("mmd_null", pngs, "MMD² permutation distribution and observed value")]
    return "\n".join([*head, *body, "</body></html>"]) + "\n"
