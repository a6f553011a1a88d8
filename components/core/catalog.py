"""Names a spec may use: metrics per task and data-validation anomaly kinds.

The spec is checked against these lists before anything runs, so a typo in a
threshold fails ``cvpipe validate-spec`` instead of training a model that can
never be blessed. The evaluate and validate components produce exactly these
names (their tests compare).
"""

from __future__ import annotations

from typing import Literal

__all__ = [
    "COUNT_METRICS",
    "METRICS",
    "PER_CLASS_METRICS",
    "PRIMARY_METRIC",
    "VALIDATION_KINDS",
]

_TaskName = Literal["classification", "detection", "segmentation"]

METRICS: dict[str, frozenset[str]] = {
    "detection": frozenset(
        {
            "map",
            "map_50",
            "map_75",
            "map_small",
            "map_medium",
            "map_large",
            "mar_1",
            "mar_10",
            "mar_100",
            "mar_small",
            "mar_medium",
            "mar_large",
            "precision",
            "recall",
            "f1",
            "f1_macro",
            "localization_recall",
        }
    ),
    "classification": frozenset(
        {
            "accuracy",
            "top_5_accuracy",
            "precision_micro",
            "recall_micro",
            "f1_micro",
            "precision_macro",
            "recall_macro",
            "f1_macro",
        }
    ),
    "segmentation": frozenset({"mean_iou", "pixel_accuracy", "mean_accuracy", "fw_iou"}),
}
"""Overall metrics per task (the names ``evaluate.thresholds`` use)."""

PER_CLASS_METRICS: dict[str, frozenset[str]] = {
    "detection": frozenset({"ap", "ap_50", "ap_75", "ar_100", "precision", "recall", "f1", "support"}),
    "classification": frozenset({"precision", "recall", "f1", "support"}),
    "segmentation": frozenset({"iou", "accuracy", "support"}),
}
"""Metrics of a ``class=NAME`` slice (``ap_50@class=cat``); other slices carry the overall names."""

COUNT_METRICS = frozenset({"support"})
"""Metrics that count (0 or more); every other metric is a fraction from 0 to 1."""

PRIMARY_METRIC: dict[str, str] = {"detection": "map", "classification": "accuracy", "segmentation": "mean_iou"}
"""The metric the default blessing compares with the champion: COCO mAP, accuracy, mIoU."""

VALIDATION_KINDS = frozenset(
    {
        "unreadable",
        "decompression_bomb",
        "undecodable",
        "color_mode",
        "exif_orientation",
        "extension_mismatch",
        "box_outside_image",
        "degenerate_box",
        "nan_coordinate",
        "unknown_label",
        "duplicate_across_splits",
        "too_few_examples",
        "empty_dataset",
        "schema_anomaly",
        "drift",
    }
)
"""Anomaly kinds of the validate step (the keys of ``validation.policy``)."""
