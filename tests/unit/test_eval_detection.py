"""COCO detection metrics: pycocotools' COCOeval is the oracle (test-only import)."""

from __future__ import annotations

import contextlib
import copy
import io
from typing import Any

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from components.core.errors import EvaluationError
from components.evaluate.metrics_detection import COCO_STAT_NAMES, Detections, GroundTruth, evaluate_detection

Dataset = dict[str, Any]
Results = list[dict[str, Any]]


def coco_eval(dataset: Dataset, results: Results) -> COCOeval:
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = copy.deepcopy(dataset)
        gt.createIndex()
        dt = gt.loadRes(copy.deepcopy(results))
        ev = COCOeval(gt, dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


def ours(dataset: Dataset, results: Results, **kw: Any):
    return evaluate_detection(
        GroundTruth.from_coco(dataset["annotations"]),
        Detections.from_coco(results) if results else Detections.empty(),
        image_ids=[i["id"] for i in dataset["images"]],
        category_ids=[c["id"] for c in dataset["categories"]],
        **kw,
    )


def realistic(seed: int, n_img: int = 40, n_cat: int = 5) -> tuple[Dataset, Results]:
    """Jittered copies of objects plus clutter; crowds, empty images, images without detections, score ties."""
    rng = np.random.default_rng(seed)
    images: list[dict[str, Any]] = []
    anns: list[dict[str, Any]] = []
    res: Results = []
    for i in range(1, n_img + 1):
        w_img, h_img = (int(v) for v in rng.integers(60, 500, 2))
        images.append({"id": i, "width": w_img, "height": h_img})
        objs = []
        for _ in range(int(rng.integers(0, 9))):  # 0: an empty image
            w, h = np.exp(rng.uniform(np.log(3), np.log(250), 2))  # small, medium and large
            x, y = rng.uniform(0, w_img), rng.uniform(0, h_img)
            c = int(rng.integers(1, n_cat + 1))
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": i,
                    "category_id": c,
                    "bbox": [float(x), float(y), float(w), float(h)],
                    "area": float(w * h * rng.uniform(0.4, 1.0)),
                    "iscrowd": int(rng.random() < 0.12),
                }
            )
            objs.append((x, y, w, h, c))
        if rng.random() < 0.15:
            continue  # an image without detections
        for _ in range(int(rng.integers(0, 30))):
            if objs and rng.random() < 0.6:
                x, y, w, h, c = objs[int(rng.integers(len(objs)))]
                j = rng.normal(0, 0.15, 4)
                box = [x + j[0] * w, y + j[1] * h, w * np.exp(j[2]), h * np.exp(j[3])]
                c = c if rng.random() < 0.8 else int(rng.integers(1, n_cat + 1))
            else:
                w, h = np.exp(rng.uniform(np.log(3), np.log(250), 2))
                box = [rng.uniform(0, w_img), rng.uniform(0, h_img), w, h]
                c = int(rng.integers(1, n_cat + 1))
            res.append({"image_id": i, "category_id": c, "bbox": [float(v) for v in box], "score": float(np.round(rng.random(), 1))})
    return {"images": images, "annotations": anns, "categories": [{"id": c} for c in range(1, n_cat + 1)]}, res


def gridded(seed: int) -> tuple[Dataset, Results]:
    """Boxes on a coarse grid: equal IoUs, areas exactly on the range bounds, >100 detections per image and class."""
    rng = np.random.default_rng(seed)
    grid, sizes = [0, 8, 16, 32, 48, 96], [8, 16, 32, 64, 96, 128]
    anns: list[dict[str, Any]] = []
    res: Results = []
    for i in range(1, 7):
        for _ in range(int(rng.integers(0, 12))):
            x, y = (float(v) for v in rng.choice(grid, 2))
            w, h = (float(v) for v in rng.choice(sizes, 2))
            area = float(rng.choice([w * h, 32.0**2, 96.0**2, w * h / 2]))
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": i,
                    "category_id": int(rng.integers(1, 3)),
                    "bbox": [x, y, w, h],
                    "area": area,
                    "iscrowd": int(rng.random() < 0.25),
                }
            )
        for _ in range(int(rng.integers(0, 150))):
            x, y = (float(v) for v in rng.choice(grid, 2))
            w, h = (float(v) for v in rng.choice(sizes, 2))
            res.append(
                {"image_id": i, "category_id": int(rng.integers(1, 3)), "bbox": [x, y, w, h], "score": float(rng.choice([0.1, 0.5, 0.9]))}
            )
    return {"images": [{"id": i} for i in range(1, 7)], "annotations": anns, "categories": [{"id": 1}, {"id": 2}, {"id": 3}]}, res


@pytest.mark.parametrize("seed", range(6))
def test_twelve_stats_match_pycocotools_on_realistic_data(seed: int) -> None:
    dataset, results = realistic(seed)
    ref = coco_eval(dataset, results)
    got = ours(dataset, results)
    assert np.abs(got.stats - np.asarray(ref.stats)).max() <= 1e-6
    # the whole precision / recall arrays agree, not just their means
    assert np.abs(got.precision - ref.eval["precision"]).max() <= 1e-9
    assert np.abs(got.recall - ref.eval["recall"]).max() <= 1e-9
    assert set(got.metrics) >= set(COCO_STAT_NAMES)


@pytest.mark.parametrize("seed", range(4))
def test_twelve_stats_match_pycocotools_on_ties_and_area_bounds(seed: int) -> None:
    dataset, results = gridded(seed)
    ref = coco_eval(dataset, results)
    got = ours(dataset, results)
    assert np.abs(got.stats - np.asarray(ref.stats)).max() <= 1e-6
    assert np.abs(got.precision - ref.eval["precision"]).max() <= 1e-9
    # category 3 has no ground truth: -1 cells, left out of every mean
    assert (got.precision[:, :, 2] == -1).all()
    assert got.per_class[3]["ap"] == -1.0


def test_per_class_ap_and_pr_curves_come_from_the_precision_array() -> None:
    dataset, results = realistic(11)
    ref = coco_eval(dataset, results)
    got = ours(dataset, results)
    p = ref.eval["precision"]
    for k, cid in enumerate(got.category_ids):
        cell = p[:, :, k, 0, 2]
        if cell[0, 0] == -1:
            assert got.per_class[cid]["ap"] == -1.0
            continue
        assert got.per_class[cid]["ap"] == pytest.approx(cell.mean(), abs=1e-12)
        assert got.per_class[cid]["ap_50"] == pytest.approx(cell[0].mean(), abs=1e-12)
        assert got.per_class[cid]["ap_75"] == pytest.approx(cell[5].mean(), abs=1e-12)
        rec, prec = got.pr_curve(cid)
        assert len(rec) == 101 and np.allclose(prec, p[0, :, k, 0, 2])
        assert np.all(np.diff(prec) <= 1e-12)  # interpolated precision never rises with recall


def test_annotation_id_zero_is_matched_where_pycocotools_counts_it_as_missed() -> None:
    dataset: Dataset = {
        "images": [{"id": 1}, {"id": 2}],
        "annotations": [
            {"id": 0, "image_id": 1, "category_id": 1, "bbox": [10, 10, 50, 50], "area": 2500, "iscrowd": 0},
            {"id": 1, "image_id": 2, "category_id": 1, "bbox": [20, 20, 40, 40], "area": 1600, "iscrowd": 0},
        ],
        "categories": [{"id": 1}],
    }
    results = [
        {"image_id": 1, "category_id": 1, "bbox": [10, 10, 50, 50], "score": 0.9},
        {"image_id": 2, "category_id": 1, "bbox": [20, 20, 40, 40], "score": 0.8},
    ]
    shifted = copy.deepcopy(dataset)
    for a in shifted["annotations"]:
        a["id"] += 1
    correct = np.asarray(coco_eval(shifted, results).stats)
    buggy = np.asarray(coco_eval(dataset, results).stats)
    assert correct[0] == pytest.approx(1.0)  # two perfect detections
    assert buggy[0] < 0.6  # pycocotools reads the match with id 0 as "no match"
    got = ours(dataset, results)
    assert np.abs(got.stats - correct).max() <= 1e-12


def test_empty_detections_give_zero_where_pycocotools_raises() -> None:
    dataset, _ = realistic(3)
    with pytest.raises(IndexError), contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = copy.deepcopy(dataset)
        gt.createIndex()
        gt.loadRes([])
    # the correct answer: what pycocotools says for one detection that matches nothing
    lonely = [{"image_id": 1, "category_id": 1, "bbox": [1e4, 1e4, 5, 5], "score": 0.5}]
    expected = np.asarray(coco_eval(dataset, lonely).stats)
    got = ours(dataset, [])
    assert np.abs(got.stats - expected).max() <= 1e-12
    assert set(got.stats.tolist()) <= {0.0, -1.0}
    assert got.metrics["map"] == 0.0


def test_confusion_matrix_precision_recall_f1_on_a_hand_made_image() -> None:
    # class 1: one object found; class 2: one object predicted as class 1; one object missed;
    # one false positive on background; one detection inside a crowd region (absorbed, not counted);
    # one detection below the score threshold (not counted)
    gt = GroundTruth.from_arrays(
        ["a"] * 4,
        [1, 2, 2, 1],
        [[0, 0, 10, 10], [20, 0, 10, 10], [40, 0, 10, 10], [60, 0, 30, 30]],
        iscrowd=[False, False, False, True],
    )
    dt = Detections.from_arrays(
        ["a"] * 5,
        [1, 1, 2, 1, 2],
        [[0, 0, 10, 10], [20, 0, 10, 10], [0, 50, 10, 10], [65, 5, 10, 10], [40, 0, 10, 10]],
        [0.9, 0.8, 0.7, 0.6, 0.1],
    )
    m = evaluate_detection(gt, dt, category_ids=[1, 2], iou_threshold=0.5, score_threshold=0.3)
    # rows true (0 background, 1, 2), columns predicted
    assert m.confusion_matrix.tolist() == [[0, 0, 1], [0, 1, 0], [1, 1, 0]]
    assert m.per_class[1]["precision"] == pytest.approx(0.5)  # 1 of 2 class-1 predictions right
    assert m.per_class[1]["recall"] == pytest.approx(1.0)
    assert m.per_class[2]["precision"] == 0.0
    assert m.per_class[2]["recall"] == 0.0
    assert m.per_class[1]["support"] == 1.0 and m.per_class[2]["support"] == 2.0
    assert m.metrics["precision"] == pytest.approx(1 / 3)
    assert m.metrics["recall"] == pytest.approx(1 / 3)
    assert m.metrics["f1"] == pytest.approx(1 / 3)


def test_string_image_ids_and_images_without_anything_count() -> None:
    dataset, results = realistic(5, n_img=10)
    ref = np.asarray(coco_eval(dataset, results).stats)
    gt = GroundTruth.from_coco(dataset["annotations"])
    dt = Detections.from_coco(results)
    gt.image_id = np.array([f"img{i:03d}" for i in gt.image_id])
    dt.image_id = np.array([f"img{i:03d}" for i in dt.image_id])
    # zero-padded names sort like the integer ids, so score ties break the same way
    got = evaluate_detection(gt, dt, image_ids=[f"img{i:03d}" for i in range(1, 11)], category_ids=[1, 2, 3, 4, 5])
    assert np.abs(got.stats - ref).max() <= 1e-6


def _one(**overrides: Any) -> tuple[GroundTruth, Detections]:
    gt = GroundTruth.from_arrays(["a", "b"], [1, 2], [[0, 0, 10, 10], [5, 5, 20, 20]])
    d: dict[str, Any] = {"image_id": ["a", "b"], "category_id": [1, 2], "bbox": [[0, 0, 10, 10], [5, 5, 20, 20]], "score": [0.9, 0.8]}
    d.update(overrides)
    return gt, Detections.from_arrays(**d)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"bbox": [[0, 0, np.nan, 10], [5, 5, 20, 20]]}, "NaN or infinite coordinates"),
        ({"bbox": [[0, 0, -3, 10], [5, 5, 20, 20]]}, "inverted"),
        ({"score": [np.nan, 0.8]}, "scores are NaN"),
        ({"category_id": [1, 7]}, "unknown category ids \\(7\\)"),
        ({"image_id": ["a", "zzz"]}, "unknown image ids \\(zzz\\)"),
    ],
)
def test_bad_predictions_raise_evaluation_error(overrides: dict[str, Any], message: str) -> None:
    gt, dt = _one(**overrides)
    with pytest.raises(EvaluationError, match=message):
        evaluate_detection(gt, dt, image_ids=["a", "b"], category_ids=[1, 2])


def test_duplicated_and_missing_images_raise_evaluation_error() -> None:
    gt, dt = _one()
    with pytest.raises(EvaluationError, match="duplicated image ids: a"):
        evaluate_detection(gt, dt, image_ids=["a", "b", "a"], category_ids=[1, 2])
    with pytest.raises(EvaluationError, match="no images"):
        evaluate_detection(GroundTruth.from_arrays([], [], np.zeros((0, 4))), Detections.empty(), image_ids=[], category_ids=[1])


def test_f1_matches_within_the_class_and_names_the_class_agnostic_figure() -> None:
    # a wrong-class box with a higher score must not take the object from the right-class box
    gt = GroundTruth.from_arrays(["a"], [1], [[0, 0, 10, 10]])
    dt = Detections.from_arrays(["a", "a"], [2, 1], [[0, 0, 10, 10], [0, 0, 10, 10]], [0.9, 0.8])
    m = evaluate_detection(gt, dt, category_ids=[1, 2], iou_threshold=0.5, score_threshold=0.3)
    assert m.per_class[1]["ap"] == pytest.approx(1.0)
    assert (m.per_class[1]["precision"], m.per_class[1]["recall"], m.per_class[1]["f1"]) == (1.0, 1.0, 1.0)
    assert (m.per_class[2]["precision"], m.per_class[2]["recall"]) == (0.0, None)  # a false positive; no object to recall
    assert m.metrics["recall"] == 1.0 and m.metrics["precision"] == pytest.approx(0.5)
    # the confusion matrix stays class-agnostic (it shows the confusion), and says so
    assert m.confusion_matrix.tolist() == [[0, 1, 0], [0, 0, 1], [0, 0, 0]]
    assert m.metrics["localization_recall"] == 1.0


def test_a_class_with_neither_objects_nor_detections_is_undefined() -> None:
    gt = GroundTruth.from_arrays(["a"], [1], [[0, 0, 10, 10]])
    dt = Detections.from_arrays(["a"], [1], [[0, 0, 10, 10]], [0.9])
    m = evaluate_detection(gt, dt, category_ids=[1, 2, 3], iou_threshold=0.5, score_threshold=0.3)
    assert {k: m.per_class[3][k] for k in ("precision", "recall", "f1")} == {"precision": None, "recall": None, "f1": None}
    assert m.metrics["f1_macro"] == 1.0  # undefined classes do not drag the macro mean


def test_whole_coco_dict_unknown_images_rejected_unknown_categories_a_choice() -> None:
    dataset, results = realistic(3, n_img=10)
    gt = GroundTruth.from_coco(dataset)  # the whole dict: its images and categories are the universe
    got = evaluate_detection(gt, Detections.from_coco(results))
    assert np.abs(got.stats - np.asarray(coco_eval(dataset, results).stats)).max() <= 1e-6
    stray = [*results, {"image_id": 999, "category_id": 1, "bbox": [0, 0, 5, 5], "score": 0.5}]
    with pytest.raises(EvaluationError, match=r"unknown image ids \(999\)"):
        evaluate_detection(gt, Detections.from_coco(stray))
    # from annotations alone the universe is the annotated images: image 9 (no objects) is named as well
    with pytest.raises(EvaluationError, match=r"unknown image ids \(9, 999\)"):
        evaluate_detection(GroundTruth.from_coco(dataset["annotations"]), Detections.from_coco(stray))
    other = [*results, {"image_id": 1, "category_id": 77, "bbox": [0, 0, 5, 5], "score": 0.99}]
    with pytest.raises(EvaluationError, match=r"unknown category ids \(77\)"):
        evaluate_detection(gt, Detections.from_coco(other))
    ignored = evaluate_detection(gt, Detections.from_coco(other), unknown_categories="ignore")
    assert np.abs(ignored.stats - np.asarray(coco_eval(dataset, other).stats)).max() <= 1e-6
