"""The human-readable validation report: one self-contained HTML page and a Markdown summary.

The page holds the verdict, the count of findings by kind with its policy,
the problems by file, the dataset-level findings, TFDV's anomalies and drift
tables, and per table a statistics view drawn from TFDV's statistics: one
inline SVG chart per feature (the histogram of a numeric feature, the top
values of a categorical one, the previous dataset version beside the current
one) and a summary table. Nothing is loaded from the network (TFDV's own
Facets view fetches its scripts from a CDN and is blank offline), so the page
opens anywhere: KFP's HTML viewer, a browser without network, a mail.
"""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .findings import Finding

__all__ = ["ReportInputs", "render_html", "render_markdown"]

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em;color:#222;max-width:1400px}
h1{margin-bottom:.2em} h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.5em 0;font-size:.9em} th,td{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}
th{background:#f4f4f4} .fail{color:#b00020;font-weight:600} .warn{color:#8a6d00} .quarantine{color:#1f5fa8}
.verdict{font-size:1.2em;padding:.5em 1em;display:inline-block;border-radius:4px}
.verdict.failed{background:#fde7ea} .verdict.passed{background:#e6f4ea} .verdict.warnings{background:#fff6d6}
code{background:#f4f4f4;padding:0 .2em}
.stat-grid{display:flex;flex-wrap:wrap;gap:12px}.stat-plot{margin:0;font-size:.8em}
.swatch{display:inline-block;width:.9em;height:.9em;vertical-align:middle}
.scroll{overflow-x:auto;max-width:100%}
"""


@dataclass
class ReportInputs:
    """Everything the report shows.

    Attributes:
        pipeline: the pipeline name.
        run_id: the run.
        failed: whether a finding's policy is ``fail``.
        findings: every finding.
        images_in: images in the input manifest.
        images_validated: images in the validated manifest.
        objects_in: objects in the input manifest.
        objects_validated: objects in the validated manifest.
        schema_version: version of the schema validated against.
        schema_source: ``inferred``, ``previous`` or ``curated``.
        statistics: table -> current statistics.
        previous_statistics: table -> previous dataset version's statistics (drift baseline).
        anomalies: table -> TFDV Anomalies proto.
        class_counts: class name -> examples in the validated manifest.
        min_examples_per_class: the spec's minimum.
    """

    pipeline: str
    run_id: str
    failed: bool
    findings: Sequence[Finding]
    images_in: int
    images_validated: int
    objects_in: int
    objects_validated: int
    schema_version: int
    schema_source: str
    statistics: Mapping[str, Any] = field(default_factory=dict)
    previous_statistics: Mapping[str, Any] = field(default_factory=dict)
    anomalies: Mapping[str, Any] = field(default_factory=dict)
    class_counts: Mapping[str, int] = field(default_factory=dict)
    min_examples_per_class: int = 0


def _e(v: object) -> str:
    return html.escape("" if v is None else str(v))


def _verdict(r: ReportInputs) -> tuple[str, str]:
    if r.failed:
        return "failed", "FAILED: a finding's policy is fail"
    if r.findings:
        return "warnings", "passed with findings"
    return "passed", "passed: no findings"


def _table(headers: Sequence[str], rows: Sequence[Sequence[object]], cls: str = "") -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _policy_cell(policy: str) -> str:
    return f'<span class="{_e(policy)}">{_e(policy)}</span>'


def _findings_table(findings: Sequence[Finding], table_id: str, with_file: bool) -> str:
    headers = (
        ["file", "image_id", "annotation_id", "kind", "policy", "message"]
        if with_file
        else ["kind", "policy", "table", "feature", "message"]
    )
    rows = []
    for f in findings:
        cells = (
            [_e(f.file), _e(f.image_id), _e(f.annotation_id), _e(f.kind), _policy_cell(f.policy), _e(f.message)]
            if with_file
            else [_e(f.kind), _policy_cell(f.policy), _e(f.table), _e(f.feature), _e(f.message)]
        )
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    head = "".join(f"<th>{h}</th>" for h in headers)
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def _fmt(v: float) -> str:
    return f"{v:.4g}"


def _stats_summary(stats: Any) -> str:
    """A static table of one table's statistics (what Facets shows, without JavaScript)."""
    if not stats.datasets:
        return "<p>No statistics.</p>"
    ds = stats.datasets[0]
    rows: list[list[object]] = []
    for feat in ds.features:
        name = ".".join(feat.path.step) or feat.name
        which = feat.WhichOneof("stats")
        if which == "num_stats":
            ns = feat.num_stats
            c = ns.common_stats
            rows.append(
                [
                    name,
                    "numeric",
                    c.num_non_missing,
                    c.num_missing,
                    _fmt(ns.mean),
                    _fmt(ns.std_dev),
                    _fmt(ns.min),
                    _fmt(ns.median),
                    _fmt(ns.max),
                    "",
                ]
            )
        elif which == "string_stats":
            ss = feat.string_stats
            c = ss.common_stats
            top = ", ".join(f"{t.value} ({int(t.frequency)})" for t in list(ss.top_values)[:5])
            rows.append([name, "categorical", c.num_non_missing, c.num_missing, "", "", "", "", "", f"{ss.unique} unique: {top}"])
    headers = ["feature", "type", "present", "missing", "mean", "std", "min", "median", "max", "values"]
    return f"<p>{ds.num_examples} rows.</p>" + _table(headers, rows)


_W, _H = 320, 140


def _bars(feature: Any) -> list[tuple[str, float]]:
    """``(label, count)`` bars of one feature: the standard histogram, or the top categorical values."""
    which = feature.WhichOneof("stats")
    if which == "num_stats":
        hists = [h for h in feature.num_stats.histograms if h.type == h.STANDARD] or list(feature.num_stats.histograms)
        if not hists:
            return []
        return [(f"{b.low_value:.3g}..{b.high_value:.3g}", float(b.sample_count)) for b in hists[0].buckets]
    if which == "string_stats":
        return [(str(t.value), float(t.frequency)) for t in list(feature.string_stats.top_values)[:12]]
    return []


def _features(stats: Any) -> dict[str, Any]:
    if stats is None or not stats.datasets:
        return {}
    return {".".join(f.path.step) or f.name: f for f in stats.datasets[0].features}


def _svg(name: str, current: list[tuple[str, float]], previous: list[tuple[str, float]]) -> str:
    """One feature's chart: current bars (blue), the previous version's (grey) beside them, as shares."""
    labels = list(dict.fromkeys([lbl for lbl, _ in current] + [lbl for lbl, _ in previous]))
    cur, prev = dict(current), dict(previous)
    tc, tp = sum(cur.values()) or 1.0, sum(prev.values()) or 1.0
    shares = [(cur.get(lbl, 0.0) / tc, prev.get(lbl, 0.0) / tp if previous else 0.0) for lbl in labels]
    top = max([max(a, b) for a, b in shares] + [1e-9])
    n = max(1, len(labels))
    slot = (_W - 10) / n
    bars = []
    for i, (lbl, (a, b)) in enumerate(zip(labels, shares, strict=True)):
        x = 5 + i * slot
        w = slot * (0.45 if previous else 0.9)
        ha = (_H - 30) * a / top
        bars.append(
            f'<rect class="bar current" x="{x:.1f}" y="{_H - 20 - ha:.1f}" width="{max(w, 0.5):.1f}" height="{ha:.1f}" fill="#1f6fb4">'
            f"<title>{_e(lbl)}: {a:.1%} (current)</title></rect>"
        )
        if previous:
            hb = (_H - 30) * b / top
            bars.append(
                f'<rect class="bar previous" x="{x + w:.1f}" y="{_H - 20 - hb:.1f}" width="{max(w, 0.5):.1f}" height="{hb:.1f}" '
                f'fill="#9a9a9a"><title>{_e(lbl)}: {b:.1%} (previous)</title></rect>'
            )
    first, last = (labels[0], labels[-1]) if labels else ("", "")
    axis = (
        f'<line x1="5" y1="{_H - 20}" x2="{_W - 5}" y2="{_H - 20}" stroke="#444"/>'
        f'<text x="5" y="{_H - 6}" font-size="10">{_e(first.split("..")[0])}</text>'
        f'<text x="{_W - 5}" y="{_H - 6}" font-size="10" text-anchor="end">{_e(last.split("..")[-1])}</text>'
    )
    return (
        f'<figure class="stat-plot"><svg xmlns="http://www.w3.org/2000/svg" role="img" width="{_W}" height="{_H}" '
        f'viewBox="0 0 {_W} {_H}" aria-label="{_e(name)}">{"".join(bars)}{axis}</svg>'
        f"<figcaption>{_e(name)}</figcaption></figure>"
    )


def _statistics_view(current: Any, previous: Any | None) -> str:
    """Inline SVG charts of every feature; self-contained (no script, nothing fetched)."""
    now, before = _features(current), _features(previous)
    charts = [_svg(name, _bars(f), _bars(before[name]) if name in before else []) for name, f in now.items() if _bars(f)]
    if not charts:
        return "<p>No feature to chart.</p>"
    legend = '<p class="legend"><span class="swatch" style="background:#1f6fb4"></span> current'
    if before:
        legend += ' <span class="swatch" style="background:#9a9a9a"></span> previous dataset version'
    return legend + " (share of rows per bucket or value)</p>" + '<div class="stat-grid">' + "".join(charts) + "</div>"


def _anomalies_html(anomalies: Any) -> str:
    from tensorflow_data_validation.utils.display_util import get_anomalies_dataframe, get_drift_skew_dataframe

    parts = []
    adf = get_anomalies_dataframe(anomalies)
    parts.append("<p>No anomalies.</p>" if adf.empty else adf.to_html(classes="tfdv-anomalies", escape=True))
    ddf = get_drift_skew_dataframe(anomalies)
    if not ddf.empty:
        parts.append("<h4>Drift against the previous dataset version</h4>")
        parts.append(ddf.to_html(classes="tfdv-drift", escape=True, float_format=lambda v: f"{v:.4g}"))
    return "\n".join(parts)


def render_html(r: ReportInputs) -> str:
    """Renders the report page.

    Args:
        r: what to show.

    Returns:
        A complete HTML document.
    """
    css_cls, verdict = _verdict(r)
    item_findings = sorted((f for f in r.findings if f.level != "dataset"), key=lambda f: (f.file or "", f.annotation_id or "", f.kind))
    dataset_findings = [f for f in r.findings if f.level == "dataset"]
    counts = Counter((f.kind, f.policy) for f in r.findings)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>cvpipe validation: {_e(r.pipeline)} {_e(r.run_id)}</title><style>{_CSS}</style></head><body>",
        f"<h1>Data validation: {_e(r.pipeline)}</h1>",
        f"<p>Run <code>{_e(r.run_id)}</code> · schema version {r.schema_version} ({_e(r.schema_source)})</p>",
        f'<p class="verdict {css_cls}">{_e(verdict)}</p>',
        _table(
            ["", "input", "validated"],
            [["images", r.images_in, r.images_validated], ["objects", r.objects_in, r.objects_validated]],
        ),
        "<h2>Findings by kind</h2>",
        _table(["kind", "policy", "count"], [[k, p, n] for (k, p), n in sorted(counts.items())]) if counts else "<p>None.</p>",
        f"<h2>Problems by file ({len(item_findings)})</h2>",
        _findings_table(item_findings, "problems", with_file=True) if item_findings else '<p id="problems">No problems in any file.</p>',
        f"<h2>Dataset-level findings ({len(dataset_findings)})</h2>",
        "<p>Dataset-level kinds can only fail or warn; a quarantine policy on them means warn.</p>",
        _findings_table(dataset_findings, "dataset-findings", with_file=False) if dataset_findings else "<p>None.</p>",
        "<h2>Examples per class</h2>",
        _table(
            ["class", "examples", f"minimum {r.min_examples_per_class}"],
            [[c, n, "ok" if n >= r.min_examples_per_class else "too few"] for c, n in r.class_counts.items()],
        ),
        '<h2 id="tfdv-anomalies">TFDV anomalies</h2>',
    ]
    for table, an in r.anomalies.items():
        parts.append(f"<h3>{_e(table)}</h3>")
        parts.append(_anomalies_html(an))
    parts.append('<h2 id="statistics">Statistics</h2>')
    for table, stats in r.statistics.items():
        parts.append(f"<h3>{_e(table)}</h3>")
        parts.append(f'<div class="statistics-view" data-table="{_e(table)}">')
        parts.append(_statistics_view(stats, r.previous_statistics.get(table)))
        parts.append("</div>")
        parts.append(_stats_summary(stats))
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _md(v: object) -> str:
    return str("" if v is None else v).replace("|", "\\|").replace("\n", " ")


def render_markdown(r: ReportInputs, max_rows: int = 20) -> str:
    """Renders a short Markdown summary (verdict, counts, the first problems).

    Args:
        r: what to show.
        max_rows: most findings listed.

    Returns:
        Markdown text.
    """
    _, verdict = _verdict(r)
    lines = [
        f"# Data validation: {r.pipeline}",
        "",
        f"**{verdict}** · run `{r.run_id}` · schema version {r.schema_version} ({r.schema_source})",
        "",
        f"- images: {r.images_in} in, {r.images_validated} validated",
        f"- objects: {r.objects_in} in, {r.objects_validated} validated",
        "",
    ]
    counts = Counter((f.kind, f.policy) for f in r.findings)
    if counts:
        lines += ["| kind | policy | count |", "|---|---|---|"]
        lines += [f"| {k} | {p} | {n} |" for (k, p), n in sorted(counts.items())]
        lines += ["", "| kind | policy | where | message |", "|---|---|---|---|"]
        ordered = sorted(r.findings, key=lambda f: ({"fail": 0, "quarantine": 1, "warn": 2}[f.policy], f.kind))
        for f in ordered[:max_rows]:
            where = f.file or ".".join(x for x in (f.table, f.feature) if x) or "dataset"
            if f.annotation_id:
                where += f" ({f.annotation_id})"
            lines.append(f"| {f.kind} | {f.policy} | {_md(where)} | {_md(f.message)} |")
        if len(ordered) > max_rows:
            lines.append(f"\n… and {len(ordered) - max_rows} more in anomalies.json and the HTML report.")
    else:
        lines.append("No findings.")
    return "\n".join(lines) + "\n"
