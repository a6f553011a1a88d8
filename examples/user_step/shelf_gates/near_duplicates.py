"""A near-duplicate image gate: stop training when too much of the dataset is the same picture again.

Near-duplicates (the same shot re-encoded, resized or slightly brightened)
inflate a dataset without adding information and, split across train and test,
inflate the test score. The gate computes a difference hash (dHash: 64 bits
from the brightness gradient of a 9x8 grey thumbnail) of every ingested image;
an image whose hash is within ``max_distance`` bits of an earlier one is a
near-duplicate. When their share passes ``max_share`` the run is vetoed.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

import cvpipe

_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


def dhash(path: str | Path) -> np.ndarray:
    """The 64-bit difference hash of an image, as 8 bytes.

    Args:
        path: the image file.

    Returns:
        A ``uint8`` array of 8 bytes.
    """
    with Image.open(path) as im:
        grey = np.asarray(im.convert("L").resize((9, 8), Image.Resampling.LANCZOS), dtype=np.int16)
    return np.packbits(grey[:, 1:] > grey[:, :-1])


def near_duplicate_pairs(hashes: np.ndarray, max_distance: int) -> list[tuple[int, int, int]]:
    """Each image within ``max_distance`` bits of an earlier one, with its closest earlier image.

    Args:
        hashes: ``(n, 8)`` ``uint8`` hashes.
        max_distance: the largest Hamming distance that counts as a near-duplicate.

    Returns:
        ``(image, earlier image, distance)`` triples, one per near-duplicate image.
    """
    out = []
    for j in range(1, len(hashes)):
        dist = _POPCOUNT[hashes[:j] ^ hashes[j]].sum(axis=1, dtype=np.int32)
        i = int(dist.argmin())
        if dist[i] <= max_distance:
            out.append((j, i, int(dist[i])))
    return out


@cvpipe.step
def near_duplicate_gate(inputs: cvpipe.StepInputs, max_share: float = 0.1, max_distance: int = 4) -> dict[str, float | int]:
    """Vetoes the run when more than ``max_share`` of the ingested images are near-duplicates.

    Args:
        inputs: ingest's artifacts (the manifest of every accepted image).
        max_share: the largest acceptable share of near-duplicate images.
        max_distance: the largest Hamming distance between two dHashes that counts as a near-duplicate.

    Returns:
        ``images``, ``near_duplicates`` and ``near_duplicate_share`` (recorded in lineage).

    Raises:
        cvpipe.Veto: the share is over ``max_share``; the reason names the worst pairs.
    """
    manifest = inputs.manifest()
    records = list(manifest)
    hashes = np.stack([dhash(manifest.image_path(r)) for r in records]) if records else np.zeros((0, 8), np.uint8)
    pairs = near_duplicate_pairs(hashes, max_distance)
    share = len(pairs) / len(records) if records else 0.0
    found = [{"image": records[j].path, "duplicate_of": records[i].path, "distance": d} for j, i, d in pairs]
    report = {"images": len(records), "near_duplicates": len(pairs), "share": share, "max_share": max_share, "pairs": found}
    (inputs.output_dir / "near_duplicates.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    if share > max_share:
        examples = ", ".join(f"{Path(p['image']).name} ~ {Path(p['duplicate_of']).name}" for p in found[:2])
        raise cvpipe.Veto(
            f"{len(pairs)} of {len(records)} images ({share:.0%}) are near-duplicates, over the limit of {max_share:.0%} "
            f"(e.g. {examples}); see near_duplicates.json"
        )
    return {"images": len(records), "near_duplicates": len(pairs), "near_duplicate_share": round(share, 4)}
