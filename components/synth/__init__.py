"""Synthetic, exactly-labelled datasets: shapes and glyphs on real photographs.

Pure Python (no kfp). :func:`generate` writes a COCO detection or
segmentation dataset, or class folders, from a :class:`SynthConfig`;
:func:`export_voc` and :func:`export_yolo` re-write a COCO dataset in the
Pascal VOC and YOLO layouts. Backgrounds are photographs bundled with
scikit-image (:func:`available_backgrounds`); nothing is downloaded.
"""

from .core import SynthConfig, SynthResult, SynthTask, available_backgrounds, available_classes, generate
from .formats import export_voc, export_yolo, write_coco

__all__ = [
    "SynthConfig",
    "SynthResult",
    "SynthTask",
    "available_backgrounds",
    "available_classes",
    "export_voc",
    "export_yolo",
    "generate",
    "write_coco",
]
