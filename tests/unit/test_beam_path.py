"""The Beam path (``runtime.beam``) gives what the local path gives: the same TFRecord examples and the same TFDV statistics.

Both run here on Apache Beam's DirectRunner, in process and with several
workers; the records are compared byte for byte and parsed field by field.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from components.core.beam import pipeline_options
from components.core.examples import iter_records, load_index
from components.core.io import sha256_bytes
from components.core.labelmap import LabelMap
from components.core.manifest import ImageRecord, Manifest, ObjectAnnotation
from components.core.spec import BeamSpec, PipelineSpec, TransformSpec, parse_spec
from components.core.step import StepContext
from components.transform import core
from components.transform.beam import beam_shard_runner
from components.transform.core import write_examples

LM = LabelMap.from_names(["cat", "dog", "cow"])
BEAM_SETTINGS = [
    pytest.param(BeamSpec(), id="in-process"),
    pytest.param(BeamSpec(options={"direct_num_workers": 2, "direct_running_mode": "multi_threading"}), id="two-workers"),
]


def _pixels(h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (1, 1, 3))
    yy, xx = np.mgrid[0:h, 0:w]
    return ((base + np.stack([yy * 3, xx * 5, yy + xx], -1)) % 256).astype(np.uint8)


def _image(root: Path, name: str, im: Image.Image, fmt: str, objects: list[ObjectAnnotation], **kw: Any) -> ImageRecord:
    path = root / name
    im.save(path, format=fmt)
    data = path.read_bytes()
    return ImageRecord(image_id=path.stem, path=name, sha256=sha256_bytes(data), width=im.width, height=im.height, objects=objects, **kw)


def _dataset(root: Path) -> Manifest:
    """A detection set that takes every branch of a record: byte copy, re-encode, conversion, quarantine, dropped objects."""
    recs = []
    for i in range(36):
        cls = 0 if i < 24 else (1 if i < 32 else 2)  # imbalanced, so balancing repeats images
        box = ObjectAnnotation(class_id=cls, bbox=[1.0 + i % 3, 2.0, 10.0, 8.0])
        if i % 4 == 0:
            recs.append(_image(root, f"p{i}.png", Image.fromarray(_pixels(20, 24, i)), "PNG", [box]))
        elif i % 4 == 1:
            recs.append(_image(root, f"g{i}.jpg", Image.fromarray(_pixels(20, 24, i)).convert("L"), "JPEG", [box]))
        else:
            recs.append(_image(root, f"j{i}.jpg", Image.fromarray(_pixels(20, 24, i)), "JPEG", [box]))
    recs[5] = recs[5].model_copy(update={"objects": [*recs[5].objects, ObjectAnnotation(class_id=9, bbox=[0.0, 0.0, 3.0, 3.0])]})
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    recs.append(
        ImageRecord(image_id="broken", path="broken.jpg", sha256=sha256_bytes((root / "broken.jpg").read_bytes()), width=20, height=24)
    )
    recs.append(ImageRecord(image_id="gone", path="gone.jpg", sha256="0" * 64, width=20, height=24))
    return Manifest(task="detection", root=str(root), label_map=LM, images=recs)  # type: ignore[arg-type]


def _options(**kw: Any) -> TransformSpec:
    return TransformSpec.model_validate({"num_workers": 1, "shard_size_mb": 0.002, "balance_classes": True, **kw})


def _parsed(examples_dir: Path) -> dict[str, list[dict[str, Any]]]:
    """Shard file -> its records parsed as tf.train.Example (feature name -> values)."""
    tf = pytest.importorskip("tensorflow")
    out: dict[str, list[dict[str, Any]]] = {}
    for split in load_index(examples_dir).splits.values():
        for shard in split.shards:
            rows = []
            for raw in iter_records(examples_dir / shard.file):
                features = tf.train.Example.FromString(raw).features.feature
                rows.append({k: list(getattr(v, v.WhichOneof("kind")).value) for k, v in features.items()})
            out[shard.file] = rows
    return out


@pytest.mark.parametrize("beam", BEAM_SETTINGS)
def test_transform_on_beam_writes_the_same_examples(tmp_path: Path, beam: BeamSpec) -> None:
    data = tmp_path / "images"
    data.mkdir()
    manifest = _dataset(data)
    local = write_examples(manifest, tmp_path / "local", _options())
    on_beam = write_examples(manifest, tmp_path / "beam", _options(), shard_runner=beam_shard_runner(beam))

    shards = sorted(p.name for p in (tmp_path / "local").glob("*.tfrecord"))
    assert len(shards) >= 4 and shards == sorted(p.name for p in (tmp_path / "beam").glob("*.tfrecord"))
    assert not list((tmp_path / "beam").glob(".*")), "no temporary file or result scratch left behind"
    parsed_local, parsed_beam = _parsed(tmp_path / "local"), _parsed(tmp_path / "beam")
    assert parsed_beam == parsed_local  # field by field, in order, shard by shard
    for name in shards:
        assert (tmp_path / "beam" / name).read_bytes() == (tmp_path / "local" / name).read_bytes()
    index_local = json.loads((tmp_path / "local" / "examples.json").read_text())
    index_beam = json.loads((tmp_path / "beam" / "examples.json").read_text())
    assert index_beam == index_local
    assert on_beam.quarantine.items == local.quarantine.items
    kinds = {q.kind for q in local.quarantine.items}
    assert {"missing_file", "unknown_class"} <= kinds and len(kinds) >= 3
    assert (on_beam.copied, on_beam.reencoded) == (local.copied, local.reencoded) and local.copied > 0 and local.reencoded > 0
    records = sum(len(rows) for rows in parsed_local.values())
    assert records == sum(local.counts.values()) > 36  # balancing repeated images


def test_transform_step_uses_beam_when_the_spec_says_so(tmp_path: Path) -> None:
    data = tmp_path / "images"
    data.mkdir()
    manifest = _dataset(data)
    (tmp_path / "m").mkdir()
    manifest.save(tmp_path / "m" / "manifest.json")
    LM.save(tmp_path / "label_map.json")

    def ctx(beam: dict[str, Any] | None) -> StepContext:
        runtime: dict[str, Any] = {"root": str(tmp_path / "runs"), "metadata": {"url": f"sqlite:///{tmp_path / 'mlmd.sqlite'}"}}
        if beam is not None:
            runtime["beam"] = beam
        spec = PipelineSpec.model_validate(
            {
                "name": "t",
                "task": "detection",
                "data": {"source": "x.json", "max_quarantine_fraction": 0.5},
                "transform": _options().model_dump(),
                "runtime": runtime,
            }
        )
        return StepContext(spec=spec, run_id="run-1", component="transform")

    messages: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: messages.append(record.getMessage())  # type: ignore[method-assign]
    logger = logging.getLogger("cvpipe.transform")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        local = core.run(ctx(None), tmp_path / "m", tmp_path / "label_map.json", tmp_path / "ex-local", tmp_path / "q-local")
        assert not any("Apache Beam" in m for m in messages)
        on_beam = core.run(
            ctx({"runner": "DirectRunner"}), tmp_path / "m", tmp_path / "label_map.json", tmp_path / "ex-beam", tmp_path / "q-beam"
        )
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    assert any("on Apache Beam (DirectRunner)" in m for m in messages)
    assert on_beam.index == local.index
    assert (tmp_path / "q-beam" / "quarantine.json").read_text() == (tmp_path / "q-local" / "quarantine.json").read_text()


def _frames(tmp_path: Path) -> dict[str, Any]:
    from components.validate import checks, stats

    data = tmp_path / "images"
    data.mkdir()
    manifest = _dataset(data)
    facts = checks.inspect_images(manifest, 1 << 24)
    return stats.build_frames([(rec, facts[i]) for i, rec in enumerate(manifest.images)], LM, manifest.task)


def test_tfdv_statistics_on_beam_equal_the_local_ones(tmp_path: Path) -> None:
    from components.validate import stats
    from components.validate.beam import generate_statistics_beam, record_batches

    frames = _frames(tmp_path)
    assert len(frames["images"]) == 38 and len(frames["objects"]) == 37
    local = stats.generate_statistics(frames)
    assert set(local) == {"images", "objects"}
    batches, schema = record_batches(frames["objects"], rows_per_batch=10)
    assert len(batches) == 4 and schema is None  # the work really is split
    on_beam = generate_statistics_beam(frames, BeamSpec(options={"direct_num_workers": 2, "direct_running_mode": "multi_threading"}), 10)
    for table in ("images", "objects"):
        assert on_beam[table] == local[table], f"{table} statistics differ"
        assert on_beam[table].datasets[0].num_examples == len(frames[table])
    # the validate step's own entry point takes the spec's Beam section
    assert stats.generate_statistics(frames, beam=BeamSpec()) == local


def test_beam_section_of_the_spec() -> None:
    base = {"name": "p", "task": "detection", "data": {"source": "gs://b/a.json"}}
    assert parse_spec(base).runtime.beam is None
    assert "beam" not in parse_spec(base).model_dump_json()  # specs without it serialise as before
    spec = parse_spec({**base, "runtime": {"beam": {"runner": "DataflowRunner", "options": {"project": "acme", "region": "europe-west4"}}}})
    assert spec.runtime.beam is not None and PipelineSpec.model_validate_json(spec.model_dump_json()) == spec
    opts = pipeline_options(spec.runtime.beam).get_all_options()
    assert opts["runner"] == "DataflowRunner" and opts["project"] == "acme" and opts["region"] == "europe-west4"
    flags = pipeline_options(BeamSpec(options={"direct_num_workers": 3, "save_main_session": True})).get_all_options()
    assert flags["direct_num_workers"] == 3 and flags["save_main_session"] is True and flags["runner"] == "DirectRunner"
    from components.core.errors import SpecError

    with pytest.raises(SpecError, match=r"runtime\.beam\.runner"):
        parse_spec({**base, "runtime": {"beam": {"runner": "SparkyRunner"}}})
