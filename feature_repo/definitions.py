"""Feast definitions of cvpipe's continuous-evaluation data: the prediction log and human labels.

Two entities, two feature views:

* ``prediction`` (join key ``request_id``) -> feature view ``predictions``: one row per
  prediction a model served (batch or online), timestamped when it was made. An image
  predicted twice (two requests, two model versions) gives two rows, so predictions are
  keyed by request, not by image.
* ``image`` (join key ``image_sha256``) -> feature view ``image_labels``: the human ground
  truth of an image, timestamped when the label was completed. A corrected label is a new
  row with a later timestamp and supersedes the earlier one.

Point-in-time rule (see ``components/predict/logs.py``): predictions are joined with the
labels known *at the evaluation time* (``as_of``), not at the prediction time, so a label
given after a prediction joins it, while a label given after ``as_of`` does not leak into
an evaluation of the past. TTLs are zero (unbounded): ground truth of an image does not
expire.

Both sources are directories of parquet part files written atomically by
``components.predict.logs.PredictionLog``. In production swap the FileSources for
BigQuerySources over the tables the servers stream into; the feature views stay the same.
"""

from datetime import timedelta
from pathlib import Path

from feast import Entity, FeatureView, Field, FileSource, ValueType
from feast.types import Array, Float32, Int64, String, UnixTimestamp

# Rendered to an absolute path by components.predict.logs.init_feature_repo for each deployment.
DATA_DIR = Path(__file__).resolve().parent / "data"

prediction = Entity(
    name="prediction",
    join_keys=["request_id"],
    value_type=ValueType.STRING,
    description="One served prediction (a request id, unique per image per call).",
)

image = Entity(
    name="image",
    join_keys=["image_sha256"],
    value_type=ValueType.STRING,
    description="An image, identified by the sha256 of its encoded bytes.",
)

prediction_log_source = FileSource(
    name="prediction_log",
    path=str(DATA_DIR / "predictions"),
    timestamp_field="event_timestamp",
    description="Parquet part files of the prediction log (PredictionLog.append).",
)

label_source = FileSource(
    name="image_labels_source",
    path=str(DATA_DIR / "labels"),
    timestamp_field="event_timestamp",
    created_timestamp_column="created_timestamp",
    description="Parquet part files of human labels imported from Label Studio (PredictionLog.add_labels).",
)

predictions = FeatureView(
    name="predictions",
    entities=[prediction],
    ttl=timedelta(0),
    schema=[
        Field(name="request_id", dtype=String),
        Field(name="model_name", dtype=String),
        Field(name="model_version", dtype=Int64),
        Field(name="image_sha256", dtype=String),
        Field(name="image_uri", dtype=String),
        Field(name="width", dtype=Int64),
        Field(name="height", dtype=Int64),
        Field(name="brightness", dtype=Float32),
        Field(name="contrast", dtype=Float32),
        Field(name="predictions", dtype=String),
        Field(name="predicted_class", dtype=Int64),
        Field(name="predicted_class_name", dtype=String),
        Field(name="top_score", dtype=Float32),
        Field(name="num_detections", dtype=Int64),
        Field(name="embedding", dtype=Array(Float32)),
    ],
    online=False,
    source=prediction_log_source,
    description="Every prediction a served model made, with image statistics and embedding.",
)

image_labels = FeatureView(
    name="image_labels",
    entities=[image],
    ttl=timedelta(0),
    schema=[
        Field(name="image_sha256", dtype=String),
        Field(name="labelling_batch_id", dtype=String),
        Field(name="stratum", dtype=String),
        Field(name="ground_truth", dtype=String),
        Field(name="labelled_at", dtype=UnixTimestamp),
    ],
    online=True,
    source=label_source,
    description="Human ground truth of images (COCO-style objects or a class id), latest label wins.",
)
