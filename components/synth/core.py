"""Synthetic, exactly-labelled vision datasets for demos and tests.

:func:`generate` composes logo-like objects (geometric shapes and glyphs)
onto random crops of real photographs bundled with scikit-image, with colour
jitter, scale, rotation and alpha blending, and writes one of three layouts:

- ``detection`` (default): ``images/<id>.jpg`` and ``annotations.json`` (COCO
  instances: boxes, RLE instance masks, areas, ``iscrowd``; ids from 1);
- ``segmentation``: the same plus ``masks/<id>.png``, one 8-bit PNG per image
  holding label-map ids (0 = background);
- ``classification``: ``<class>/<id>.jpg`` folders, one object per image.

Every layout also gets ``label_map.json`` (:class:`~components.core.labelmap.LabelMap`)
and ``synth.json`` (the config and counts). Labels are exact: an object's
mask is its alpha >= 0.5 minus whatever later objects cover, and its box is
the tight box of that visible mask. The same config gives byte-identical
files. The dataset is built in a hidden sibling directory and renamed into
place, so a reader never sees half of it.

Shift controls (for continuous-evaluation tests) change one thing at a time
under the same seed: ``brightness`` (exposure), ``noise`` (sensor noise),
``class_weights`` (class mix) and ``backgrounds`` (scene domain).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from components.core.errors import DataError
from components.core.images import encode_jpeg, encode_png
from components.core.io import atomic_write_json
from components.core.labelmap import LabelMap
from components.core.log import get_logger, progress
from components.core.masks import mask_area, mask_to_bbox, rle_encode

from . import _render
from .formats import write_coco

__all__ = ["SynthConfig", "SynthResult", "SynthTask", "available_backgrounds", "available_classes", "generate"]

SynthTask = Literal["detection", "classification", "segmentation"]

_MARKER = "synth.json"
_MIN_PIXELS = 12  # an object whose visible mask is smaller than this is dropped
_MAX_OCCLUSION = 0.2  # a new object may cover at most this fraction of an earlier one
_PLACEMENT_TRIES = 40

_log = get_logger("synth")


def available_classes() -> list[str]:
    """Class names the generator can draw.

    Returns:
        The shapes (``circle``, ``square``, ...) then the glyphs (``letter_A``, ``digit_7``, ...).
    """
    return [*_render.SHAPES, *_render.GLYPHS]


def available_backgrounds() -> list[str]:
    """Background photographs that ship inside the installed scikit-image (no download).

    Returns:
        Background names usable in :attr:`SynthConfig.backgrounds`.
    """
    return _render.available_backgrounds()


def _split_list(value: str) -> list[str]:
    return [p.strip() for p in re.split(r"[,\s]+", value) if p.strip()]


class SynthConfig(BaseModel):
    """What to generate. Every field takes its natural type or, for the CLI, a string.

    Attributes:
        task: detection (COCO), segmentation (COCO + label-id PNGs) or classification (class folders).
        num_images: how many images.
        image_size: ``(width, height)``; also ``160``, ``"160"`` or ``"160x120"``.
        classes: class names (see :func:`available_classes`); also ``"circle,square"``.
        objects_per_image: inclusive ``(min, max)`` objects of a non-empty image; also ``"1-3"`` or ``3``.
        min_object_size: smallest object, as a fraction of the image's shorter side (before rotation).
        max_object_size: largest object, same unit.
        max_iou: a placement whose box overlaps an earlier one with a higher IoU is rejected.
        max_rotation: objects are rotated uniformly within +-this many degrees.
        colour_jitter: per-channel colour jitter, as a fraction of 255, around the class colour.
        min_opacity: objects are alpha-blended with an opacity drawn from ``[min_opacity, 1]``.
        seed: the random seed; the same config gives byte-identical files.
        crowd_fraction: fraction of images that get one ``iscrowd`` region (a cluster of small
            objects of one class, annotated once).
        empty_fraction: fraction of images without any object.
        brightness: exposure factor on the final pixels (< 1 darker, > 1 brighter).
        noise: standard deviation of Gaussian pixel noise, as a fraction of 255.
        class_weights: relative sampling weight per class; classes not named weigh 1, a weight of
            0 removes a class from the images (not from the label map); also ``"circle=3,star=0"``.
        backgrounds: background photo names (see :func:`available_backgrounds`); default all.
        jpeg_quality: JPEG quality of the written images.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    task: SynthTask = Field("detection", description="detection, segmentation or classification")
    num_images: int = Field(64, ge=1, le=1_000_000, description="number of images")
    image_size: tuple[int, int] = Field((160, 160), description="image WIDTHxHEIGHT in pixels, e.g. 160x160")
    classes: tuple[str, ...] = Field(("circle", "square", "triangle", "star"), description="comma-separated class names")
    objects_per_image: tuple[int, int] = Field((1, 3), description="MIN-MAX objects per non-empty image")
    min_object_size: float = Field(0.2, gt=0.0, le=1.0, description="smallest object, fraction of the shorter image side")
    max_object_size: float = Field(0.6, gt=0.0, le=1.0, description="largest object, fraction of the shorter image side")
    max_iou: float = Field(0.3, ge=0.0, le=1.0, description="largest box IoU between two objects")
    max_rotation: float = Field(30.0, ge=0.0, le=180.0, description="largest rotation in degrees")
    colour_jitter: float = Field(0.08, ge=0.0, le=0.5, description="colour jitter, fraction of 255")
    min_opacity: float = Field(0.85, gt=0.0, le=1.0, description="lowest object opacity (alpha blending)")
    seed: int = Field(0, ge=0, description="random seed")
    crowd_fraction: float = Field(0.0, ge=0.0, le=1.0, description="fraction of images with an iscrowd region")
    empty_fraction: float = Field(0.0, ge=0.0, le=1.0, description="fraction of images without objects")
    brightness: float = Field(1.0, gt=0.0, le=4.0, description="exposure factor (<1 darker)")
    noise: float = Field(0.0, ge=0.0, le=1.0, description="Gaussian noise std, fraction of 255")
    class_weights: dict[str, float] | None = Field(None, description="class mix, e.g. circle=3,star=0 (others weigh 1)")
    backgrounds: tuple[str, ...] | None = Field(None, description="comma-separated background photos (default: all bundled)")
    jpeg_quality: int = Field(92, ge=50, le=100, description="JPEG quality")

    @field_validator("image_size", mode="before")
    @classmethod
    def _parse_size(cls, v: Any) -> Any:
        if isinstance(v, int):
            return (v, v)
        if isinstance(v, str):
            parts = [p for p in re.split(r"[x,\s]+", v.strip().lower()) if p]
            return (parts[0], parts[0]) if len(parts) == 1 else tuple(parts)
        return v

    @field_validator("image_size")
    @classmethod
    def _check_size(cls, v: tuple[int, int]) -> tuple[int, int]:
        if not all(32 <= s <= 4096 for s in v):
            raise ValueError("each side must be between 32 and 4096 pixels")
        return v

    @field_validator("objects_per_image", mode="before")
    @classmethod
    def _parse_range(cls, v: Any) -> Any:
        if isinstance(v, int):
            return (v, v)
        if isinstance(v, str):
            parts = [p for p in re.split(r"[-,:\s]+", v.strip()) if p]
            return (parts[0], parts[0]) if len(parts) == 1 else tuple(parts)
        return v

    @field_validator("objects_per_image")
    @classmethod
    def _check_range(cls, v: tuple[int, int]) -> tuple[int, int]:
        if not 0 <= v[0] <= v[1] <= 64:
            raise ValueError("need 0 <= min <= max <= 64")
        return v

    @field_validator("classes", "backgrounds", mode="before")
    @classmethod
    def _parse_names(cls, v: Any) -> Any:
        return _split_list(v) if isinstance(v, str) else v

    @field_validator("classes")
    @classmethod
    def _check_classes(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if not v:
            raise ValueError("at least one class is needed")
        if len(set(v)) != len(v):
            raise ValueError("class names must be unique")
        unknown = [c for c in v if not _render.is_known_class(c)]
        if unknown:
            raise ValueError(f"unknown classes {unknown}; choose from {', '.join(_render.SHAPES)}, letter_A..letter_Z, digit_0..digit_9")
        return v

    @field_validator("backgrounds")
    @classmethod
    def _check_backgrounds(cls, v: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if v is None:
            return v
        if not v:
            raise ValueError("name at least one background, or leave it unset for all")
        unknown = [b for b in v if b not in _render.BACKGROUND_FILES]
        if unknown:
            raise ValueError(f"unknown backgrounds {unknown}; choose from {', '.join(_render.BACKGROUND_FILES)}")
        return v

    @field_validator("class_weights", mode="before")
    @classmethod
    def _parse_weights(cls, v: Any) -> Any:
        if isinstance(v, str):
            out: dict[str, str] = {}
            for item in _split_list(v):
                name, sep, weight = item.partition("=")
                if not sep:
                    raise ValueError(f"expected NAME=WEIGHT, got {item!r}")
                out[name.strip()] = weight.strip()
            return out
        return v

    @model_validator(mode="after")
    def _check(self) -> SynthConfig:
        if self.min_object_size > self.max_object_size:
            raise ValueError("min_object_size must not exceed max_object_size")
        if self.class_weights is not None:
            unknown = sorted(set(self.class_weights) - set(self.classes))
            if unknown:
                raise ValueError(f"class_weights names classes not in classes: {unknown}")
            if any(w < 0 for w in self.class_weights.values()):
                raise ValueError("class weights must be >= 0")
            if sum(self.weights()) <= 0:
                raise ValueError("class weights must not all be 0")
        if self.task == "classification" and (self.crowd_fraction or self.empty_fraction):
            raise ValueError("crowd_fraction and empty_fraction apply to detection and segmentation only")
        if self.crowd_fraction + self.empty_fraction > 1.0:
            raise ValueError("crowd_fraction + empty_fraction must not exceed 1")
        if len(self.classes) > 255:
            raise ValueError("at most 255 classes (segmentation masks are 8-bit)")
        return self

    def weights(self) -> list[float]:
        """Sampling weight of each class, in ``classes`` order.

        Returns:
            One weight per class (1.0 where ``class_weights`` is silent).
        """
        cw = self.class_weights or {}
        return [float(cw.get(c, 1.0)) for c in self.classes]

    def label_map(self) -> LabelMap:
        """The label map of the generated data: ``classes`` in order, ids from 1.

        Returns:
            The label map.
        """
        return LabelMap.from_names(self.classes)


class SynthResult(BaseModel):
    """What :func:`generate` wrote.

    Attributes:
        task: the layout written.
        out_dir: the dataset root.
        annotations: ``annotations.json`` (detection, segmentation), else None.
        images_dir: ``images/`` (detection, segmentation) or the root (classification).
        masks_dir: ``masks/`` (segmentation), else None.
        label_map: the label map (also saved as ``label_map.json``).
        num_images: images written.
        num_objects: non-crowd objects annotated (classification: one per image).
        num_crowd: crowd regions annotated.
        num_empty: images without any annotation.
        class_counts: non-crowd objects per class name (classification: images per class).
        backgrounds: background photos drawn from.
    """

    model_config = ConfigDict(frozen=True)

    task: SynthTask
    out_dir: Path
    annotations: Path | None
    images_dir: Path
    masks_dir: Path | None
    label_map: LabelMap
    num_images: int
    num_objects: int
    num_crowd: int
    num_empty: int
    class_counts: dict[str, int]
    backgrounds: list[str]


class _Placed:
    """One annotation on an image while it is composed."""

    __slots__ = ("box", "class_id", "is_crowd", "mask")

    def __init__(self, class_id: int, mask: np.ndarray, box: list[float], is_crowd: bool):
        self.class_id = class_id
        self.mask = mask
        self.box = box
        self.is_crowd = is_crowd


def _iou(a: list[float], b: list[float]) -> float:
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


class _Composer:
    """Composes one image: background, then objects in order, tracking visible masks."""

    def __init__(self, cfg: SynthConfig, rng: np.random.Generator, backgrounds: list[str]):
        self.cfg = cfg
        self.rng = rng
        self.width, self.height = cfg.image_size
        self.side = min(self.width, self.height)
        name = backgrounds[int(rng.integers(len(backgrounds)))]
        self.canvas = _render.background_crop(name, self.width, self.height, rng)
        self.placed: list[_Placed] = []
        self.probs = np.asarray(cfg.weights(), dtype=np.float64)
        self.probs /= self.probs.sum()

    def pick_class(self) -> int:
        """Index into ``cfg.classes`` drawn by the class weights."""
        return int(self.rng.choice(len(self.cfg.classes), p=self.probs))

    def _colour(self, class_index: int) -> np.ndarray:
        base = np.asarray(_render.CLASS_COLOURS[class_index % len(_render.CLASS_COLOURS)], dtype=np.float32)
        jitter = self.rng.uniform(-self.cfg.colour_jitter, self.cfg.colour_jitter, 3).astype(np.float32) * 255.0
        return np.clip(base + jitter, 0.0, 255.0)

    def _patch(self, class_index: int, size: float, max_w: int, max_h: int) -> np.ndarray:
        angle = float(self.rng.uniform(-self.cfg.max_rotation, self.cfg.max_rotation))
        alpha = _render.render_object(self.cfg.classes[class_index], round(size), angle)
        return _render.shrink_to_fit(alpha, max_w, max_h)

    def _blend(self, alpha: np.ndarray, x: int, y: int, class_index: int) -> np.ndarray:
        """Draws a patch at ``(x, y)``; returns its full-image mask (alpha >= 0.5)."""
        h, w = alpha.shape
        opacity = float(self.rng.uniform(self.cfg.min_opacity, 1.0))
        a = (alpha.astype(np.float32) / 255.0 * opacity)[..., None]
        region = self.canvas[y : y + h, x : x + w]
        region[:] = region * (1.0 - a) + self._colour(class_index) * a
        mask = np.zeros((self.height, self.width), dtype=bool)
        mask[y : y + h, x : x + w] = alpha >= 128
        return mask

    def _occlude(self, mask: np.ndarray) -> None:
        for p in self.placed:
            p.mask &= ~mask
            p.box = mask_to_bbox(p.mask)

    def _acceptable(self, mask: np.ndarray, box: list[float]) -> bool:
        if mask_area(mask) < _MIN_PIXELS:
            return False
        for p in self.placed:
            if _iou(box, p.box) > self.cfg.max_iou:
                return False
            covered = np.count_nonzero(mask & p.mask)
            if covered > _MAX_OCCLUSION * mask_area(p.mask):
                return False
        return True

    def add_object(self, class_index: int | None = None) -> bool:
        """Places one object where it overlaps earlier ones little enough.

        Args:
            class_index: the class; drawn by weight when None.

        Returns:
            Whether it was placed.
        """
        ci = self.pick_class() if class_index is None else class_index
        size = float(self.rng.uniform(self.cfg.min_object_size, self.cfg.max_object_size)) * self.side
        alpha = self._patch(ci, size, self.width, self.height)
        h, w = alpha.shape
        local = alpha >= 128
        if np.count_nonzero(local) < _MIN_PIXELS:
            return False
        lx, ly, lw, lh = mask_to_bbox(local)
        for _ in range(_PLACEMENT_TRIES):
            x = int(self.rng.integers(0, self.width - w + 1))
            y = int(self.rng.integers(0, self.height - h + 1))
            box = [x + lx, y + ly, lw, lh]
            mask = np.zeros((self.height, self.width), dtype=bool)
            mask[y : y + h, x : x + w] = local
            if self._acceptable(mask, box):
                self._blend(alpha, x, y, ci)
                self._occlude(mask)
                self.placed.append(_Placed(ci + 1, mask, box, is_crowd=False))
                return True
        return False

    def add_crowd(self) -> bool:
        """Draws a cluster of small, overlapping objects of one class, annotated as one crowd region.

        Returns:
            Whether a region was drawn.
        """
        ci = self.pick_class()
        rw = int(self.rng.uniform(0.35, 0.55) * self.width)
        rh = int(self.rng.uniform(0.35, 0.55) * self.height)
        rx = int(self.rng.integers(0, self.width - rw + 1))
        ry = int(self.rng.integers(0, self.height - rh + 1))
        union = np.zeros((self.height, self.width), dtype=bool)
        for _ in range(int(self.rng.integers(4, 9))):
            size = float(self.rng.uniform(0.1, 0.18)) * self.side
            alpha = self._patch(ci, size, rw, rh)
            h, w = alpha.shape
            x = rx + int(self.rng.integers(0, rw - w + 1))
            y = ry + int(self.rng.integers(0, rh - h + 1))
            union |= self._blend(alpha, x, y, ci)
        if mask_area(union) < _MIN_PIXELS:
            return False
        self.placed.append(_Placed(ci + 1, union, mask_to_bbox(union), is_crowd=True))
        return True

    def finish(self) -> np.ndarray:
        """Applies exposure and noise; returns the uint8 RGB pixels."""
        out = self.canvas * np.float32(self.cfg.brightness)
        if self.cfg.noise > 0:
            out = out + self.rng.normal(0.0, self.cfg.noise * 255.0, out.shape).astype(np.float32)
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)

    def annotations(self) -> list[_Placed]:
        """Annotations whose visible part is still big enough, in drawing order."""
        return [p for p in self.placed if mask_area(p.mask) >= _MIN_PIXELS]


def _plan(cfg: SynthConfig) -> tuple[set[int], set[int]]:
    """Which image indices are empty and which get a crowd region (exact counts)."""
    rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, 0]))
    n = cfg.num_images
    n_empty = round(n * cfg.empty_fraction)
    n_crowd = min(n - n_empty, round(n * cfg.crowd_fraction))
    order = rng.permutation(n)
    return {int(i) for i in order[:n_empty]}, {int(i) for i in order[n_empty : n_empty + n_crowd]}


def _prepare_target(out_dir: Path) -> None:
    if out_dir.exists():
        if not out_dir.is_dir():
            raise DataError(f"{out_dir}: exists and is not a directory")
        if any(out_dir.iterdir()) and not (out_dir / _MARKER).is_file():
            raise DataError(f"{out_dir}: not empty and not a synthetic dataset (no {_MARKER}); refusing to replace it")


def _swap_into_place(staging: Path, out_dir: Path) -> None:
    _prepare_target(out_dir)
    if not out_dir.exists():
        os.replace(staging, out_dir)
        return
    if not any(out_dir.iterdir()):
        out_dir.rmdir()
        os.replace(staging, out_dir)
        return
    trash = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=out_dir.parent))
    os.replace(out_dir, trash / "d")
    os.replace(staging, out_dir)
    shutil.rmtree(trash, ignore_errors=True)


def _write(path: Path, data: bytes) -> None:
    # Files go to a private staging directory renamed into place at the end, so a plain write is atomic enough.
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def generate(config: SynthConfig, out_dir: str | os.PathLike[str]) -> SynthResult:
    """Generates a synthetic dataset.

    Image ``i`` depends only on ``(seed, i)`` and the config, never on the
    machine's state, so the same config gives byte-identical files.

    Args:
        config: what to generate.
        out_dir: the dataset root; created, or replaced when it holds an earlier
            synthetic dataset (``synth.json``) or is empty.

    Returns:
        What was written.

    Raises:
        DataError: ``out_dir`` holds something else, or no background photo
            ships with the installed scikit-image.
    """
    cfg = config
    out = Path(out_dir)
    _prepare_target(out)
    present = set(_render.available_backgrounds())
    wanted = list(cfg.backgrounds) if cfg.backgrounds is not None else list(_render.BACKGROUND_FILES)
    backgrounds = [b for b in wanted if b in present]
    if not backgrounds:
        raise DataError(f"none of the background photos {wanted} ship with the installed scikit-image")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.synth-", dir=out.parent))
    # mkdtemp creates 0700; the dataset gets the ordinary umask-based mode (tasks in the image run as another user)
    umask = os.umask(0)
    os.umask(umask)
    staging.chmod(0o777 & ~umask)
    try:
        result = _generate_into(cfg, staging, out, backgrounds)
        _swap_into_place(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _log.info(
        "%s: %d images, %d objects, %d crowd regions, %d empty -> %s",
        cfg.task,
        result.num_images,
        result.num_objects,
        result.num_crowd,
        result.num_empty,
        out,
    )
    return result


def _generate_into(cfg: SynthConfig, root: Path, final: Path, backgrounds: list[str]) -> SynthResult:
    label_map = cfg.label_map()
    width, height = cfg.image_size
    empty, crowd = _plan(cfg)
    counts: Counter[str] = Counter()
    images: list[dict[str, Any]] = []
    anns: list[dict[str, Any]] = []
    num_crowd = num_empty = 0
    if cfg.task == "classification":
        for name in cfg.classes:
            (root / name).mkdir(parents=True, exist_ok=True)
    for i in progress(range(cfg.num_images), cfg.num_images, f"synth {cfg.task}", _log):
        image_id = i + 1
        comp = _Composer(cfg, np.random.default_rng(np.random.SeedSequence([cfg.seed, 1, i])), backgrounds)
        if cfg.task == "classification":
            ci = comp.pick_class()
            # On an empty canvas only a too-small drawing (a thin glyph at a tiny size) is refused.
            if not any(comp.add_object(ci) for _ in range(20)):
                raise DataError(f"class {cfg.classes[ci]!r} draws under {_MIN_PIXELS} pixels at these sizes; raise min_object_size")
            counts[cfg.classes[ci]] += 1
            _write(root / cfg.classes[ci] / f"{image_id:06d}.jpg", encode_jpeg(comp.finish(), quality=cfg.jpeg_quality))
            continue
        if i not in empty:
            if i in crowd:
                comp.add_crowd()
            lo, hi = cfg.objects_per_image
            for _ in range(int(comp.rng.integers(lo, hi + 1))):
                comp.add_object()
        placed = comp.annotations()
        file_name = f"images/{image_id:06d}.jpg"
        _write(root / file_name, encode_jpeg(comp.finish(), quality=cfg.jpeg_quality))
        images.append({"id": image_id, "file_name": file_name, "width": width, "height": height})
        num_empty += not placed
        semantic = np.zeros((height, width), dtype=np.uint8)
        for p in placed:
            semantic[p.mask] = p.class_id
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": image_id,
                    "category_id": p.class_id,
                    "bbox": [float(v) for v in p.box],
                    "area": float(mask_area(p.mask)),
                    "iscrowd": int(p.is_crowd),
                    # COCO keeps crowd regions as uncompressed RLE, single objects compressed.
                    "segmentation": rle_encode(p.mask, compress=not p.is_crowd),
                }
            )
            if p.is_crowd:
                num_crowd += 1
            else:
                counts[label_map.classes[p.class_id]] += 1
        if cfg.task == "segmentation":
            _write(root / "masks" / f"{image_id:06d}.png", encode_png(semantic))
    annotations = None
    if cfg.task != "classification":
        categories = [
            {"id": cid, "name": name, "supercategory": "glyph" if name in _render.GLYPHS else "shape"}
            for cid, name in sorted(label_map.classes.items())
        ]
        info = {"description": f"cvpipe synthetic {cfg.task} data", "contributor": "cvpipe.synth", "version": "1", "seed": cfg.seed}
        write_coco(root / "annotations.json", images, anns, categories, info=info)
        annotations = final / "annotations.json"
    label_map.save(root / "label_map.json")
    class_counts = {name: counts.get(name, 0) for name in cfg.classes}
    num_objects = sum(class_counts.values())
    atomic_write_json(
        root / _MARKER,
        {
            "generator": "cvpipe.synth",
            "format_version": 1,
            "config": cfg.model_dump(mode="json"),
            "backgrounds": backgrounds,
            "counts": {"images": cfg.num_images, "objects": num_objects, "crowd": num_crowd, "empty": num_empty, "per_class": class_counts},
        },
    )
    return SynthResult(
        task=cfg.task,
        out_dir=final,
        annotations=annotations,
        images_dir=final if cfg.task == "classification" else final / "images",
        masks_dir=final / "masks" if cfg.task == "segmentation" else None,
        label_map=label_map,
        num_images=cfg.num_images,
        num_objects=num_objects,
        num_crowd=num_crowd,
        num_empty=num_empty,
        class_counts=class_counts,
        backgrounds=backgrounds,
    )
