"""Writes the example's two small datasets (stand-ins for your own COCO data): store A and a darker store B.

``python shelf_data.py [DIR]`` writes ``DIR/store-a`` and ``DIR/store-b`` (default ``data/``).
"""

from __future__ import annotations

import sys
from pathlib import Path

from cvpipe.data import SynthConfig, generate_dataset

CLASSES = ("circle", "square", "triangle")


def make_data(root: str | Path, images: int = 32) -> dict[str, Path]:
    """Generates both stores' datasets.

    Args:
        root: the folder to write into.
        images: images per store.

    Returns:
        Store name -> its ``annotations.json``.
    """
    out = {}
    for store, seed, brightness in (("store-a", 0, 1.0), ("store-b", 1, 0.7)):
        cfg = SynthConfig(num_images=images, image_size=(64, 64), classes=CLASSES, seed=seed, brightness=brightness)
        result = generate_dataset(cfg, Path(root) / store)
        assert result.annotations is not None
        out[store] = result.annotations
    return out


if __name__ == "__main__":
    for store, path in make_data(sys.argv[1] if len(sys.argv) > 1 else "data").items():
        print(f"{store}: {path}")
