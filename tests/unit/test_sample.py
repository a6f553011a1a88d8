"""Sampling a labelling batch, Label Studio tasks and exports, and the label import.

Selection is checked on hand-made windows (no TensorFlow); the round trip
(tasks -> simulated people -> export -> validated ground truth -> ingest)
runs on real files; the API client talks to a Label Studio stand-in over real
HTTP on 127.0.0.1 (tests/fakes/label_studio_server.py) for what a real server
will not do on demand (503s to retry). The stand-in's answers were checked
against the real Label Studio 1.23.2: tests/unit/test_label_studio_real.py
runs the round trip against it and compares both servers' answers.
"""

from __future__ import annotations

import copy
import json
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fakes.label_studio_server import FakeLabelStudio
from predict_testdata import make_images

from components.core.errors import LabellingError
from components.core.labelmap import LabelMap
from components.core.manifest import Manifest, Task
from components.core.masks import decode_segmentation
from components.core.spec import DataSpec
from components.ingest import read_source
from components.sample.core import LabellingBatch, SampledItem, SamplingConfig, batch_coco, dedupe_window, select_items, write_batch
from components.sample.labelstudio import (
    LabelStudioClient,
    brush_decode,
    brush_encode,
    import_export,
    label_config,
    read_export,
    to_tasks,
)
from components.sample.simulate import simulate_labels

LABELS = LabelMap.from_names(["circle", "square", "star"])
T0 = datetime(2026, 5, 1, tzinfo=UTC)


def _window(counts: dict[int, int], seed: int = 0, repeats: int = 0, no_uri: int = 0) -> pd.DataFrame:
    """A prediction-log window: ``counts[class]`` images per predicted class, random scores."""
    rng = np.random.default_rng(seed)
    rows = []
    n = 0
    for cid, k in counts.items():
        for _ in range(k):
            rows.append(
                {
                    "event_timestamp": pd.Timestamp(T0 + timedelta(seconds=n)),
                    "request_id": f"r{n:04d}",
                    "image_sha256": f"sha{n:04d}",
                    "image_uri": "" if n < no_uri else f"/img/{n}.png",
                    "predicted_class": cid,
                    "top_score": float(rng.uniform(0.05, 1.0)) if cid else 0.0,
                    "model_name": "m",
                }
            )
            n += 1
    originals = list(rows)
    for j in range(repeats):  # the same images predicted again later
        again = dict(originals[-1 - j])
        again["request_id"] = f"again{j}"
        again["event_timestamp"] = pd.Timestamp(T0 + timedelta(hours=1, seconds=j))
        rows.append(again)
    return pd.DataFrame(rows)


def _picked(df: pd.DataFrame, cfg: SamplingConfig, exclude=()) -> tuple[pd.DataFrame, dict[str, int]]:
    picks, stats = select_items(df, cfg, exclude)
    frame = dedupe_window(df)
    out = frame.iloc[[i for i, _ in picks]].copy()
    out["stratum"] = [s for _, s in picks]
    return out, stats


def test_strata_random_first_then_every_class_then_the_least_confident():
    df = _window({1: 150, 2: 40, 3: 8, 0: 2}, repeats=5, no_uri=3)
    cfg = SamplingConfig(per_class=12, uncertain=10, random_share=0.25, max_items=80, seed=3)
    got, stats = _picked(df, cfg)

    assert stats == {"images": 200, "unlabellable": 3}
    assert got["image_sha256"].is_unique and len(got) <= 80
    assert (got["image_uri"] != "").all()
    assert (got["stratum"] == "random").sum() == 20  # 0.25 x 80
    per_class = got.groupby("predicted_class").size()
    assert per_class[3] == 8 and per_class[0] == 2  # every image of the rare classes
    assert per_class[1] >= 12 and per_class[2] >= 12
    assert (got["stratum"] == "uncertain").sum() == 10
    # the uncertain ones are the least confident of what was left
    left = dedupe_window(df)
    left = left[~left["image_sha256"].isin(got["image_sha256"]) & (left["image_uri"] != "")]
    assert got.loc[got["stratum"] == "uncertain", "top_score"].max() <= left["top_score"].min()
    # a re-predicted image is represented by its latest prediction
    assert got.loc[got["image_sha256"] == "sha0199", "request_id"].tolist() in ([], ["again0"])
    assert "r0199" not in set(got["request_id"])

    again, _ = _picked(df, cfg)
    assert again["request_id"].tolist() == got["request_id"].tolist()  # seeded
    other, _ = _picked(df, cfg.model_copy(update={"seed": 4}))
    assert set(other.loc[other["stratum"] == "random", "request_id"]) != set(got.loc[got["stratum"] == "random", "request_id"])


def test_cap_spreads_class_picks_round_robin_rarest_first():
    df = _window({1: 100, 2: 50, 3: 30})
    got, _ = _picked(df, SamplingConfig(per_class=12, uncertain=5, random_share=0.0, max_items=10, seed=0))
    assert len(got) == 10 and set(got["stratum"]) == {"class"}
    counts = got.groupby("predicted_class").size().to_dict()
    assert counts == {3: 4, 2: 3, 1: 3}  # round-robin from the rarest class


def test_already_labelled_images_skip_class_and_uncertain_but_not_random():
    df = _window({1: 30, 2: 30})
    labelled = {f"sha{n:04d}" for n in range(60) if n % 2 == 0}
    cfg = SamplingConfig(per_class=5, uncertain=5, random_share=0.2, max_items=50, seed=1)
    got, _ = _picked(df, cfg, exclude=labelled)
    strata = got.set_index("image_sha256")["stratum"]
    assert not any(strata.get(s) in ("class", "uncertain") for s in labelled)
    plain, _ = _picked(df, cfg)
    assert set(plain.loc[plain["stratum"] == "random", "request_id"]) == set(got.loc[got["stratum"] == "random", "request_id"])


def test_empty_window_gives_an_empty_batch():
    picks, stats = select_items(
        _window({}).reindex(columns=["event_timestamp", "request_id", "image_sha256", "image_uri", "predicted_class", "top_score"]),
        SamplingConfig(),
    )
    assert picks == [] and stats == {"images": 0, "unlabellable": 0}


# -- Label Studio tasks ---------------------------------------------------------------------------


def _item(n: int, task: Task, stratum="class", width=50, height=40, pred=None, sha=None, uri=None) -> SampledItem:
    if pred is None:
        pred = {
            "task": task,
            "width": width,
            "height": height,
            "class_ids": [2, 1],
            "scores": [0.9, 0.1],
            "boxes": [[10, 5, 20, 10], [0, 0, 5, 5]],
        }
    return SampledItem(
        stratum=stratum,
        request_id=f"req{n}",
        image_sha256=sha or f"{n:064x}",
        image_uri=uri or f"/data/imgs/{n}.png",
        width=width,
        height=height,
        model_name="m",
        model_version=3,
        event_timestamp=T0,
        predicted_class=pred["class_ids"][0] if pred["class_ids"] else 0,
        predicted_class_name=LABELS.name_of(pred["class_ids"][0]) or "" if pred["class_ids"] else "",
        top_score=pred["scores"][0] if pred["scores"] else 0.0,
        predictions=json.dumps(pred),
    )


def _batch(task: Task, items: list[SampledItem], batch_id: str = "lb-test") -> LabellingBatch:
    return LabellingBatch(
        batch_id=batch_id,
        created=T0,
        model_name="m",
        task=task,
        label_map=LABELS,
        window_start=T0 - timedelta(days=1),
        window_end=T0,
        config=SamplingConfig(),
        items=items,
    )


def test_detection_tasks_use_percent_rectangles_named_as_in_the_label_config(tmp_path):
    batch = _batch("detection", [_item(0, "detection", stratum="random")])
    files = write_batch(batch, tmp_path, min_score=0.3)
    tasks = json.loads(files["tasks"].read_text())
    assert len(tasks) == 1
    data = tasks[0]["data"]
    assert data["image"] == "/data/local-files/?d=data/imgs/0.png"
    assert (data["image_sha256"], data["stratum"], data["labelling_batch_id"], data["request_id"]) == (
        "0" * 64,
        "random",
        "lb-test",
        "req0",
    )
    pred = tasks[0]["predictions"][0]
    assert pred["model_version"] == "m:3" and pred["score"] == pytest.approx(0.9)
    (region,) = pred["result"]  # the 0.1 detection is below min_score
    assert region["type"] == "rectanglelabels" and region["from_name"] == "label" and region["to_name"] == "image"
    assert (region["original_width"], region["original_height"]) == (50, 40)
    assert region["value"] == {"x": 20.0, "y": 12.5, "width": 40.0, "height": 25.0, "rotation": 0, "rectanglelabels": ["square"]}

    config = ET.fromstring(files["label_config"].read_text())
    tags = {el.get("name"): el for el in config}
    assert tags["image"].tag == "Image" and tags["image"].get("value") == "$image"
    assert tags["label"].tag == "RectangleLabels" and [lab.get("value") for lab in tags["label"]] == LABELS.names

    coco = json.loads(files["coco"].read_text())
    assert coco["images"][0]["file_name"] == "/data/imgs/0.png" and coco["images"][0]["stratum"] == "random"
    assert [(a["category_id"], a["bbox"], a["score"]) for a in coco["annotations"]] == [(2, [10, 5, 20, 10], 0.9), (1, [0, 0, 5, 5], 0.1)]
    assert coco["categories"] == [{"id": 1, "name": "circle"}, {"id": 2, "name": "square"}, {"id": 3, "name": "star"}]
    assert LabellingBatch.load(tmp_path) == batch


def test_classification_and_segmentation_tasks():
    cls_pred = {
        "task": "classification",
        "width": 50,
        "height": 40,
        "class_ids": [3],
        "scores": [0.7],
        "boxes": [[0, 0, 50, 40]],
        "probabilities": [0.1, 0.2, 0.7],
    }
    (task,) = to_tasks(_batch("classification", [_item(0, "classification", pred=cls_pred)]))
    (region,) = task["predictions"][0]["result"]
    assert region["type"] == "choices" and region["from_name"] == "choice" and region["value"] == {"choices": ["star"]}
    names = {el.get("name"): el.tag for el in ET.fromstring(label_config("classification", LABELS))}
    assert names == {"image": "Image", "choice": "Choices"}

    poly = [10, 10, 30, 10, 30, 20, 10, 20]
    seg_pred = {
        "task": "segmentation",
        "width": 50,
        "height": 40,
        "class_ids": [1],
        "scores": [0.1],
        "boxes": [[10, 10, 20, 10]],
        "polygons": [[poly]],
    }
    (task,) = to_tasks(_batch("segmentation", [_item(0, "segmentation", pred=seg_pred)]))
    (region,) = task["predictions"][0]["result"]
    assert region["type"] == "polygonlabels" and region["from_name"] == "polygon"
    assert region["value"]["points"] == [[20.0, 25.0], [60.0, 25.0], [60.0, 50.0], [20.0, 50.0]]
    assert region["value"]["polygonlabels"] == ["circle"]
    names = {el.get("name"): el.tag for el in ET.fromstring(label_config("segmentation", LABELS))}
    assert names == {"image": "Image", "polygon": "PolygonLabels", "brush": "BrushLabels"}
    assert batch_coco(_batch("segmentation", [_item(0, "segmentation", pred=seg_pred)]))["annotations"][0]["segmentation"] == [poly]


def test_brush_rle_matches_label_studio_encoding():
    # label-studio-converter's encode_rle of a 1x1 set pixel (4 RGBA values 255): 32-bit count 4,
    # word size 8 (-1 in 5 bits), run sizes 3/4/8/16 (-1 in 4 bits each), one run: 1, index 00,
    # length-1 = 3 in 3 bits, value 255; zero-padded to whole bytes.
    bits = f"{4:032b}" + "00111" + "0010" + "0011" + "0111" + "1111" + "1" + "00" + "011" + "11111111"
    bits += "0" * (-len(bits) % 8)
    expected = [int(bits[i : i + 8], 2) for i in range(0, len(bits), 8)]
    assert brush_encode(np.ones((1, 1), bool)) == expected
    assert brush_decode(expected, 1, 1).tolist() == [[True]]

    rng = np.random.default_rng(0)
    for shape in [(7, 5), (40, 50), (300, 300)]:
        mask = rng.random(shape) > 0.7
        mask[: shape[0] // 2] = True  # long runs (over 2**16 values at 300x300)
        assert (brush_decode(brush_encode(mask), shape[1], shape[0]) == mask).all()
    with pytest.raises(ValueError, match="expected"):
        brush_decode(brush_encode(np.ones((4, 4), bool)), 5, 4)


# -- import --------------------------------------------------------------------------------------


@pytest.fixture
def detection_round(tmp_path):
    truth = make_images(tmp_path / "images", 8, LABELS, "detection", seed=2)
    items = []
    for n, rec in enumerate(truth.images):
        pred = {"task": "detection", "width": rec.width, "height": rec.height, "class_ids": [1], "scores": [0.5], "boxes": [[1, 1, 5, 5]]}
        items.append(
            _item(
                n,
                "detection",
                stratum=("random", "class", "uncertain")[n % 3],
                width=rec.width,
                height=rec.height,
                pred=pred,
                sha=rec.sha256,
                uri=str(truth.image_path(rec)),
            )
        )
    batch = _batch("detection", items)
    return truth, batch, simulate_labels(batch, truth, completed_at=T0 + timedelta(hours=5))


def test_simulated_export_imports_as_exact_ground_truth_and_ingests(detection_round, tmp_path):
    truth, batch, export = detection_round
    result = import_export(export, "detection", LABELS, batch=batch)
    assert len(result.quarantine) == 0 and result.unlabelled == [] and len(result.labels) == 8
    by_sha = {r.sha256: r for r in truth.images}
    for row in result.labels:
        gt = row.truth()
        rec = by_sha[row.image_sha256]
        assert row.labelling_batch_id == "lb-test" and row.event_timestamp == T0 + timedelta(hours=5)
        assert row.stratum == batch.item(row.image_sha256).stratum
        assert [o["class_id"] for o in gt["objects"]] == [o.class_id for o in rec.objects]
        for got, want in zip(gt["objects"], rec.objects, strict=True):
            assert got["bbox"] == pytest.approx(want.bbox, abs=0.01)

    files = result.write(tmp_path / "labelled", tmp_path / "quarantine")
    manifest = Manifest.load(files["manifest"])
    assert sorted(r.sha256 for r in manifest.images) == sorted(by_sha)
    assert all(manifest.image_path(r).resolve() == truth.image_path(by_sha[r.sha256]).resolve() for r in manifest.images)
    # the labelled images go into a training dataset through ordinary ingest
    ingested = read_source(
        DataSpec(source=str(files["coco"]), images=manifest.root, label_map=str(LABELS.save(tmp_path / "lm.json"))), "detection"
    )
    assert len(ingested.quarantine) == 0 and len(ingested.manifest.images) == 8
    assert sum(len(r.objects) for r in ingested.manifest.images) == sum(len(r.objects) for r in truth.images)


def _result(task: dict, rid: str) -> dict:
    return next(r for r in task["annotations"][0]["result"] if r["id"] == rid)


def test_bad_and_partial_labels_are_quarantined_never_dropped(detection_round):
    _, batch, export = detection_round
    bad = copy.deepcopy(export)
    first = bad[0]["annotations"][0]["result"][0]
    first["value"]["x"] = 90.0  # box leaves the image by far more than a pixel
    first["value"]["width"] = 30.0
    bad[1]["annotations"][0]["result"][0]["value"]["rectanglelabels"] = ["triangle"]
    bad[2]["annotations"][0]["result"][0]["value"]["rotation"] = 30
    bad[3]["annotations"][0]["result"][0]["value"]["width"] = 0
    bad[4]["annotations"] = []
    bad[5]["annotations"][0]["was_cancelled"] = True
    bad[6]["annotations"][0]["result"].append(
        {
            **bad[6]["annotations"][0]["result"][0],
            "id": "extra",
            "value": {**bad[6]["annotations"][0]["result"][0]["value"], "rectanglelabels": ["square", "star"]},
        }
    )
    bad[7]["annotations"][0]["result"][0]["original_width"] = 999
    other = copy.deepcopy(export[0])
    other["data"]["labelling_batch_id"] = "lb-other"
    bad.append(other)

    result = import_export(bad, "detection", LABELS, batch=batch)
    kinds = result.quarantine.by_kind()
    assert kinds["box_outside_image"] == 1 and kinds["unknown_class"] == 1 and kinds["rotated_box"] == 1
    assert kinds["zero_size_box"] == 1 and kinds["ambiguous_label"] == 1 and kinds["size_mismatch"] == 1
    assert kinds["partial_label"] + kinds.get("invalid_label", 0) == 6
    assert result.quarantine.rejected_images == 6 and result.quarantine.total == 8
    assert sorted(u["reason"] for u in result.unlabelled) == ["annotation skipped (cancelled)", "no annotation"]
    assert result.labels == [] and result.other_batches == 1
    item = next(i for i in result.quarantine.items if i.kind == "unknown_class")
    assert "triangle" in item.reason and item.annotation_id is not None and item.file == batch.items[1].image_uri


def test_detection_image_labelled_empty_is_ground_truth_and_latest_annotation_wins(detection_round):
    _, batch, export = detection_round
    tasks = copy.deepcopy(export[:2])
    tasks[0]["annotations"][0]["result"] = []  # the person saw nothing to box
    later = copy.deepcopy(tasks[1]["annotations"][0])
    later["updated_at"] = (T0 + timedelta(days=1)).isoformat().replace("+00:00", "Z")
    later["result"] = later["result"][:1]
    tasks[1]["annotations"].append(later)
    result = import_export(tasks, "detection", LABELS, batch=batch)
    rows = {r.image_sha256: r for r in result.labels}
    assert rows[batch.items[0].image_sha256].truth()["objects"] == []
    assert len(rows[batch.items[1].image_sha256].truth()["objects"]) == 1 and rows[
        batch.items[1].image_sha256
    ].event_timestamp == T0 + timedelta(days=1)
    assert len(result.unlabelled) == 6  # the batch's other images are not in this export


def test_segmentation_polygons_and_brush_masks_import(tmp_path):
    truth = make_images(tmp_path / "seg", 3, LABELS, "segmentation", seed=5)
    items = [
        _item(
            n,
            "segmentation",
            width=r.width,
            height=r.height,
            sha=r.sha256,
            uri=str(truth.image_path(r)),
            pred={"task": "segmentation", "width": r.width, "height": r.height, "class_ids": [], "scores": [], "boxes": []},
        )
        for n, r in enumerate(truth.images)
    ]
    batch = _batch("segmentation", items)
    for fmt in ("polygon", "brush"):
        export = simulate_labels(batch, truth, mask_format=fmt)
        assert {r["type"] for t in export for r in t["annotations"][0]["result"]} == {f"{fmt}labels"}
        result = import_export(export, "segmentation", LABELS, batch=batch)
        assert len(result.quarantine) == 0 and len(result.labels) == 3
        for rec in truth.images:
            got = next(r for r in result.manifest.images if r.sha256 == rec.sha256)
            for g, w in zip(got.objects, rec.objects, strict=True):
                assert g.class_id == w.class_id
                a = decode_segmentation(g.segmentation, rec.height, rec.width)
                b = decode_segmentation(w.segmentation, rec.height, rec.width)
                assert (a & b).sum() / (a | b).sum() > 0.9

    export = simulate_labels(batch, truth, mask_format="brush")
    export[0]["annotations"][0]["result"][0]["value"]["rle"] = [1, 2, 3]
    result = import_export(export, "segmentation", LABELS, batch=batch)
    assert result.quarantine.by_kind()["invalid_mask"] == 1 and len(result.labels) == 2


def test_classification_choices(tmp_path):
    truth = make_images(tmp_path / "cls", 3, LABELS, "classification", seed=4)
    pred = {"task": "classification", "width": 48, "height": 40, "class_ids": [1], "scores": [0.4], "boxes": [[0, 0, 48, 40]]}
    batch = _batch(
        "classification",
        [
            _item(n, "classification", sha=r.sha256, uri=str(truth.image_path(r)), width=48, height=40, pred=pred)
            for n, r in enumerate(truth.images)
        ],
    )
    export = simulate_labels(batch, truth)
    export[1]["annotations"][0]["result"] = []
    export[2]["annotations"][0]["result"][0]["value"]["choices"] = ["circle", "star"]
    result = import_export(export, "classification", LABELS, batch=batch)
    assert [r.truth()["class_id"] for r in result.labels] == [truth.images[0].class_id]
    assert result.manifest.images[0].class_id == truth.images[0].class_id
    assert sorted(result.quarantine.by_kind()) == ["ambiguous_label", "invalid_label", "missing_label"]


def test_unreadable_exports_fail_with_the_file_named(tmp_path):
    p = tmp_path / "export.json"
    p.write_text('{"not": "a list"}')
    with pytest.raises(Exception, match="list of task objects"):
        read_export(p)
    p.write_text("[{")
    with pytest.raises(Exception, match="not valid JSON"):
        read_export(p)


# -- the API client -----------------------------------------------------------------------------


def test_fake_label_studio_records_each_request_before_it_answers(monkeypatch):
    # A test reading ls.requests right after a reply must see that request: the fake records first.
    with FakeLabelStudio(token="t") as ls:
        handler = ls._httpd.RequestHandlerClass
        seen_at_answer: list[int] = []
        original = handler.send_response

        def send_response(self, code, message=None):
            seen_at_answer.append(len(ls.requests))
            original(self, code, message)

        monkeypatch.setattr(handler, "send_response", send_response)
        for _ in range(3):
            req = urllib.request.Request(ls.url + "/api/projects/9/export?exportType=JSON", headers={"Authorization": "Token t"})
            with pytest.raises(urllib.error.HTTPError):
                urllib.request.urlopen(req, timeout=10)
        assert seen_at_answer == [1, 2, 3]


def test_client_creates_imports_and_exports_through_the_api(detection_round, monkeypatch):
    _, batch, export = detection_round
    monkeypatch.setenv("CVPIPE_TEST_LS_TOKEN", "s3cret")
    tasks = to_tasks(batch)
    with FakeLabelStudio(token="s3cret") as ls:
        client = LabelStudioClient(ls.url, token_env="CVPIPE_TEST_LS_TOKEN", max_wait=0.01)
        pid = client.create_project("cvpipe m", label_config("detection", LABELS))
        ls.fail_next(2, 503)  # retried
        answer = client.import_tasks(pid, tasks)
        assert answer["task_count"] == 8 and answer["prediction_count"] == 8
        imports = [r for r in ls.requests if r.path == f"/api/projects/{pid}/import"]
        assert [r.status for r in imports] == [503, 503, 201]
        assert imports[-1].body == tasks and imports[-1].headers["authorization"] == "Token s3cret"
        assert ls.projects[pid]["label_config"].startswith("<View>")

        by_sha = {t["data"]["image_sha256"]: t for t in export}
        ls.annotate(pid, lambda task: by_sha[task["data"]["image_sha256"]]["annotations"])
        exported = client.export(pid)
        assert ls.requests[-1].path == f"/api/projects/{pid}/export?exportType=JSON"
        result = import_export(exported, "detection", LABELS, batch=batch)
        assert len(result.labels) == 8 and len(result.quarantine) == 0

        ls.fail_next(3, 500)
        with pytest.raises(LabellingError, match="after 3 tries"):
            LabelStudioClient(ls.url, token_env="CVPIPE_TEST_LS_TOKEN", attempts=3, max_wait=0.01).export(pid)
        monkeypatch.setenv("CVPIPE_TEST_LS_TOKEN", "wrong")
        before = len(ls.requests)
        with pytest.raises(LabellingError) as err:
            LabelStudioClient(ls.url, token_env="CVPIPE_TEST_LS_TOKEN", max_wait=0.01).export(pid)
        assert err.value.status == 401 and len(ls.requests) == before + 1  # a refusal is not retried
    monkeypatch.delenv("CVPIPE_TEST_LS_TOKEN")
    with pytest.raises(LabellingError, match="CVPIPE_TEST_LS_TOKEN"):
        LabelStudioClient("http://127.0.0.1:1", token_env="CVPIPE_TEST_LS_TOKEN")


def test_item_paths_are_absolute_in_the_manifest_root(detection_round):
    _, batch, export = detection_round
    result = import_export(export, "detection", LABELS, batch=batch)
    assert Path(result.manifest.root).is_absolute() and all(not Path(r.path).is_absolute() for r in result.manifest.images)
