"""Helpers for the KFP wrappers of components (imports kfp; only component.py modules use it).

``CVPIPE_IMAGE`` is the default base image of every component; the pipeline
builder overrides it per task with the spec's ``runtime.image`` through
``set_container_image``, so one compiled pipeline names one image.
"""

from __future__ import annotations

import os

__all__ = ["CVPIPE_IMAGE", "DEFAULT_IMAGE"]

DEFAULT_IMAGE = "cvpipe:0.1.0"
"""The image the compiled component YAML files name (``components/<name>/component.yaml``)."""

CVPIPE_IMAGE = os.environ.get("CVPIPE_IMAGE", DEFAULT_IMAGE)
"""Default container image of cvpipe's components (``$CVPIPE_IMAGE`` or ``cvpipe:0.1.0``)."""
