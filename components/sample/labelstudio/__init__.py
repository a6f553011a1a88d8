"""Label Studio round trip: tasks with pre-annotations out, a validated JSON export back in.

Tasks (Label Studio's import format) carry the image URL and cvpipe's keys in
``data`` (``image_sha256``, ``request_id``, ``labelling_batch_id``, ``stratum``,
``width``, ``height``), and the model's prediction as a pre-annotation
(``predictions[0].result``). Region results follow Label Studio's format:
``from_name`` / ``to_name`` name the tags of :func:`label_config`, ``type`` the
tag kind, ``original_width`` / ``original_height`` the image size and
``value`` the region in **percent** of the image:

* detection: ``rectanglelabels`` ``{x, y, width, height, rotation, rectanglelabels: [name]}``;
* classification: ``choices`` ``{choices: [name]}``;
* segmentation: ``polygonlabels`` ``{points: [[x, y], ...], polygonlabels: [name]}``
  out; ``polygonlabels`` or ``brushlabels`` (``{format: "rle", rle: [...]}``,
  Label Studio's brush RLE of the RGBA mask) back in.

:func:`import_export` validates a JSON export of completed tasks like any
ingest: known classes, boxes inside the image (1 px tolerance, clipped), no
degenerate or rotated boxes, well-formed polygons and masks, image size as
sampled. A task with any bad region is quarantined whole (each bad region with
its reason, plus the image) so a partial label never counts as complete
ground truth; tasks without a completed annotation are reported as unlabelled.
Accepted labels become :class:`~components.core.prediction_log.LabelRow` rows and a
:class:`~components.core.manifest.Manifest` of the labelled images (and a COCO
file ingest reads), ready to join the training data.

:class:`LabelStudioClient` talks to Label Studio's API (task import, JSON
export) with retries; the token comes from an environment variable only.
"""

from .brush import brush_decode, brush_encode
from .client import LabelStudioClient
from .export import BOX_TOLERANCE_PX, LabelImport, import_export, read_export
from .tasks import FROM_NAMES, TO_NAME, default_image_url, label_config, prediction_regions, region_results, task_data, to_tasks

__all__ = [
    "BOX_TOLERANCE_PX",
    "FROM_NAMES",
    "TO_NAME",
    "LabelImport",
    "LabelStudioClient",
    "brush_decode",
    "brush_encode",
    "default_image_url",
    "import_export",
    "label_config",
    "prediction_regions",
    "read_export",
    "region_results",
    "task_data",
    "to_tasks",
]
