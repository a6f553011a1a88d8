"""Names shared by the writer and the reader: index file, splits, feature keys (TensorFlow Object Detection API)."""

from __future__ import annotations

__all__ = [
    "AUTOTUNE",
    "BBOX_XMAX",
    "BBOX_XMIN",
    "BBOX_YMAX",
    "BBOX_YMIN",
    "CLASS_LABEL",
    "CLASS_TEXT",
    "EXAMPLES_INDEX",
    "IMAGE_ENCODED",
    "IMAGE_FILENAME",
    "IMAGE_FORMAT",
    "IMAGE_HEIGHT",
    "IMAGE_SHA256",
    "IMAGE_SOURCE_ID",
    "IMAGE_WIDTH",
    "OBJECT_AREA",
    "OBJECT_IS_CROWD",
    "OBJECT_LABEL",
    "OBJECT_MASK",
    "OBJECT_TEXT",
    "SEGMENTATION_ENCODED",
    "SEGMENTATION_FORMAT",
    "SPLITS",
]

EXAMPLES_INDEX = "examples.json"
"""File name of the index inside an examples directory."""

SPLITS = ("train", "validation", "test")
"""The splits transform writes, in order."""

AUTOTUNE = -1
"""Same value as ``tf.data.AUTOTUNE`` (usable without importing TensorFlow)."""

# Feature keys (TensorFlow Object Detection API names).
IMAGE_ENCODED = "image/encoded"
IMAGE_FORMAT = "image/format"
IMAGE_HEIGHT = "image/height"
IMAGE_WIDTH = "image/width"
IMAGE_FILENAME = "image/filename"
IMAGE_SOURCE_ID = "image/source_id"
IMAGE_SHA256 = "image/key/sha256"
BBOX_XMIN = "image/object/bbox/xmin"
BBOX_XMAX = "image/object/bbox/xmax"
BBOX_YMIN = "image/object/bbox/ymin"
BBOX_YMAX = "image/object/bbox/ymax"
OBJECT_LABEL = "image/object/class/label"
OBJECT_TEXT = "image/object/class/text"
OBJECT_IS_CROWD = "image/object/is_crowd"
OBJECT_AREA = "image/object/area"
OBJECT_MASK = "image/object/mask"
CLASS_LABEL = "image/class/label"
CLASS_TEXT = "image/class/text"
SEGMENTATION_ENCODED = "image/segmentation/class/encoded"
SEGMENTATION_FORMAT = "image/segmentation/class/format"
