"""The evaluate component: COCO / segmentation / classification metrics, slices, blessing and the report.

Modules: :mod:`.metrics_detection` (COCO bbox metrics, pycocotools-exact and
vectorised), :mod:`.metrics_segmentation`, :mod:`.metrics_classification`,
:mod:`.slicing`, :mod:`.evaluation` (one model's evaluation record),
:mod:`.blessing` (TFX-style thresholds, the TFMA path), :mod:`.report` (HTML
and KFP metrics) and :mod:`.core` (the step). :mod:`.component` is the KFP
wrapper and the only module that imports kfp.
"""

__all__: list[str] = []
