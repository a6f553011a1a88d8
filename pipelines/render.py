"""Plain-text rendering of run summaries and spec problems for the CLI."""

from __future__ import annotations

import io
from typing import Any

from rich.console import Console
from rich.table import Table

__all__ = ["render_summary", "render_table"]


def render_table(title: str, columns: list[str], rows: list[list[Any]]) -> str:
    """Renders a table to text (no colour codes, so logs and tests read it).

    Args:
        title: table title.
        columns: column headers.
        rows: cell values.

    Returns:
        The table as text.
    """
    table = Table(title=title, show_lines=False)
    for c in columns:
        table.add_column(c)
    for r in rows:
        table.add_row(*("" if v is None else str(v) for v in r))
    buf = io.StringIO()
    Console(file=buf, width=140, no_color=True, force_terminal=False).print(table)
    return buf.getvalue()


def render_summary(summary: Any) -> str:
    """Renders a :class:`~pipelines.runners.local.RunSummary`.

    Args:
        summary: the run summary.

    Returns:
        Text: one row per step, then the run's artifacts.
    """
    rows = []
    for s in summary.steps:
        p = s["properties"]
        shown = {k: v for k, v in p.items() if k not in ("run_id", "pipeline", "duration_s")}
        rows.append([s["component"], s["state"], p.get("duration_s", ""), ", ".join(f"{k}={v}" for k, v in list(shown.items())[:6])])
    out = render_table(
        f"run {summary.run_id} ({'succeeded' if summary.succeeded else 'FAILED'} in {summary.seconds:.0f}s)",
        ["step", "state", "seconds", "details"],
        rows,
    )
    arts = [[a.id, a.kind, a.uri] for a in summary.artifacts]
    out += render_table("artifacts", ["id", "kind", "uri"], arts)
    out += f"run folder: {summary.run_dir}\n"
    return out
