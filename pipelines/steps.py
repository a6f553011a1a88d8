"""The step names of cvpipe's two pipelines, in order (no imports, so the CLI can check ``--until`` fast)."""

from __future__ import annotations

__all__ = ["CE_STEPS", "STEPS"]

STEPS: tuple[str, ...] = ("ingest", "validate", "transform", "train", "evaluate", "push")
"""The training pipeline's steps, in order."""

CE_STEPS: tuple[str, ...] = ("read_window", "sample", "import_labels", "live_metrics", "drift", "alert", "trigger")
"""The continuous-evaluation pipeline's steps, in order."""
