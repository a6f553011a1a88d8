"""Small real examples directories for the train tests and bench: synth images -> TFRecords.

Images come from :func:`components.synth.core.generate` (shapes pasted on
photographs); records are written with :func:`components.core.examples.encode_example`
and :class:`~components.core.examples.TFRecordWriter`, indexed by ``examples.json``.
Splits are by position (every ``val_every``-th image to validation), so a test
knows exactly how many records each split has.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from components.core.examples import ExampleContent, ExamplesIndex, ShardInfo, SplitInfo, TFRecordWriter, encode_example
from components.core.images import encode_png
from components.core.io import sha256_file
from components.core.labelmap import LabelMap
from components.synth.core import SynthConfig, generate


def _content_detection(root: Path, coco: dict, with_seg: bool) -> list[ExampleContent]:
    anns: dict[int, list[dict]] = {}
    for a in coco["annotations"]:
        anns.setdefault(a["image_id"], []).append(a)
    out = []
    for im in coco["images"]:
        path = root / im["file_name"]
        data = path.read_bytes()
        w, h = im["width"], im["height"]
        objs = anns.get(im["id"], [])
        boxes = [(a["bbox"][1] / h, a["bbox"][0] / w, (a["bbox"][1] + a["bbox"][3]) / h, (a["bbox"][0] + a["bbox"][2]) / w) for a in objs]
        seg = None
        if with_seg:
            seg = encode_png(np.asarray(Image.open(root / "masks" / (Path(im["file_name"]).stem + ".png")), np.uint8))
        out.append(
            ExampleContent(
                encoded=data,
                image_format="jpeg",
                height=h,
                width=w,
                filename=im["file_name"],
                source_id=str(im["id"]),
                sha256=sha256_file(path),
                boxes=boxes,
                labels=[a["category_id"] for a in objs],
                is_crowd=[bool(a.get("iscrowd", 0)) for a in objs],
                area=[float(a["area"]) for a in objs],
                segmentation_png=seg,
            )
        )
    return out


def _content_classification(root: Path, label_map: LabelMap) -> list[ExampleContent]:
    out = []
    for cid, name in sorted(label_map.classes.items()):
        for path in sorted((root / name).glob("*.jpg")):
            w, h = Image.open(path).size
            out.append(
                ExampleContent(
                    encoded=path.read_bytes(),
                    image_format="jpeg",
                    height=h,
                    width=w,
                    filename=f"{name}/{path.name}",
                    source_id=f"{name}/{path.stem}",
                    sha256=sha256_file(path),
                    class_label=cid,
                    class_text=name,
                )
            )
    out.sort(key=lambda c: c.source_id.split("/")[-1])
    return out


def make_examples(
    out_dir: Path,
    task: str = "detection",
    num_images: int = 24,
    image_size: int = 64,
    seed: int = 0,
    val_every: int = 4,
    classes: tuple[str, ...] = ("circle", "square", "triangle"),
    objects_per_image: tuple[int, int] = (1, 2),
) -> tuple[Path, Path]:
    """Generates images and writes an examples directory.

    Args:
        out_dir: where ``synth/`` and ``examples/`` go.
        task: detection, classification or segmentation.
        num_images: images to generate.
        image_size: square side in pixels.
        seed: synth seed.
        val_every: every n-th image goes to validation (and also to test).
        classes: synth class names.
        objects_per_image: inclusive range of objects per image.

    Returns:
        ``(examples_dir, label_map_path)``.
    """
    synth_dir = out_dir / "synth"
    cfg = SynthConfig(
        task=task,  # type: ignore[arg-type]
        num_images=num_images,
        image_size=(image_size, image_size),
        classes=classes,
        seed=seed,
        objects_per_image=objects_per_image,
        min_object_size=0.25,
        max_object_size=0.6,
    )
    result = generate(cfg, synth_dir)
    label_map = result.label_map
    if task == "classification":
        contents = _content_classification(synth_dir, label_map)
    else:
        coco = json.loads((synth_dir / "annotations.json").read_text())
        contents = _content_detection(synth_dir, coco, task == "segmentation")
    examples = out_dir / "examples"
    examples.mkdir(parents=True, exist_ok=True)
    splits: dict[str, list[ExampleContent]] = {"train": [], "validation": [], "test": []}
    for i, c in enumerate(contents):
        if i % val_every == val_every - 1:
            splits["validation"].append(c)
            splits["test"].append(c)
        else:
            splits["train"].append(c)
    index = ExamplesIndex(task=task, label_map=label_map, image_size=(image_size, image_size))  # type: ignore[arg-type]
    for split, items in splits.items():
        name = f"{split}-00000-of-00001.tfrecord"
        with TFRecordWriter(examples / name) as w:
            for c in items:
                w.write(encode_example(c))
        shard = ShardInfo(file=name, records=len(items), sha256=sha256_file(examples / name), bytes=(examples / name).stat().st_size)
        index.splits[split] = SplitInfo(records=len(items), images=len(items), shards=[shard])
    index.save(examples)
    label_map_path = out_dir / "label_map.json"
    label_map.save(label_map_path)
    return examples, label_map_path
