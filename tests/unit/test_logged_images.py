"""A logged image is read only when its file still holds the bytes the log row's sha256 names.

Sampling, the label import and the retraining dataset merge each meet a log
row whose file was swapped for another (here: a private mode-600 file, as a
client-chosen path once could); each quarantines it and reads nothing from it.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

from predict_testdata import make_images

from components.core.labelmap import LabelMap
from components.core.logged_image import logged_image_problem
from components.core.manifest import Manifest
from components.predict.logs import PredictionLog, PredictionRow, init_feature_repo
from components.sample.core import LabellingBatch, SampledItem, SamplingConfig, sample_window
from components.sample.labelstudio import import_export
from components.sample.simulate import simulate_labels
from components.trigger.dataset import merge_datasets

LABELS = LabelMap.from_names(["circle", "square", "star"])
T0 = datetime(2026, 12, 1, 12, tzinfo=UTC)


def _secret(tmp_path):
    secret = tmp_path / "id_rsa"
    secret.write_bytes(b"-----BEGIN OPENSSH PRIVATE KEY-----\n")
    secret.chmod(0o600)
    return secret


def test_problem_names_the_file_and_accepts_only_the_logged_bytes(tmp_path):
    truth = make_images(tmp_path / "images", 1, LABELS, "detection", seed=1)
    rec = truth.images[0]
    path = truth.image_path(rec)
    assert logged_image_problem(str(path), rec.sha256) is None
    assert logged_image_problem(f"file://{path}", rec.sha256) is None
    problem = logged_image_problem(str(_secret(tmp_path)), rec.sha256)
    assert problem is not None and "id_rsa" in problem and "not the image that was predicted" in problem
    assert "missing" in (logged_image_problem(str(tmp_path / "gone.png"), rec.sha256) or "")
    assert logged_image_problem(str(tmp_path / "gone.png"), rec.sha256, missing_ok=True) is None
    assert logged_image_problem("gs://bucket/x.png", rec.sha256) is None  # not read by cvpipe's steps


def _items(truth: Manifest, uris: list[str]) -> list[SampledItem]:
    return [
        SampledItem(
            stratum="random",
            request_id=f"req{n}",
            image_sha256=rec.sha256,
            image_uri=uri,
            width=rec.width,
            height=rec.height,
            model_name="m",
            model_version=1,
            event_timestamp=T0,
            predicted_class=1,
            predicted_class_name="circle",
            top_score=0.9,
            predictions='{"task":"detection","class_ids":[1],"scores":[0.9],"boxes":[[1,1,5,5]]}',
        )
        for n, (rec, uri) in enumerate(zip(truth.images, uris, strict=True))
    ]


def test_label_import_and_dataset_merge_quarantine_a_swapped_image(tmp_path):
    truth = make_images(tmp_path / "images", 3, LABELS, "detection", seed=2)
    secret = _secret(tmp_path)
    uris = [str(truth.image_path(r)) for r in truth.images]
    batch = LabellingBatch(
        batch_id="lb-test",
        created=T0,
        model_name="m",
        task="detection",
        label_map=LABELS,
        window_start=T0 - timedelta(days=1),
        window_end=T0,
        config=SamplingConfig(),
        items=_items(truth, uris),
    )
    export = simulate_labels(batch, truth, completed_at=T0 + timedelta(hours=1))
    batch.items[1].image_uri = str(secret)  # the logged file was replaced after sampling
    result = import_export(export, "detection", LABELS, batch=batch)
    assert result.quarantine.by_kind() == {"image_mismatch": 1}
    assert "id_rsa" in result.quarantine.items[0].reason
    assert sorted(r.image_sha256 for r in result.labels) == sorted([truth.images[0].sha256, truth.images[2].sha256])

    # the labelled manifest's file is swapped after the import: the merge leaves it out
    batch.items[1].image_uri = uris[1]
    labelled = import_export(export, "detection", LABELS, batch=batch).manifest
    assert labelled is not None and len(labelled.images) == 3
    swapped = next(r for r in labelled.images if r.sha256 == truth.images[2].sha256)
    swapped.path = str(secret)
    base = make_images(tmp_path / "base", 2, LABELS, "detection", seed=5)
    merged = merge_datasets(base, labelled, tmp_path / "merged")
    assert merged.added == 2 and merged.images == 4
    assert [p for p, _ in merged.quarantined] == [str(secret)]
    copied = [f.read_bytes() for f in (tmp_path / "merged" / "images").iterdir()]
    assert secret.read_bytes() not in copied and len(copied) == 4
    assert not any(os.path.samefile(f, secret) for f in (tmp_path / "merged" / "images").iterdir())


def test_sampling_leaves_out_a_logged_image_whose_file_changed(tmp_path):
    truth = make_images(tmp_path / "images", 2, LABELS, "detection", seed=3)
    log = PredictionLog(init_feature_repo(tmp_path / "feast"))
    secret = _secret(tmp_path)
    rows = [
        PredictionRow(
            event_timestamp=T0 + timedelta(minutes=n),
            request_id=f"req{n}",
            model_name="m",
            model_version=1,
            image_sha256=rec.sha256,
            image_uri=str(truth.image_path(rec)) if n == 0 else str(secret),
            width=rec.width,
            height=rec.height,
            brightness=0.5,
            contrast=0.1,
            predictions='{"task":"detection","width":48,"height":40,"class_ids":[1],"scores":[0.9],"boxes":[[1,1,5,5]]}',
            predicted_class=1,
            predicted_class_name="circle",
            top_score=0.9,
            num_detections=1,
        )
        for n, rec in enumerate(truth.images)
    ]
    log.append(rows)
    batch = sample_window(log, T0, T0 + timedelta(hours=1), "m", "detection", LABELS, SamplingConfig(max_items=10))
    assert [i.request_id for i in batch.items] == ["req0"]
    assert len(batch.quarantined) == 1 and batch.quarantined[0]["image_uri"] == str(secret)
    assert "not the image that was predicted" in batch.quarantined[0]["reason"]
