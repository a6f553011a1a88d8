"""Batch prediction, the prediction server and the prediction log in a real Feast repository.

Models are tiny real SavedModels (tests/unit/predict_testdata.py) registered in
the local registry; the log is a Feast repository rendered by init_feature_repo
and applied with Feast's API; reads go through Feast's historical retrieval.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from predict_testdata import make_images, make_tiny_model

from components.core.images import decode_rgb
from components.core.labelmap import LabelMap
from components.core.lineage import LineageStore
from components.core.quarantine import QuarantineReport
from components.core.spec import RegistrySpec
from components.predict.core import image_statistics, list_images, predict_batch, predict_images
from components.predict.logs import (
    LABEL_FEATURES,
    PREDICTION_FEATURES,
    LabelRow,
    PredictionLog,
    PredictionRow,
    ground_truth_json,
    init_feature_repo,
)
from components.registry import RegisterRequest, get_registry

LABELS = LabelMap.from_names(["circle", "square", "star"])


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A registry with three tiny models (one per task) as ``<task>@champion``, and a Feast repo."""
    root = tmp_path_factory.mktemp("predict")
    store = LineageStore(f"sqlite:///{root / 'mlmd.sqlite'}")
    registry = get_registry(RegistrySpec(root=str(root / "registry")), store)
    for task in ("detection", "classification", "segmentation"):
        model_dir = make_tiny_model(root / "models" / task, task, LABELS, model_name=task)
        registry.register(RegisterRequest(model_dir=model_dir, model_name=task, blessed=True, aliases=["champion"]))
    manifest = make_images(root / "images", 10, LABELS, "detection", seed=1)
    repo = init_feature_repo(root / "feast")
    return {"root": root, "store": store, "registry": registry, "manifest": manifest, "repo": repo}


def test_feature_repo_is_rendered_with_absolute_paths_and_applied(world, tmp_path):
    repo = world["repo"]
    defs = (repo / "definitions.py").read_text()
    assert f"DATA_DIR = Path({str(repo / 'data')!r})" in defs
    assert str(repo / "data" / "registry.db") in (repo / "feature_store.yaml").read_text()
    log = PredictionLog(repo)
    views = {fv.name: fv for fv in log.store.list_feature_views()}
    assert {f.name for f in views["predictions"].features} == set(PREDICTION_FEATURES)
    assert {f.name for f in views["image_labels"].features} == set(LABEL_FEATURES)
    assert views["predictions"].batch_source.path == str(repo / "data" / "predictions")
    assert init_feature_repo(repo) == repo  # applying again is a no-op, not an error
    with pytest.raises(Exception, match="not a Feast repository"):
        PredictionLog(tmp_path / "nothing")


def test_predict_images_logs_rows_feast_reads_back(world):
    manifest = world["manifest"]
    log = PredictionLog(world["repo"])
    before = datetime.now(UTC)
    rows = predict_images("detection@champion", manifest.root, batch_size=4, registry=world["registry"], log=log)
    after = datetime.now(UTC) + timedelta(seconds=1)

    assert len(rows) == 10
    by_sha = {r.sha256: r for r in manifest.images}
    for row in rows:
        rec = by_sha[row.image_sha256]  # the sha256 of the file's bytes
        assert row.image_uri == str(manifest.image_path(rec).resolve())
        assert (row.width, row.height) == (rec.width, rec.height)
        assert row.model_name == "detection" and row.model_version == 1
        b, c = image_statistics(decode_rgb(manifest.image_path(rec)))
        assert row.brightness == pytest.approx(b) and row.contrast == pytest.approx(c)
        pred = row.prediction()
        assert pred["task"] == "detection" and len(pred["boxes"]) == row.num_detections == len(pred["scores"])
        if row.num_detections:
            top = int(np.argmax(pred["scores"]))
            assert row.predicted_class == pred["class_ids"][top] and row.top_score == pytest.approx(pred["scores"][top], abs=1e-4)
            assert row.predicted_class_name == LABELS.name_of(row.predicted_class)
        else:
            assert row.predicted_class == 0 and row.top_score == 0
        assert len(row.embedding) == 48

    df = log.read_window(before, after, model_name="detection")
    assert sorted(df["request_id"]) == sorted(r.request_id for r in rows)
    got = df.set_index("request_id")
    for row in rows:
        g = got.loc[row.request_id]
        assert g["image_sha256"] == row.image_sha256 and g["predictions"] == row.predictions
        assert int(g["predicted_class"]) == row.predicted_class and int(g["model_version"]) == 1
        assert np.allclose(list(g["embedding"]), row.embedding, atol=1e-6)
    assert str(df["event_timestamp"].dt.tz) == "UTC"
    assert log.read_window(before, after, model_name="no-such-model").empty
    assert log.read_window(before - timedelta(days=2), before - timedelta(days=1)).empty


def test_manifest_input_and_undecodable_images_are_quarantined(world, tmp_path):
    manifest = world["manifest"]
    broken = tmp_path / "imgs"
    broken.mkdir()
    (broken / "ok.png").write_bytes(manifest.image_path(manifest.images[0]).read_bytes())
    (broken / "bad.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (broken / "notes.txt").write_text("not an image: skipped by extension")
    q = QuarantineReport(stage="predict")
    result = predict_batch("classification@champion", broken, registry=world["registry"], quarantine=q)
    assert [Path(r.image_uri).name for r in result.rows] == ["ok.png"]
    assert [(Path(i.file).name, i.kind) for i in q.items] == [("bad.jpg", "undecodable_image")]
    assert q.total == 2

    manifest_file = manifest.save(tmp_path / "manifest.json")
    assert [s.image_id for s in list_images(manifest_file)] == [r.image_id for r in manifest.images]
    rows = predict_images("classification:1", manifest_file, registry=world["registry"])
    pred = rows[0].prediction()
    assert pred["label_ids"] == LABELS.ids and sum(pred["probabilities"]) == pytest.approx(1, abs=1e-3)
    assert rows[0].num_detections == 1 and rows[0].predicted_class == LABELS.ids[int(np.argmax(pred["probabilities"]))]


def test_segmentation_predictions_carry_polygons_inside_the_image(world):
    rows = predict_images("segmentation@champion", world["manifest"].root, registry=world["registry"])
    pred = rows[0].prediction()
    assert len(pred["polygons"]) == len(pred["class_ids"]) >= 1
    for regions in pred["polygons"]:
        for poly in regions:
            xs, ys = poly[0::2], poly[1::2]
            assert len(xs) >= 3 and min(xs) >= 0 and max(xs) <= rows[0].width and min(ys) >= 0 and max(ys) <= rows[0].height


def _row(i: int, sha: str, when: datetime, model: str = "m") -> PredictionRow:
    return PredictionRow(
        event_timestamp=when,
        request_id=f"r{i}",
        model_name=model,
        model_version=1,
        image_sha256=sha,
        width=10,
        height=10,
        brightness=0.5,
        contrast=0.1,
        predictions="{}",
        predicted_class=1,
        top_score=0.5,
        num_detections=1,
        embedding=[float(i)],
    )


def test_joined_is_point_in_time_correct_as_of_the_evaluation(tmp_path):
    log = PredictionLog(init_feature_repo(tmp_path / "feast"))
    t0 = datetime(2026, 3, 1, 12, tzinfo=UTC)
    log.append([_row(0, "a", t0), _row(1, "b", t0 + timedelta(minutes=1)), _row(2, "a", t0 + timedelta(minutes=2))])
    log.append([_row(3, "c", t0 + timedelta(minutes=3), model="other")])
    truth = ground_truth_json("detection", 10, 10, [{"class_id": 1, "bbox": [1, 1, 4, 4]}])
    fixed = ground_truth_json("detection", 10, 10, [{"class_id": 2, "bbox": [1, 1, 4, 4]}])
    log.add_labels(
        [
            LabelRow(
                image_sha256="a", event_timestamp=t0 + timedelta(days=1), labelling_batch_id="b1", ground_truth=truth, stratum="random"
            ),
            LabelRow(
                image_sha256="b", event_timestamp=t0 + timedelta(days=5), labelling_batch_id="b2", ground_truth=truth, stratum="class"
            ),
            LabelRow(image_sha256="c", event_timestamp=t0 + timedelta(days=1), labelling_batch_id="b1", ground_truth=truth),
        ]
    )
    log.add_labels([LabelRow(image_sha256="a", event_timestamp=t0 + timedelta(days=2), labelling_batch_id="b3", ground_truth=fixed)])

    window = (t0, t0 + timedelta(hours=1))
    at_day3 = log.joined(*window, model_name="m", as_of=t0 + timedelta(days=3)).set_index("request_id")
    assert list(at_day3.index) == ["r0", "r1", "r2"]  # model "other" left out
    # a label given a day after the prediction joins; the day-2 correction supersedes the day-1 label
    assert at_day3.loc["r0", "ground_truth"] == fixed and at_day3.loc["r2", "labelling_batch_id"] == "b3"
    assert at_day3.loc["r0", "labelled_at"] == t0 + timedelta(days=2)
    # b's label arrives on day 5: not known on day 3
    assert not at_day3.loc["r1", "labelled"] and at_day3.loc["r1", "ground_truth"] is None

    at_day1 = log.joined(*window, model_name="m", as_of=t0 + timedelta(days=1)).set_index("request_id")
    assert at_day1.loc["r0", "ground_truth"] == truth and at_day1.loc["r0", "stratum"] == "random"

    now = log.joined(*window, model_name="m").set_index("request_id")
    assert now["labelled"].all() and now.loc["r1", "stratum"] == "class"
    assert log.joined(*window, as_of=t0).query("labelled").empty  # nothing labelled yet at prediction time
    assert len(log.read_labels()) == 4 and json.loads(now.loc["r1", "ground_truth"])["objects"][0]["class_id"] == 1


def test_naive_timestamps_are_utc_and_empty_logs_read_empty(tmp_path):
    log = PredictionLog(init_feature_repo(tmp_path / "feast"))
    assert log.read_window(datetime(2026, 1, 1), datetime(2026, 1, 2)).empty
    assert log.joined(datetime(2026, 1, 1), datetime(2026, 1, 2)).empty
    row = _row(0, "a", datetime(2026, 1, 1, 10))
    assert row.event_timestamp == datetime(2026, 1, 1, 10, tzinfo=UTC)
    with pytest.raises(Exception, match="no rows"):
        log.append([])
    log.append([row])
    # a part file still being written (a writer's temporary name) is not read
    (log.predictions_dir / ".part-x.parquet.1234.tmp").write_bytes(b"half a parquet file")
    (log.labels_dir / ".part-y.parquet.1234.tmp").write_bytes(b"half a parquet file")
    log.add_labels([LabelRow(image_sha256="a", event_timestamp=datetime(2026, 1, 1, 11), labelling_batch_id="b", ground_truth="{}")])
    assert len(log.read_labels()) == 1
    assert list(log.read_window(datetime(2026, 1, 1, 10), datetime(2026, 1, 1, 10, 0, 1))["request_id"]) == ["r0"]
    assert log.read_window(datetime(2026, 1, 1, 9), datetime(2026, 1, 1, 10)).empty  # the end is exclusive
