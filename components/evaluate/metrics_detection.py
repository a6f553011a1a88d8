"""COCO object-detection metrics, vectorised with numpy.

:func:`evaluate_detection` computes the 12 COCO statistics exactly as
pycocotools' ``COCOeval`` (``iouType="bbox"``) defines them, plus per-class
AP / AP50 / AP75 / AR100, precision-recall curves, and a confusion matrix,
precision, recall and F1 at one IoU and score threshold.

The definitions followed (pycocotools ``cocoeval.py``):

- IoU thresholds ``.50:.05:.95``; 101 recall points ``0:.01:1``; maxDets 1, 10
  and 100 per image *and category*; area ranges all ``[0, 1e10]``, small
  ``[0, 32²]``, medium ``[32², 96²]``, large ``[96², 1e10]`` with inclusive
  bounds, on the ground truth's ``area`` and a detection's ``w*h``.
- Box IoU uses box areas; a crowd region's "union" is the detection's area, so
  a crowd absorbs any detection mostly inside it.
- Ground truth is ignored when it is a crowd or outside the area range.
  Detections are matched greedily in descending score (ties: input order)
  to the unmatched, non-ignored ground truth of highest IoU (ties: the later
  one); only when none qualifies to an ignored one (crowds can absorb any
  number of detections). Detections matched to ignored ground truth, and
  unmatched ones outside the area range, are ignored.
- Precision is interpolated (made non-increasing from the right) and read at
  each recall point; ``-1`` marks a category without (non-ignored) ground
  truth, and a statistic is the unweighted mean over categories of the cells
  that are not ``-1`` (``-1`` when none is).

Differences from pycocotools, where pycocotools is wrong (cvpipe gives the
correct answer; see ``docs/evaluation.md``):

1. An annotation id of 0. pycocotools stores the *id* of the matched ground
   truth in ``dtMatches`` and reads 0 as "unmatched", so a detection that
   matches ground truth with ``id == 0`` counts as a false positive (and the
   ground truth as missed). cvpipe matches by position; ids play no part.
2. An empty detection list. ``COCO.loadRes([])`` raises ``IndexError``;
   cvpipe evaluates it: AP and AR are 0 for every category with ground truth.

How it is fast: all ``(detection, ground truth)`` pairs of the same image and
category are formed at once and their IoUs computed in one vectorised pass;
pairs below the lowest IoU threshold can never match and are dropped. The
greedy matching is sequential only among detections of the same image and
category, so it runs as a wavefront: step *r* matches the *r*-th candidate
detection of every (image, category) group at once, for all 4 area ranges x
10 IoU thresholds together. Accumulation uses the fact that interpolated
precision at recall point *r* is the largest precision among true positives
whose recall reaches *r*, so it only touches true positives plus one cumulative
count over all detections per (area range, maxDets).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from components.core.errors import EvaluationError

__all__ = [
    "COCO_STAT_NAMES",
    "CocoParams",
    "DetectionMetrics",
    "Detections",
    "GroundTruth",
    "evaluate_detection",
]

COCO_STAT_NAMES: tuple[str, ...] = (
    "map",
    "map_50",
    "map_75",
    "map_small",
    "map_medium",
    "map_large",
    "mar_1",
    "mar_10",
    "mar_100",
    "mar_small",
    "mar_medium",
    "mar_large",
)
"""cvpipe's names of the 12 COCO statistics, in pycocotools' ``stats`` order."""


def _default_iou() -> tuple[float, ...]:
    # np.linspace, exactly as pycocotools builds them: np.arange drifts.
    return tuple(float(x) for x in np.linspace(0.5, 0.95, round((0.95 - 0.5) / 0.05) + 1, endpoint=True))


def _default_recall() -> tuple[float, ...]:
    return tuple(float(x) for x in np.linspace(0.0, 1.0, round(1.0 / 0.01) + 1, endpoint=True))


@dataclass(frozen=True)
class CocoParams:
    """Evaluation parameters (the COCO defaults).

    Attributes:
        iou_thresholds: IoU thresholds, ascending.
        recall_thresholds: recall points precision is read at, ascending.
        max_dets: detections kept per image and category, ascending.
        area_ranges: ``(label, low, high)`` object-area ranges, inclusive; the first is "all".
    """

    iou_thresholds: tuple[float, ...] = field(default_factory=_default_iou)
    recall_thresholds: tuple[float, ...] = field(default_factory=_default_recall)
    max_dets: tuple[int, ...] = (1, 10, 100)
    area_ranges: tuple[tuple[str, float, float], ...] = (
        ("all", 0.0, 1e5**2),
        ("small", 0.0, 32.0**2),
        ("medium", 32.0**2, 96.0**2),
        ("large", 96.0**2, 1e5**2),
    )


@dataclass
class GroundTruth:
    """Ground-truth boxes, one row per object (columnar).

    Attributes:
        image_id: ``[N]`` image ids (ints or strings).
        category_id: ``[N]`` int category (label-map) ids.
        bbox: ``[N, 4]`` float boxes ``x, y, w, h`` in pixels.
        area: ``[N]`` object areas (COCO ``area``; mask area when there is one).
        iscrowd: ``[N]`` crowd flags.
        images: every image of the dataset, those without objects included (a whole
            COCO dict gives its ``images``); None: the images that have objects.
        categories: every category of the dataset (a whole COCO dict's
            ``categories``); None: the categories that have objects.
    """

    image_id: np.ndarray
    category_id: np.ndarray
    bbox: np.ndarray
    area: np.ndarray
    iscrowd: np.ndarray
    images: np.ndarray | None = None
    categories: list[int] | None = None

    @classmethod
    def from_arrays(
        cls,
        image_id: Sequence[Any] | np.ndarray,
        category_id: Sequence[int] | np.ndarray,
        bbox: Sequence[Sequence[float]] | np.ndarray,
        area: Sequence[float] | np.ndarray | None = None,
        iscrowd: Sequence[bool] | np.ndarray | None = None,
    ) -> GroundTruth:
        """Builds ground truth from arrays; ``area`` defaults to ``w*h``, ``iscrowd`` to False.

        Args:
            image_id: image id per object.
            category_id: category id per object.
            bbox: ``x, y, w, h`` per object.
            area: area per object.
            iscrowd: crowd flag per object.

        Returns:
            The ground truth.
        """
        b = np.asarray(bbox, dtype=np.float64).reshape(-1, 4)
        n = len(b)
        return cls(
            image_id=np.asarray(image_id).reshape(n),
            category_id=np.asarray(category_id, dtype=np.int64).reshape(n),
            bbox=b,
            area=b[:, 2] * b[:, 3] if area is None else np.asarray(area, dtype=np.float64).reshape(n),
            iscrowd=np.zeros(n, dtype=bool) if iscrowd is None else np.asarray(iscrowd).astype(bool).reshape(n),
        )

    @classmethod
    def from_coco(cls, annotations: Mapping[str, Any] | Iterable[Mapping[str, Any]]) -> GroundTruth:
        """Builds ground truth from a COCO dataset dict, or its annotation dicts alone.

        Args:
            annotations: a whole COCO dataset (``images``, ``annotations``,
                ``categories``: its images and categories become the evaluated
                universe, as in pycocotools), or just its ``annotations`` list
                (``image_id``, ``category_id``, ``bbox``, ``area``, ``iscrowd``).

        Returns:
            The ground truth.
        """
        images: np.ndarray | None = None
        categories: list[int] | None = None
        anns: list[Mapping[str, Any]]
        if isinstance(annotations, Mapping):
            doc = annotations
            images = np.asarray([i["id"] for i in doc.get("images", [])])
            categories = sorted(int(c["id"]) for c in doc.get("categories", [])) or None
            anns = list(doc.get("annotations", []))
        else:
            anns = list(annotations)
        gt = cls.from_arrays(
            [a["image_id"] for a in anns],
            [a["category_id"] for a in anns],
            np.array([a["bbox"] for a in anns], dtype=np.float64).reshape(-1, 4),
            [a["area"] if "area" in a else a["bbox"][2] * a["bbox"][3] for a in anns],
            [bool(a.get("iscrowd", 0)) for a in anns],
        )
        gt.images, gt.categories = images, categories
        return gt

    def __len__(self) -> int:
        return len(self.bbox)

    def select(self, mask: np.ndarray) -> GroundTruth:
        """The rows where ``mask`` is True."""
        return GroundTruth(self.image_id[mask], self.category_id[mask], self.bbox[mask], self.area[mask], self.iscrowd[mask])


@dataclass
class Detections:
    """Scored detections, one row per box (columnar).

    Attributes:
        image_id: ``[N]`` image ids.
        category_id: ``[N]`` int category ids.
        bbox: ``[N, 4]`` boxes ``x, y, w, h`` in pixels.
        score: ``[N]`` confidences.
    """

    image_id: np.ndarray
    category_id: np.ndarray
    bbox: np.ndarray
    score: np.ndarray

    @classmethod
    def from_arrays(
        cls,
        image_id: Sequence[Any] | np.ndarray,
        category_id: Sequence[int] | np.ndarray,
        bbox: Sequence[Sequence[float]] | np.ndarray,
        score: Sequence[float] | np.ndarray,
    ) -> Detections:
        """Builds detections from arrays.

        Args:
            image_id: image id per box.
            category_id: category id per box.
            bbox: ``x, y, w, h`` per box.
            score: confidence per box.

        Returns:
            The detections.
        """
        b = np.asarray(bbox, dtype=np.float64).reshape(-1, 4)
        n = len(b)
        return cls(
            image_id=np.asarray(image_id).reshape(n),
            category_id=np.asarray(category_id, dtype=np.int64).reshape(n),
            bbox=b,
            score=np.asarray(score, dtype=np.float64).reshape(n),
        )

    @classmethod
    def from_coco(cls, results: Iterable[Mapping[str, Any]]) -> Detections:
        """Builds detections from COCO result dicts (``image_id``, ``category_id``, ``bbox``, ``score``).

        Args:
            results: a COCO results list.

        Returns:
            The detections.
        """
        res = list(results)
        return cls.from_arrays(
            [r["image_id"] for r in res],
            [r["category_id"] for r in res],
            np.array([r["bbox"] for r in res], dtype=np.float64).reshape(-1, 4),
            [r["score"] for r in res],
        )

    @classmethod
    def empty(cls) -> Detections:
        """No detections."""
        return cls.from_arrays(np.zeros(0, dtype=np.int64), [], np.zeros((0, 4)), [])

    def __len__(self) -> int:
        return len(self.bbox)

    def select(self, mask: np.ndarray) -> Detections:
        """The rows where ``mask`` is True."""
        return Detections(self.image_id[mask], self.category_id[mask], self.bbox[mask], self.score[mask])


@dataclass
class DetectionMetrics:
    """Result of :func:`evaluate_detection`.

    Attributes:
        stats: the 12 COCO statistics in pycocotools' order (``-1`` where undefined).
        metrics: named scalars: :data:`COCO_STAT_NAMES` plus ``precision``, ``recall``,
            ``f1`` (micro) and ``f1_macro`` at ``iou_threshold`` / ``score_threshold``
            (detections matched within their class, as COCO matches), and
            ``localization_recall`` (the class-agnostic share of objects some detection found).
        category_ids: evaluated categories, ascending (the ``K`` axis).
        per_class: category id -> ``ap``, ``ap_50``, ``ap_75``, ``ar_100`` (``-1`` without
            ground truth), ``precision``, ``recall``, ``f1`` (None when undefined: no
            detection, no object, or neither), ``support`` (non-crowd objects).
        precision: ``[T, R, K, A, M]`` interpolated precision (pycocotools ``eval['precision']``).
        recall: ``[T, K, A, M]`` recall (pycocotools ``eval['recall']``).
        confusion_matrix: ``[K+1, K+1]`` counts, rows true, columns predicted,
            index 0 background, then ``category_ids`` in order.
        params: the parameters used.
        iou_threshold: IoU of the confusion matrix, precision, recall and F1.
        score_threshold: lowest score counted in the confusion matrix, precision, recall and F1.
        num_images: images evaluated.
        match_counts: ``[K, 3]`` per class: true positives, counted detections and
            non-crowd objects of the within-class matching (precision = tp / detections,
            recall = tp / objects).
    """

    stats: np.ndarray
    metrics: dict[str, float]
    category_ids: list[int]
    per_class: dict[int, dict[str, float | None]]
    precision: np.ndarray
    recall: np.ndarray
    confusion_matrix: np.ndarray
    params: CocoParams
    iou_threshold: float
    score_threshold: float
    num_images: int
    match_counts: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))

    def pr_curve(self, category_id: int | None = None, iou: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
        """The interpolated precision-recall curve at one IoU threshold (area all, most detections).

        Args:
            category_id: a category, or None for the mean over categories with ground truth.
            iou: one of the IoU thresholds.

        Returns:
            ``(recall points, precision)``; precision is all ``-1`` for a category without ground truth.
        """
        t = _index_of(self.params.iou_thresholds, iou)
        p = self.precision[t, :, :, 0, -1]
        rec = np.asarray(self.params.recall_thresholds)
        if category_id is not None:
            return rec, p[:, self.category_ids.index(category_id)].copy()
        has = p[0] > -1
        return rec, (p[:, has].mean(axis=1) if has.any() else -np.ones(len(rec)))

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly summary (no per-cell arrays except PR curves at IoU 0.5)."""
        rec, _ = self.pr_curve(None)
        return {
            "metrics": dict(self.metrics),
            "stats": [float(x) for x in self.stats],
            "category_ids": list(self.category_ids),
            "per_class": {str(k): dict(v) for k, v in self.per_class.items()},
            "pr_curves": {
                "iou": 0.5,
                "recall": [float(x) for x in rec],
                "mean": [float(x) for x in self.pr_curve(None)[1]],
                "per_class": {str(k): [float(x) for x in self.pr_curve(k)[1]] for k in self.category_ids},
            },
            "confusion_matrix": self.confusion_matrix.astype(int).tolist(),
            "iou_threshold": self.iou_threshold,
            "score_threshold": self.score_threshold,
            "num_images": self.num_images,
        }


def _index_of(values: Sequence[float], x: float) -> int:
    arr = np.asarray(values)
    hits = np.flatnonzero(np.abs(arr - x) < 1e-9)
    if not len(hits):
        raise ValueError(f"{x} is not one of {list(values)}")
    return int(hits[0])


# --------------------------------------------------------------------------- validation


def _check_boxes(what: str, bbox: np.ndarray, image_id: np.ndarray) -> None:
    bad = ~np.isfinite(bbox).all(axis=1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise EvaluationError(
            f"{what}: {int(bad.sum())} boxes have NaN or infinite coordinates (first: image {image_id[i]!r}, box {bbox[i].tolist()})"
        )
    inv = (bbox[:, 2] < 0) | (bbox[:, 3] < 0)
    if inv.any():
        i = int(np.flatnonzero(inv)[0])
        raise EvaluationError(
            f"{what}: {int(inv.sum())} boxes are inverted (negative width or height; first: image {image_id[i]!r}, xywh {bbox[i].tolist()})"
        )


def _index(ids: np.ndarray, universe: np.ndarray, what: str, kind: str) -> np.ndarray:
    """Positions of ``ids`` in the sorted ``universe``; raises on unknown ids."""
    if len(ids) == 0:
        return np.zeros(0, dtype=np.int64)
    if len(universe) == 0:
        raise EvaluationError(f"{what}: {kind} {ids[0]!r} is unknown (no {kind}s to evaluate)")
    try:
        pos = np.searchsorted(universe, ids)
    except TypeError:
        raise EvaluationError(f"{what}: {kind} ids of mixed types ({universe.dtype} and {ids.dtype})") from None
    pos = np.minimum(pos, len(universe) - 1)
    bad = universe[pos] != ids
    if np.any(bad):
        unknown = sorted({str(x) for x in ids[bad]})
        shown = ", ".join(unknown[:10]) + (" ..." if len(unknown) > 10 else "")
        raise EvaluationError(f"{what}: {int(np.sum(bad))} rows have unknown {kind} ids ({shown})")
    return pos.astype(np.int64)


def _universe(ids: np.ndarray | Sequence[Any], kind: str) -> np.ndarray:
    arr = np.asarray(ids)
    if arr.dtype == object:
        arr = arr.astype(str)
    uniq, counts = np.unique(arr, return_counts=True)
    if len(uniq) != len(arr):
        dups = [str(x) for x in uniq[counts > 1][:10]]
        raise EvaluationError(f"duplicated {kind} ids: {', '.join(dups)}")
    return uniq


def _as_key(ids: np.ndarray) -> np.ndarray:
    return ids.astype(str) if ids.dtype == object else ids


# --------------------------------------------------------------------------- core


def _pair_iou(dbox: np.ndarray, gbox: np.ndarray, crowd: np.ndarray) -> np.ndarray:
    """IoU of paired boxes, as pycocotools' ``bbIou`` (a crowd's union is the detection's area)."""
    dx, dy, dw, dh = dbox[:, 0], dbox[:, 1], dbox[:, 2], dbox[:, 3]
    gx, gy, gw, gh = gbox[:, 0], gbox[:, 1], gbox[:, 2], gbox[:, 3]
    w = np.minimum(dw + dx, gw + gx) - np.maximum(dx, gx)
    h = np.minimum(dh + dy, gh + gy) - np.maximum(dy, gy)
    inter = w * h
    da = dw * dh
    union = np.where(crowd, da, da + gw * gh - inter)
    ok = (w > 0) & (h > 0)
    out = np.zeros(len(inter))
    np.divide(inter, union, out=out, where=ok)
    return out


def _make_pairs(d_key: np.ndarray, g_key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All (detection, ground truth) index pairs with equal keys; both key arrays sorted ascending."""
    lo = np.searchsorted(g_key, d_key, side="left")
    hi = np.searchsorted(g_key, d_key, side="right")
    cnt = hi - lo
    total = int(cnt.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    det = np.repeat(np.arange(len(d_key), dtype=np.int64), cnt)
    starts = np.cumsum(cnt) - cnt
    gt = np.arange(total, dtype=np.int64) - np.repeat(starts - lo, cnt)
    return det, gt


def _greedy_match(
    pair_det: np.ndarray,
    pair_gt: np.ndarray,
    pair_iou: np.ndarray,
    det_group: np.ndarray,
    thresholds: np.ndarray,
    gt_ignore: np.ndarray,
    gt_crowd: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """COCO's greedy matching for many groups, area ranges and IoU thresholds at once.

    Detection indices must already be in matching order (group, then descending
    score); pairs may come in any order.

    Args:
        pair_det: detection index of each pair.
        pair_gt: ground-truth index of each pair.
        pair_iou: IoU of each pair.
        det_group: group (image x category) of every detection.
        thresholds: ``[T]`` IoU thresholds.
        gt_ignore: ``[A, G]`` ignore flags per area range.
        gt_crowd: ``[G]`` crowd flags (a crowd can be matched many times).

    Returns:
        ``(candidates, match)``: the detections that had a pair, ascending, and
        ``[A, T, len(candidates)]`` the matched ground-truth index or -1.
    """
    n_a, n_g = gt_ignore.shape
    n_t = len(thresholds)
    cand, pair_c = np.unique(pair_det, return_inverse=True)
    match = np.full((n_a, n_t, len(cand)), -1, dtype=np.int64)
    if len(cand) == 0:
        return cand, match
    # rank of each candidate among the candidates of its group
    grp = det_group[cand]
    first = np.r_[True, grp[1:] != grp[:-1]]
    start = np.maximum.accumulate(np.where(first, np.arange(len(cand)), 0))
    crank = np.arange(len(cand)) - start
    pc_rank = crank[pair_c]
    # step by step over ranks; inside a step, per detection: ascending IoU, then ground-truth order
    order = np.lexsort((pair_gt, pair_iou, pair_c, pc_rank))
    pair_c, pair_gt, pair_iou, pc_rank = pair_c[order], pair_gt[order], pair_iou[order], pc_rank[order]
    bounds = np.searchsorted(pc_rank, np.arange(int(crank.max()) + 2))
    matched = np.zeros((n_a, n_t, n_g), dtype=bool)
    thr = thresholds[None, :, None]
    for r in range(len(bounds) - 1):
        s, e = int(bounds[r]), int(bounds[r + 1])
        if s == e:
            continue
        g = pair_gt[s:e]
        c = pair_c[s:e]
        seg = np.flatnonzero(np.r_[True, c[1:] != c[:-1]])
        elig = (~matched[:, :, g] | gt_crowd[g]) & (pair_iou[s:e][None, None, :] >= thr)
        ign = gt_ignore[:, None, g]
        pos = np.arange(e - s)
        # the last eligible pair of a detection has the highest IoU (ties: later ground truth)
        best_n = np.maximum.reduceat(np.where(elig & ~ign, pos, -1), seg, axis=2)
        best_i = np.maximum.reduceat(np.where(elig & ign, pos, -1), seg, axis=2)
        best = np.where(best_n >= 0, best_n, best_i)
        hit = best >= 0
        gi = np.where(hit, g[np.maximum(best, 0)], -1)
        match[:, :, c[seg]] = gi
        ai, ti, _ = np.nonzero(hit)
        matched[ai, ti, gi[hit]] = True
    return cand, match


@dataclass
class _Prepared:
    images: np.ndarray
    cats: np.ndarray
    gt_img: np.ndarray
    gt_cat: np.ndarray
    dt_img: np.ndarray
    dt_cat: np.ndarray


def _prepare(
    gt: GroundTruth, dt: Detections, image_ids: Sequence[Any] | np.ndarray | None, category_ids: Sequence[int] | None
) -> _Prepared:
    if image_ids is None:
        # the ground truth's images: a detection on any other image is an error naming it, never silently counted
        if gt.images is not None:
            images = _universe(gt.images, "image")
        else:
            images = np.unique(_as_key(gt.image_id)) if len(gt) else np.zeros(0, dtype=np.int64)
    else:
        images = _universe(image_ids, "image")
    if len(images) == 0:
        raise EvaluationError("nothing to evaluate: no images (is the test split empty?)")
    if category_ids is None and gt.categories is not None:
        category_ids = gt.categories
    cats = _universe(category_ids, "category").astype(np.int64) if category_ids is not None else np.unique(gt.category_id)
    _check_boxes("ground truth", gt.bbox, gt.image_id)
    _check_boxes("predictions", dt.bbox, dt.image_id)
    if not np.isfinite(dt.score).all():
        raise EvaluationError(f"predictions: {int((~np.isfinite(dt.score)).sum())} scores are NaN or infinite")
    if not np.isfinite(gt.area).all():
        raise EvaluationError("ground truth: some areas are NaN or infinite")
    return _Prepared(
        images=images,
        cats=cats,
        gt_img=_index(_as_key(gt.image_id), images, "ground truth", "image"),
        gt_cat=_index(gt.category_id, cats, "ground truth", "category"),
        dt_img=_index(_as_key(dt.image_id), images, "predictions", "image"),
        dt_cat=_index(dt.category_id, cats, "predictions", "category"),
    )


def _coco(gt: GroundTruth, dt: Detections, prep: _Prepared, params: CocoParams) -> tuple[np.ndarray, np.ndarray]:
    """pycocotools' evaluate + accumulate: ``precision [T,R,K,A,M]`` and ``recall [T,K,A,M]``."""
    n_img, n_cat = len(prep.images), len(prep.cats)
    iou_thr = np.asarray(params.iou_thresholds, dtype=np.float64)
    rec_thr = np.asarray(params.recall_thresholds, dtype=np.float64)
    max_dets = sorted(params.max_dets)
    n_t, n_r, n_a, n_m = len(iou_thr), len(rec_thr), len(params.area_ranges), len(max_dets)
    lo = np.array([a[1] for a in params.area_ranges])[:, None]
    hi = np.array([a[2] for a in params.area_ranges])[:, None]

    # detections: by (category, image), then descending score, then input order; keep maxDets[-1] per group
    d_key = prep.dt_cat * n_img + prep.dt_img
    order = np.lexsort((-dt.score, d_key))
    d_key = d_key[order]
    first = np.r_[True, d_key[1:] != d_key[:-1]] if len(d_key) else np.zeros(0, dtype=bool)
    rank = np.arange(len(d_key)) - np.maximum.accumulate(np.where(first, np.arange(len(d_key)), 0))
    keep = rank < max_dets[-1]
    order, d_key, rank = order[keep], d_key[keep], rank[keep]
    d_box = dt.bbox[order]
    d_score = dt.score[order]
    d_cat = prep.dt_cat[order]
    d_area = d_box[:, 2] * d_box[:, 3]

    g_key = prep.gt_cat * n_img + prep.gt_img
    g_order = np.argsort(g_key, kind="stable")
    g_key = g_key[g_order]
    g_box = gt.bbox[g_order]
    g_crowd = gt.iscrowd[g_order]
    g_area = gt.area[g_order]
    g_cat = prep.gt_cat[g_order]
    g_ignore = g_crowd[None, :] | (g_area[None, :] < lo) | (g_area[None, :] > hi)  # [A, G]

    pd_, pg = _make_pairs(d_key, g_key)
    piou = _pair_iou(d_box[pd_], g_box[pg], g_crowd[pg])
    thr = np.minimum(iou_thr, 1 - 1e-10)
    live = piou >= thr.min()
    cand, match = _greedy_match(pd_[live], pg[live], piou[live], d_key, thr, g_ignore, g_crowd)

    # accumulate: per category, descending score; ties by image, then by rank (pycocotools' mergesort order)
    acc = np.lexsort((np.arange(len(d_key)), -d_score, d_cat))
    acc_pos = np.empty(len(acc), dtype=np.int64)
    acc_pos[acc] = np.arange(len(acc))
    a_cat = d_cat[acc]
    cat_start = np.searchsorted(a_cat, np.arange(n_cat), side="left")
    c_pos = acc_pos[cand]
    c_sort = np.argsort(c_pos)
    c_pos = c_pos[c_sort]
    c_cat = a_cat[c_pos]
    c_rank = rank[cand][c_sort]
    c_area = d_area[cand][c_sort]
    m_gt = match[:, :, c_sort]  # [A, T, C]
    c_hit = m_gt >= 0
    c_tp = c_hit & ~g_ignore[np.arange(n_a)[:, None, None], np.maximum(m_gt, 0)]
    c_first = np.searchsorted(c_cat, np.arange(n_cat), side="left")

    npig = np.stack([np.bincount(g_cat[~g_ignore[a]], minlength=n_cat) for a in range(n_a)])  # [A, K]
    a_area = d_area[acc]
    a_rank = rank[acc]
    precision = -np.ones((n_t, n_r, n_cat, n_a, n_m))
    recall = -np.ones((n_t, n_cat, n_a, n_m))
    eps = np.spacing(1)
    for a in range(n_a):
        has_gt = npig[a] > 0
        if not has_gt.any():
            continue
        oob = (a_area < lo[a, 0]) | (a_area > hi[a, 0])
        c_oob = (c_area < lo[a, 0]) | (c_area > hi[a, 0])
        for m, md in enumerate(max_dets):
            valid = a_rank < md
            # potential false positives: every valid detection inside the area range ...
            base = np.concatenate([[0], np.cumsum(valid & ~oob)])
            c_valid = c_rank < md
            tp = c_tp[a] & c_valid[None, :]  # [T, C]
            # ... minus those matched (a matched detection is a true positive or ignored, never a false positive)
            corr = c_hit[a] & (c_valid & ~c_oob)[None, :]
            zero = np.zeros((n_t, 1), dtype=np.int64)
            tp_cum = np.concatenate([zero, np.cumsum(tp, axis=1)], axis=1)
            corr_cum = np.concatenate([zero, np.cumsum(corr, axis=1)], axis=1)
            ti, ci = np.nonzero(tp)
            k = c_cat[ci]
            n_tp = (tp_cum[ti, ci + 1] - tp_cum[ti, c_first[k]]).astype(np.float64)
            n_fp = ((base[c_pos[ci] + 1] - base[cat_start[k]]) - (corr_cum[ti, ci + 1] - corr_cum[ti, c_first[k]])).astype(np.float64)
            pr = n_tp / (n_fp + n_tp + eps)
            rc = n_tp / npig[a, k]
            # the largest precision among true positives reaching each recall point
            c_idx = np.searchsorted(rec_thr, rc, side="right")
            best = np.zeros((n_t, n_cat, n_r + 1))
            if len(ti):
                key = (ti * n_cat + k) * (n_r + 1) + c_idx
                starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
                best.reshape(-1)[key[starts]] = np.maximum.reduceat(pr, starts)
            q = np.maximum.accumulate(best[:, :, ::-1], axis=2)[:, :, ::-1][:, :, 1:]  # [T, K, R]
            prec = np.transpose(q, (0, 2, 1))
            prec[:, :, ~has_gt] = -1
            precision[:, :, :, a, m] = prec
            n_all = np.zeros((n_t, n_cat))
            np.add.at(n_all, (ti, k), 1.0)
            rec = n_all / np.maximum(npig[a], 1)[None, :]
            rec[:, ~has_gt] = -1
            recall[:, :, a, m] = rec
    return precision, recall


def _summarize(precision: np.ndarray, recall: np.ndarray, params: CocoParams) -> np.ndarray:
    """pycocotools' ``summarize()`` for bbox: the 12 statistics."""
    labels = [a[0] for a in params.area_ranges]
    max_dets = sorted(params.max_dets)

    def one(ap: bool, iou: float | None = None, area: str = "all", md: int = 100) -> float:
        a = labels.index(area)
        m = max_dets.index(md)
        s = precision[..., a, m] if ap else recall[..., a, m]
        if iou is not None:
            s = s[_index_of(params.iou_thresholds, iou)]
        v = s[s > -1]
        return float(np.mean(v)) if v.size else -1.0

    md = max_dets[-1]
    return np.array(
        [
            one(True),
            one(True, 0.5, md=md),
            one(True, 0.75, md=md),
            one(True, area="small", md=md),
            one(True, area="medium", md=md),
            one(True, area="large", md=md),
            one(False, md=max_dets[0]),
            one(False, md=max_dets[1]),
            one(False, md=md),
            one(False, area="small", md=md),
            one(False, area="medium", md=md),
            one(False, area="large", md=md),
        ]
    )


def _confusion(gt: GroundTruth, dt: Detections, prep: _Prepared, iou: float, score: float) -> np.ndarray:
    """Class-agnostic greedy matching per image at one IoU: rows true, columns predicted, 0 = background.

    A detection at or above ``score`` takes the unmatched non-crowd ground truth
    of highest IoU >= ``iou`` (any class); failing that a crowd region absorbs it
    (not counted); else it is a background false positive. Unmatched non-crowd
    ground truth is a miss (predicted background).
    """
    n_cat = len(prep.cats)
    cm = np.zeros((n_cat + 1, n_cat + 1), dtype=np.int64)
    sel = np.flatnonzero(dt.score >= score)
    d_img = prep.dt_img[sel]
    order = sel[np.lexsort((-dt.score[sel], d_img))]
    d_img = prep.dt_img[order]
    g_order = np.argsort(prep.gt_img, kind="stable")
    g_img = prep.gt_img[g_order]
    crowd = gt.iscrowd[g_order]
    pd_, pg = _make_pairs(d_img, g_img)
    piou = _pair_iou(dt.bbox[order][pd_], gt.bbox[g_order][pg], crowd[pg])
    thr = np.array([min(iou, 1 - 1e-10)])
    live = piou >= thr[0]
    cand, match = _greedy_match(pd_[live], pg[live], piou[live], d_img, thr, crowd[None, :], crowd)
    d_cls = prep.dt_cat[order] + 1
    g_cls = prep.gt_cat[g_order] + 1
    pred_true = np.zeros(len(order), dtype=np.int64)  # 0: background (false positive)
    absorbed = np.zeros(len(order), dtype=bool)
    g_hit = np.zeros(len(g_order), dtype=bool)
    m = match[0, 0]
    hit = m >= 0
    hc, hg = cand[hit], m[hit]
    is_crowd = crowd[hg]
    absorbed[hc[is_crowd]] = True
    pred_true[hc[~is_crowd]] = g_cls[hg[~is_crowd]]
    g_hit[hg[~is_crowd]] = True
    counted = ~absorbed
    np.add.at(cm, (pred_true[counted], d_cls[counted]), 1)
    missed = ~g_hit & ~crowd
    cm[:, 0] += np.bincount(g_cls[missed], minlength=n_cat + 1)
    return cm


def _class_counts(gt: GroundTruth, dt: Detections, prep: _Prepared, iou: float, score: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Greedy matching within each (image, class), as COCO matches: ``(true positives, predictions, objects)`` per class.

    A detection at or above ``score`` takes the unmatched non-crowd object of
    its own class with the highest IoU >= ``iou``; failing that a crowd region
    of its class absorbs it (not counted); else it is a false positive. A
    wrong-class box, whatever its score, never takes an object from the right one.
    """
    n_cat = len(prep.cats)
    sel = np.flatnonzero(dt.score >= score)
    sel_key = prep.dt_img[sel] * n_cat + prep.dt_cat[sel]
    order = sel[np.lexsort((-dt.score[sel], sel_key))]
    d_key = prep.dt_img[order] * n_cat + prep.dt_cat[order]
    g_all = prep.gt_img * n_cat + prep.gt_cat
    g_order = np.argsort(g_all, kind="stable")
    g_key = g_all[g_order]
    crowd = gt.iscrowd[g_order]
    pd_, pg = _make_pairs(d_key, g_key)
    piou = _pair_iou(dt.bbox[order][pd_], gt.bbox[g_order][pg], crowd[pg])
    thr = np.array([min(iou, 1 - 1e-10)])
    live = piou >= thr[0]
    cand, match = _greedy_match(pd_[live], pg[live], piou[live], d_key, thr, crowd[None, :], crowd)
    m = match[0, 0]
    hit = m >= 0
    hc, hg = cand[hit], m[hit]
    absorbed = np.zeros(len(order), dtype=bool)
    absorbed[hc[crowd[hg]]] = True
    d_cat, g_cat = prep.dt_cat[order], prep.gt_cat[g_order]
    tp = np.bincount(d_cat[hc[~crowd[hg]]], minlength=n_cat).astype(np.float64)
    pred = np.bincount(d_cat[~absorbed], minlength=n_cat).astype(np.float64)
    true = np.bincount(g_cat[~crowd], minlength=n_cat).astype(np.float64)
    return tp, pred, true


def _prf(
    tp: np.ndarray, pred: np.ndarray, true: np.ndarray
) -> tuple[list[float | None], list[float | None], list[float | None], dict[str, float]]:
    """Per class and overall precision, recall, F1; a ratio with nothing to count (0/0) is None (undefined)."""
    p = [float(t / n) if n else None for t, n in zip(tp, pred, strict=True)]
    r = [float(t / n) if n else None for t, n in zip(tp, true, strict=True)]
    f: list[float | None] = []
    for pk, rk in zip(p, r, strict=True):
        if pk is None and rk is None:
            f.append(None)  # neither objects nor detections of the class
        else:
            a, b = pk or 0.0, rk or 0.0
            f.append(2 * a * b / (a + b) if a + b else 0.0)
    tp_s, pred_s, true_s = tp.sum(), pred.sum(), true.sum()
    mp = tp_s / pred_s if pred_s else 0.0
    mr = tp_s / true_s if true_s else 0.0
    defined = [x for x in f if x is not None]
    return (
        p,
        r,
        f,
        {
            "precision": float(mp),
            "recall": float(mr),
            "f1": float(2 * mp * mr / (mp + mr)) if mp + mr else 0.0,
            "f1_macro": float(np.mean(defined)) if defined else 0.0,
        },
    )


def evaluate_detection(
    gt: GroundTruth,
    dt: Detections,
    *,
    image_ids: Sequence[Any] | np.ndarray | None = None,
    category_ids: Sequence[int] | None = None,
    params: CocoParams | None = None,
    iou_threshold: float = 0.5,
    score_threshold: float = 0.3,
    unknown_categories: Literal["raise", "ignore"] = "raise",
) -> DetectionMetrics:
    """Evaluates detections against ground truth with COCO's bbox protocol.

    Args:
        gt: ground-truth objects.
        dt: detections (an empty set is fine: every AP is 0).
        image_ids: the evaluated images (images without objects or detections
            count); default: the ground truth's images (a whole COCO dict's
            ``images``, else those with objects). A detection on another image
            is an error naming its id. Duplicates are an error.
        category_ids: the evaluated categories (the label map's ids); default:
            the ground truth's categories.
        unknown_categories: a detection of a category outside ``category_ids``:
            ``raise`` (an error naming the ids) or ``ignore`` it, as pycocotools does.
        params: COCO parameters (defaults: the COCO protocol).
        iou_threshold: IoU of the confusion matrix, precision, recall and F1.
        score_threshold: lowest score counted in the confusion matrix, precision, recall and F1.

    Returns:
        The metrics.

    Raises:
        EvaluationError: NaN/infinite or inverted boxes, NaN scores, unknown
            images or categories, duplicated image ids, or no images at all.
    """
    p = params or CocoParams()
    if unknown_categories == "ignore":
        known = category_ids if category_ids is not None else (gt.categories if gt.categories is not None else np.unique(gt.category_id))
        dt = dt.select(np.isin(dt.category_id, np.asarray(list(known), dtype=np.int64)))
    prep = _prepare(gt, dt, image_ids, category_ids)
    precision, recall = _coco(gt, dt, prep, p)
    stats = _summarize(precision, recall, p)
    cm = _confusion(gt, dt, prep, iou_threshold, score_threshold)
    counts = _class_counts(gt, dt, prep, iou_threshold, score_threshold)
    cp, cr, cf, micro = _prf(*counts)
    objects = cm[1:, :].sum()
    # class-agnostic, and named so: objects some detection localised, whatever class it said
    micro["localization_recall"] = float(cm[1:, 1:].sum() / objects) if objects else 0.0
    md = len(p.max_dets) - 1
    t50, t75 = _index_of(p.iou_thresholds, 0.5), _index_of(p.iou_thresholds, 0.75)
    support = np.bincount(prep.gt_cat[~gt.iscrowd], minlength=len(prep.cats))
    per_class: dict[int, dict[str, float | None]] = {}
    for k, cid in enumerate(prep.cats.tolist()):
        pk = precision[:, :, k, 0, md]
        has = bool(pk[0, 0] > -1)
        per_class[int(cid)] = {
            "ap": float(pk.mean()) if has else -1.0,
            "ap_50": float(pk[t50].mean()) if has else -1.0,
            "ap_75": float(pk[t75].mean()) if has else -1.0,
            "ar_100": float(recall[:, k, 0, md].mean()) if has else -1.0,
            "precision": cp[k],
            "recall": cr[k],
            "f1": cf[k],
            "support": float(support[k]),
        }
    metrics = {name: float(v) for name, v in zip(COCO_STAT_NAMES, stats, strict=True)}
    metrics.update(micro)
    return DetectionMetrics(
        stats=stats,
        metrics=metrics,
        category_ids=[int(c) for c in prep.cats],
        per_class=per_class,
        precision=precision,
        recall=recall,
        confusion_matrix=cm,
        params=p,
        iou_threshold=iou_threshold,
        score_threshold=score_threshold,
        num_images=len(prep.images),
        match_counts=np.stack(counts, axis=1),
    )
