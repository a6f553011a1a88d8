"""The import-labels step: Label Studio exports waiting in ``monitoring.labels`` become ground truth.

People label a batch in Label Studio and drop its JSON export into the
``monitoring.labels`` directory. Each evaluation imports the exports it has
not imported before (recognised by their sha256, so a corrected export
under the same name is imported again): every labelling batch an export
covers is imported with :func:`components.sample.core.run_import`, which
writes the labels into the prediction log (where live metrics find them)
and records one ``import_labels`` execution with the labelled ``Manifest``
per batch.

The step's output is every image labelled for the model so far, as one
manifest (``manifest.json``; a later label of an image wins, classes matched
by name onto the newest label map) plus ``labelled.json`` listing the
``Manifest`` and ``LabellingBatch`` artifacts it came from: the retraining
trigger adds these images to the training data and links them in lineage.
What has been imported is remembered in ``<runtime.root>/<pipeline>/labels/imported.json``.
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from components.core.clock import utc_now
from components.core.errors import CvpipeError
from components.core.io import atomic_write_json, read_json, sha256_file
from components.core.labelmap import LabelMap
from components.core.manifest import ImageRecord, Manifest
from components.core.step import StepContext

__all__ = ["IMPORTED_FILE", "LABELLED_FILE", "Labelled", "labelled_manifest", "load_labelled", "run"]

LABELLED_FILE = "labelled.json"
"""The artifacts the labelled manifest came from, inside the step's output directory."""
IMPORTED_FILE = "imported.json"
"""The exports already imported, under ``<runtime.root>/<pipeline>/labels/``."""


@dataclass
class Labelled:
    """Every image labelled for the model so far.

    Attributes:
        manifest: the labelled images (None when nothing has been labelled).
        manifests: ids of the ``Manifest`` artifacts the imports recorded.
        batches: ids of the ``LabellingBatch`` artifacts they belong to.
        imported_now: exports imported by this run (``path``, ``batch_id``, ``labels``).
        failed: exports that could not be imported (``path``, ``error``).
    """

    manifest: Manifest | None
    manifests: list[int] = field(default_factory=list)
    batches: list[int] = field(default_factory=list)
    imported_now: list[dict[str, Any]] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)


@contextlib.contextmanager
def _locked_state(path: Path) -> Iterator[dict[str, Any]]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        try:
            state = read_json(path) if path.is_file() else {"format_version": 1, "exports": {}}
            yield state
            atomic_write_json(path, state)
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


def labelled_manifest(manifests: list[Manifest], label_map: LabelMap | None = None) -> Manifest | None:
    """One manifest of several imports: one record per image (the last import's), class ids by name.

    Args:
        manifests: the imports' manifests, oldest first.
        label_map: the label map to express classes in (default: every import's classes, by name, in order).

    Returns:
        The manifest (image paths made absolute), or None without images.
    """
    if not manifests:
        return None
    lm = label_map or manifests[0].label_map
    for m in manifests:
        lm = lm.extended(m.label_map.names)
    by_sha: dict[str, ImageRecord] = {}
    for m in manifests:
        remap = {cid: lm.id_of(name) for cid, name in m.label_map.classes.items()}
        for r in m.images:
            rec = r.model_copy(deep=True)
            rec.path = str(m.image_path(r))
            rec.class_id = remap.get(rec.class_id) if rec.class_id is not None else None
            for o in rec.objects:
                o.class_id = int(remap.get(o.class_id) or o.class_id)
            by_sha[rec.sha256] = rec
    if not by_sha:
        return None
    return Manifest(
        task=manifests[-1].task, root="", label_map=lm, images=list(by_sha.values()), format="label-studio", source="cvpipe labels"
    )


def load_labelled(path: str | Path) -> Labelled:
    """Reads the step's output directory.

    Args:
        path: the directory.

    Returns:
        The labelled images and the artifacts they came from.
    """
    d = Path(path)
    info = read_json(d / LABELLED_FILE) if (d / LABELLED_FILE).is_file() else {}
    manifest = Manifest.load(d / "manifest.json") if (d / "manifest.json").is_file() else None
    return Labelled(
        manifest=manifest,
        manifests=[int(i) for i in info.get("manifests", [])],
        batches=[int(i) for i in info.get("batches", [])],
        imported_now=list(info.get("imported_now", [])),
        failed=list(info.get("failed", [])),
    )


def _batch_ids(export: list[dict[str, Any]]) -> list[str]:
    ids = set()
    for t in export:
        data = t.get("data") if isinstance(t.get("data"), dict) else {}
        bid = (data or {}).get("labelling_batch_id")
        if bid:
            ids.add(str(bid))
    return sorted(ids)


def run(ctx: StepContext, out_dir: Path) -> Labelled:
    """The import-labels step.

    Args:
        ctx: the step context (``spec.monitoring.labels`` names the exports directory).
        out_dir: output directory (``manifest.json``, ``labelled.json``, and one sub-directory per import).

    Returns:
        Every image labelled so far, with the artifacts it came from.
    """
    from components.sample.core import run_import
    from components.sample.labelstudio import read_export

    spec = ctx.spec
    mon = spec.monitoring
    assert mon is not None, "importing labels needs spec.monitoring"
    log_repo = mon.log_dir(spec.runtime.root)
    state_path = Path(spec.runtime.root) / spec.name / "labels" / IMPORTED_FILE
    out_dir.mkdir(parents=True, exist_ok=True)
    now: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    with _locked_state(state_path) as state:
        exports: dict[str, Any] = state.setdefault("exports", {})
        labels_dir = Path(mon.labels) if mon.labels else None
        files = sorted(p for p in labels_dir.glob("*.json") if p.is_file()) if labels_dir is not None and labels_dir.is_dir() else []
        for path in files:
            digest = sha256_file(path)
            if digest in exports:
                continue
            entry: dict[str, Any] = {"path": str(path), "at": utc_now().isoformat(), "imports": []}
            try:
                tasks = read_export(path)
                for bid in _batch_ids(tasks):
                    ref = ctx.store.latest("LabellingBatch", batch_id=bid)
                    if ref is None:
                        failed.append({"path": str(path), "error": f"labelling batch {bid} is not in the metadata store"})
                        continue
                    sub = out_dir / "imports" / f"{path.stem}-{bid}"
                    result = run_import(
                        StepContext(spec=spec, run_id=ctx.run_id, component="import_labels", _store=ctx.store),
                        path,
                        Path(ref.uri.removeprefix("file://")),
                        log_repo,
                        sub / "manifest",
                        sub / "quarantine",
                        uris={"batch": ref.uri, "export": str(path)},
                    )
                    item = {
                        "batch_id": bid,
                        "batch": ref.id,
                        "manifest": result.artifacts["manifest"].id,
                        "labels": len(result.labels.labels),
                    }
                    entry["imports"].append(item)
                    now.append({"path": str(path), **item})
            except CvpipeError as e:
                failed.append({"path": str(path), "error": str(e)})
                ctx.log.error("%s: not imported: %s", path, e)
                entry["error"] = str(e)
            exports[digest] = entry
        imports = [i for e in exports.values() for i in e.get("imports", [])]
    manifests: list[Manifest] = []
    manifest_ids: list[int] = []
    for i in imports:
        ref = ctx.store.get(int(i["manifest"]))
        p = Path(ref.uri.removeprefix("file://"))
        path = p / "manifest.json" if p.is_dir() else p
        if path.is_file():
            manifests.append(Manifest.load(path))
            manifest_ids.append(ref.id)
    union = labelled_manifest(manifests)
    if union is not None:
        union.save(out_dir / "manifest.json")
    atomic_write_json(
        out_dir / LABELLED_FILE,
        {
            "images": len(union.images) if union else 0,
            "manifests": manifest_ids,
            "batches": sorted({int(i["batch"]) for i in imports}),
            "imported_now": now,
            "failed": failed,
        },
    )
    ctx.log.info(
        "%d exports imported now (%d labels); %d labelled images in all from %d imports%s",
        len({n["path"] for n in now}),
        sum(int(n["labels"]) for n in now),
        len(union.images) if union else 0,
        len(manifest_ids),
        f"; {len(failed)} failed" if failed else "",
    )
    return load_labelled(out_dir)
