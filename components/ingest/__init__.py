"""The ingest component: any supported annotation format -> canonical manifest + versioned label map.

See :mod:`components.ingest.core` for the checks and :mod:`components.ingest.component`
for the KFP wrapper. Importing this package does not import kfp.
"""

from .core import BOX_TOLERANCE_PX, IngestResult, check_box, label_map_from_artifact, read_source, run

__all__ = ["BOX_TOLERANCE_PX", "IngestResult", "check_box", "label_map_from_artifact", "read_source", "run"]
