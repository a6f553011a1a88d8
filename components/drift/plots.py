"""PNG plots of a drift report (matplotlib's Agg canvas; no pyplot, no display, thread-safe).

matplotlib is imported when a plot is drawn, not when this module is.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .results import CheckResult, ClassMixData, HistogramData, MMDSummary

__all__ = ["class_mix_png", "histogram_png", "mmd_null_png"]

_REF = "#4c72b0"
_CUR = "#dd8452"


def _figure(width: float = 6.4, height: float = 3.6) -> tuple[Any, Any]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot(1, 1, 1)


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _shares(counts: Sequence[int]) -> np.ndarray:
    a = np.asarray(counts, dtype=np.float64)
    return a / a.sum() if a.sum() > 0 else a


def histogram_png(feature: str, hist: HistogramData, checks: Sequence[CheckResult] = ()) -> bytes:
    """Reference vs current shares of one numeric feature on shared bins.

    Args:
        feature: feature name (the title).
        hist: the histogram.
        checks: this feature's checks (their values go in the title).

    Returns:
        PNG bytes.
    """
    fig, ax = _figure()
    edges = np.asarray(hist.edges, dtype=np.float64)
    for counts, colour, label in ((hist.reference, _REF, "reference"), (hist.current, _CUR, "current")):
        ax.stairs(_shares(counts), edges, fill=True, alpha=0.45, color=colour, label=label)
        ax.stairs(_shares(counts), edges, color=colour)
    ax.set_xlabel(feature)
    ax.set_ylabel("share of values (outer bins include tails)")
    parts = [f"{c.statistic}={c.value:.3g}" for c in checks if c.value is not None]
    drifting = any(c.status == "drift" for c in checks)
    ax.set_title(f"{feature}{' — DRIFT' if drifting else ''}\n{', '.join(parts)}", fontsize=9, color="#b00020" if drifting else "black")
    ax.legend(fontsize=8)
    return _png(fig)


def class_mix_png(mix: ClassMixData, title: str = "predicted class mix") -> bytes:
    """Grouped bars of each class's share, reference vs current.

    Args:
        mix: the class counts.
        title: the plot's title.

    Returns:
        PNG bytes.
    """
    fig, ax = _figure(max(6.4, 0.5 * len(mix.classes) + 2), 3.6)
    x = np.arange(len(mix.classes))
    ax.bar(x - 0.2, _shares(mix.reference), width=0.4, color=_REF, label="reference")
    ax.bar(x + 0.2, _shares(mix.current), width=0.4, color=_CUR, label="current")
    ax.set_xticks(x)
    ax.set_xticklabels(
        mix.classes, rotation=45 if len(mix.classes) > 6 else 0, ha="right" if len(mix.classes) > 6 else "center", fontsize=8
    )
    ax.set_ylabel("share")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    return _png(fig)


def mmd_null_png(mmd: MMDSummary) -> bytes:
    """The permutation distribution of MMD² with the observed value marked.

    Args:
        mmd: the embedding test.

    Returns:
        PNG bytes.
    """
    fig, ax = _figure()
    ax.hist(mmd.null, bins=min(30, max(5, len(mmd.null) // 3)), color=_REF, alpha=0.7, label=f"{mmd.permutations} permutations")
    ax.axvline(mmd.mmd2, color="#b00020", linewidth=2, label=f"observed {mmd.mmd2:.3g}")
    ax.set_xlabel("MMD² (unbiased, RBF kernel)")
    ax.set_ylabel("permutations")
    ax.set_title(f"embedding drift: p = {mmd.p_value:.3g}, σ = {mmd.bandwidth:.3g}", fontsize=9)
    ax.legend(fontsize=8)
    return _png(fig)
