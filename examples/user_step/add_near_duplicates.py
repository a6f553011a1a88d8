"""Adds near-duplicates to a COCO dataset: copies of its first images, slightly brightened and re-encoded.

    python add_near_duplicates.py data --count 12

Each copy keeps the original's annotations under a new image id and file name,
so ingest accepts it; only a content check such as the near-duplicate gate
notices it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from PIL import Image, ImageEnhance


def add_near_duplicates(data_dir: str | Path, count: int, annotations: str = "annotations.json") -> int:
    """Copies the first ``count`` images of a COCO dataset as near-duplicates.

    Args:
        data_dir: the dataset root (holding the COCO JSON and the images it names).
        count: how many near-duplicates to add.
        annotations: the COCO JSON file name.

    Returns:
        How many were added.
    """
    root = Path(data_dir)
    coco = json.loads((root / annotations).read_text(encoding="utf-8"))
    next_image = max(im["id"] for im in coco["images"]) + 1
    next_ann = max((a["id"] for a in coco["annotations"]), default=0) + 1
    added = 0
    for im in coco["images"][:count]:
        src = root / im["file_name"]
        name = f"{src.stem}-copy.jpg"
        with Image.open(src) as original:
            copy = ImageEnhance.Brightness(original.convert("RGB")).enhance(1.05)
            copy.save(src.with_name(name), quality=85)
        new = {**im, "id": next_image, "file_name": str(Path(im["file_name"]).with_name(name))}
        coco["images"].append(new)
        for a in [a for a in coco["annotations"] if a["image_id"] == im["id"]]:
            coco["annotations"].append({**a, "id": next_ann, "image_id": next_image})
            next_ann += 1
        next_image += 1
        added += 1
    (root / annotations).write_text(json.dumps(coco), encoding="utf-8")
    return added


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir")
    parser.add_argument("--count", type=int, default=12)
    args = parser.parse_args()
    print(f"added {add_near_duplicates(args.data_dir, args.count)} near-duplicates to {args.data_dir}")
