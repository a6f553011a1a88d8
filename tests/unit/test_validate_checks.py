"""Image and annotation checks of validate, without TFDV (components.validate.checks, policies)."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from components.core.labelmap import LabelMap
from components.core.manifest import ImageRecord, Manifest, ObjectAnnotation
from components.core.spec import ValidationSpec
from components.validate import checks
from components.validate.core import DATASET_KINDS, KINDS, policy_for


def _png_bomb(path: Path, width: int = 100_000, height: int = 100_000) -> Path:
    """A valid PNG header claiming a huge image, followed by a few bytes of pixel data."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))
    return path


def _rgb(path: Path, size: tuple[int, int] = (40, 30), fmt: str | None = None, seed: int = 0) -> Path:
    arr = np.random.default_rng(seed).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(arr, "RGB").save(path, format=fmt)
    return path


def _manifest(root: Path, records: list[ImageRecord]) -> Manifest:
    return Manifest(task="detection", root=str(root), label_map=LabelMap.from_names(["cat", "dog"]), images=records)


def _rec(name: str, **kw: object) -> ImageRecord:
    base: dict[str, object] = {"image_id": name, "path": name, "sha256": "", "width": 40, "height": 30}
    base.update(kw)
    return ImageRecord.model_validate(base)


def _kinds(facts: checks.ImageFacts) -> list[str]:
    return [p.kind for p in facts.problems]


def test_decompression_bomb_is_rejected_from_the_header_without_decoding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _png_bomb(tmp_path / "bomb.png")
    _rgb(tmp_path / "ok.png", fmt="PNG")
    decoded: list[int] = []
    real_decode = checks.decode_rgb

    def counting_decode(source: bytes, max_pixels: int) -> np.ndarray:
        decoded.append(len(source))
        return real_decode(source, max_pixels=max_pixels)

    monkeypatch.setattr(checks, "decode_rgb", counting_decode)
    m = _manifest(tmp_path, [_rec("bomb.png"), _rec("ok.png")])
    bomb, ok = checks.inspect_images(m, max_pixels=8192 * 8192, workers=2)

    assert _kinds(bomb) == ["decompression_bomb"]
    assert "100000x100000" in bomb.problems[0].message
    assert bomb.info is not None and bomb.info.width == 100_000
    assert not bomb.decoded and bomb.sha256 is None
    assert _kinds(ok) == [] and ok.decoded
    assert decoded == [(tmp_path / "ok.png").stat().st_size]  # only the good image reached the decoder


def test_image_level_kinds(tmp_path: Path) -> None:
    good = _rgb(tmp_path / "good.jpg", fmt="JPEG")
    full = _rgb(tmp_path / "full.jpg", size=(200, 150), fmt="JPEG").read_bytes()
    (tmp_path / "truncated.jpg").write_bytes(full[: len(full) // 2])
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "text.jpg").write_bytes(b"not an image at all")
    Image.new("CMYK", (40, 30), (0, 50, 100, 0)).save(tmp_path / "cmyk.jpg")
    Image.new("L", (40, 30), 128).save(tmp_path / "gray.png")
    Image.new("P", (40, 30), 3).save(tmp_path / "palette.png")
    Image.new("RGBA", (40, 30), (1, 2, 3, 100)).save(tmp_path / "rgba.png")
    Image.fromarray(np.full((30, 40), 40000, dtype=np.uint16)).save(tmp_path / "deep.png")
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.open(good).save(tmp_path / "rotated.jpg", exif=exif)
    _rgb(tmp_path / "really_png.jpg", fmt="PNG")
    names = [
        "good.jpg",
        "truncated.jpg",
        "empty.jpg",
        "text.jpg",
        "missing.jpg",
        "cmyk.jpg",
        "gray.png",
        "palette.png",
        "rgba.png",
        "deep.png",
        "rotated.jpg",
        "really_png.jpg",
    ]
    facts = {f.image_id: f for f in checks.inspect_images(_manifest(tmp_path, [_rec(n) for n in names]), max_pixels=10**6)}

    assert _kinds(facts["good.jpg"]) == []
    assert facts["good.jpg"].brightness is not None and 0 < facts["good.jpg"].brightness < 255
    assert facts["good.jpg"].contrast is not None and facts["good.jpg"].contrast > 0
    assert _kinds(facts["truncated.jpg"]) == ["undecodable"]
    assert _kinds(facts["empty.jpg"]) == ["unreadable"] and "0 bytes" in facts["empty.jpg"].problems[0].message
    assert _kinds(facts["text.jpg"]) == ["unreadable"]
    assert _kinds(facts["missing.jpg"]) == ["unreadable"]
    for name, mode in [("cmyk.jpg", "CMYK"), ("gray.png", "L"), ("palette.png", "P"), ("rgba.png", "RGBA"), ("deep.png", "I;16")]:
        assert _kinds(facts[name]) == ["color_mode"], name
        assert mode in facts[name].problems[0].message and "will be converted" in facts[name].problems[0].message
        assert facts[name].decoded
    assert _kinds(facts["rotated.jpg"]) == ["exif_orientation"]
    assert _kinds(facts["really_png.jpg"]) == ["extension_mismatch"]
    assert "PNG" in facts["really_png.jpg"].problems[0].message


def test_object_checks_use_the_header_size_and_name_each_object(tmp_path: Path) -> None:
    _rgb(tmp_path / "a.jpg", size=(40, 30), fmt="JPEG")
    lm = LabelMap.from_names(["cat", "dog"])
    rec = _rec(
        "a.jpg",
        width=400,  # the manifest is wrong; the header (40x30) is what boxes are checked against
        height=300,
        objects=[
            ObjectAnnotation(class_id=1, bbox=[0, 0, 40, 30], annotation_id="fits"),
            ObjectAnnotation(class_id=1, bbox=[30, 5, 20, 10], annotation_id="outside"),
            ObjectAnnotation(class_id=2, bbox=[5, 5, 0, 10], annotation_id="flat"),
            ObjectAnnotation(class_id=2, bbox=[5, float("nan"), 3, 3]),
            ObjectAnnotation(class_id=9, bbox=[1, 1, 3, 3], annotation_id="stranger"),
            ObjectAnnotation(class_id=1, bbox=[-0.3, 0, 40.4, 30], annotation_id="rounding"),
        ],
    )
    [facts] = checks.inspect_images(_manifest(tmp_path, [rec]), max_pixels=10**6)
    found = {(p.kind, p.annotation_id) for p in checks.object_problems(rec, facts, lm, "detection")}
    assert found == {
        ("box_outside_image", "outside"),
        ("degenerate_box", "flat"),
        ("nan_coordinate", "a.jpg#3"),
        ("unknown_label", "stranger"),
    }


def test_classification_unknown_label_is_image_level(tmp_path: Path) -> None:
    _rgb(tmp_path / "a.jpg", fmt="JPEG")
    rec = _rec("a.jpg", class_id=7)
    [facts] = checks.inspect_images(_manifest(tmp_path, [rec]), max_pixels=10**6)
    [p] = checks.object_problems(rec, facts, LabelMap.from_names(["cat"]), "classification")
    assert p.kind == "unknown_label" and p.annotation_id is None


def test_duplicates_across_splits_keep_the_training_copy(tmp_path: Path) -> None:
    data = _rgb(tmp_path / "a.jpg", fmt="JPEG").read_bytes()
    (tmp_path / "b.jpg").write_bytes(data)
    (tmp_path / "c.jpg").write_bytes(data)
    (tmp_path / "d.jpg").write_bytes(data)
    _rgb(tmp_path / "e.jpg", fmt="JPEG", seed=1)
    recs = [
        _rec("b.jpg", split="test"),
        _rec("a.jpg", split="train"),
        _rec("c.jpg", split="train"),  # same split as the kept copy: not leakage
        _rec("d.jpg", split="validation"),
        _rec("e.jpg", split="test"),
    ]
    m = _manifest(tmp_path, recs)
    dups = checks.duplicate_problems(m.images, checks.inspect_images(m, max_pixels=10**6))
    assert sorted(dups) == [0, 3]
    assert all(p.kind == "duplicate_across_splits" and "a.jpg" in p.message for p in dups.values())


def test_policy_resolution() -> None:
    v = ValidationSpec(policy={"undecodable": "fail", "drift": "quarantine", "color_mode": "quarantine"}, default_policy="quarantine")
    assert policy_for("undecodable", v) == "fail"
    assert policy_for("color_mode", v) == "quarantine"  # the spec beats the built-in default
    assert policy_for("exif_orientation", v) == "warn"  # built-in default
    assert policy_for("degenerate_box", v) == "quarantine"  # default_policy
    assert policy_for("drift", v) == "warn"  # dataset-level: quarantine means warn
    assert policy_for("too_few_examples", v) == "warn"
    assert policy_for("empty_dataset", v) == "fail"
    assert set(KINDS) >= DATASET_KINDS
