"""Small fake model and blessing directories, and the lineage a training pipeline would record for them.

No TensorFlow: a "model" is a directory with the files a trained cvpipe
model has (``saved_model/saved_model.pb``, variables, ``label_map.json``,
``model_info.json``), holding bytes derived from a seed so two seeds give two
different models and the same seed the same one.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from components.core.lineage import ArtifactRef, LineageStore, NewArtifact

__all__ = ["make_blessing", "make_model", "record_training"]


def make_model(path: Path, seed: str = "a", size: int = 4096) -> Path:
    """Writes a fake trained model directory.

    Args:
        path: the directory to create.
        seed: content seed; equal seeds give byte-identical models.
        size: bytes of the variables file.

    Returns:
        The directory.
    """
    digest = hashlib.sha256(seed.encode()).digest()
    (path / "saved_model" / "variables").mkdir(parents=True, exist_ok=True)
    (path / "saved_model" / "saved_model.pb").write_bytes(b"\x08\x01\x12" + digest * 4)
    (path / "saved_model" / "variables" / "variables.index").write_bytes(digest)
    (path / "saved_model" / "variables" / "variables.data-00000-of-00001").write_bytes((digest * (size // 32 + 1))[:size])
    (path / "label_map.json").write_text(json.dumps({"version": 1, "classes": {"1": "cat", "2": "dog"}}))
    (path / "model_info.json").write_text(json.dumps({"architecture": "compact_detector", "seed": seed}))
    return path


def make_blessing(path: Path, blessed: bool, metrics: dict[str, float] | None = None, reasons: list[str] | None = None) -> Path:
    """Writes a blessing directory with ``blessing.json`` as the evaluate step does."""
    path.mkdir(parents=True, exist_ok=True)
    data: dict[str, Any] = {"blessed": blessed, "reasons": reasons or [], "metrics": metrics or {}, "baseline_id": None}
    (path / "blessing.json").write_text(json.dumps(data))
    return path


def record_training(
    store: LineageStore,
    run_id: str,
    model_dir: Path,
    *,
    pipeline: str = "demo",
    images: int = 10,
    parent: ArtifactRef | None = None,
    blessed: bool | None = True,
    metrics: dict[str, float] | None = None,
) -> dict[str, ArtifactRef]:
    """Records ingest -> transform -> train (-> evaluate) for a model directory, as a pipeline run would.

    Returns:
        ``manifest``, ``examples``, ``model`` and, when ``blessed`` is not None, ``blessing``.
    """
    src = store.put_artifact("RawDataset", f"/data/{run_id}/annotations.json")
    ing = store.record_execution(
        "ingest",
        pipeline=pipeline,
        run_id=run_id,
        inputs={"source": src},
        outputs={"manifest": NewArtifact("Manifest", f"/runs/{run_id}/manifest", {"images": images, "pipeline": pipeline})},
    )
    ex = store.record_execution(
        "transform",
        pipeline=pipeline,
        run_id=run_id,
        inputs={"manifest": ing["manifest"]},
        outputs={"examples": NewArtifact("Examples", f"/runs/{run_id}/examples", {"images": images})},
    )
    tr = store.record_execution(
        "train",
        pipeline=pipeline,
        run_id=run_id,
        inputs={"examples": ex["examples"], "parent_model": parent},
        outputs={"model": NewArtifact("Model", str(model_dir), {"model_name": pipeline, "pipeline": pipeline, "run_id": run_id})},
    )
    out = {"manifest": ing["manifest"], "examples": ex["examples"], "model": tr["model"]}
    if blessed is not None:
        ev = store.record_execution(
            "evaluate",
            pipeline=pipeline,
            run_id=run_id,
            inputs={"model": tr["model"]},
            outputs={
                "blessing": NewArtifact(
                    "ModelBlessing", f"/runs/{run_id}/blessing", {"blessed": blessed, "metrics": json.dumps(metrics or {})}
                )
            },
        )
        out["blessing"] = ev["blessing"]
    return out
