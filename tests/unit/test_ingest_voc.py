"""Ingest of Pascal VOC XML: 1-based coordinates, flags, splits, and XML that must not be trusted."""

from __future__ import annotations

from pathlib import Path

import pytest
from ingest_testdata import data_spec, write_image

from components.core.errors import AnnotationError
from components.ingest.core import read_source


def _xml(filename: str | None, objects: list[str], size: tuple[int, int] = (64, 48), prolog: str = "") -> str:
    fn = f"<filename>{filename}</filename>" if filename is not None else ""
    return (
        f"{prolog}<annotation><folder>VOC2007</folder>{fn}"
        f"<size><width>{size[0]}</width><height>{size[1]}</height><depth>3</depth></size>" + "".join(objects) + "</annotation>"
    )


def _obj(name: str, box: tuple[float, float, float, float] | None, difficult: int | None = None, truncated: int | None = None) -> str:
    flags = "".join(f"<{t}>{v}</{t}>" for t, v in (("difficult", difficult), ("truncated", truncated)) if v is not None)
    bb = (
        ""
        if box is None
        else "<bndbox>" + "".join(f"<{t}>{v:g}</{t}>" for t, v in zip(("xmin", "ymin", "xmax", "ymax"), box, strict=True)) + "</bndbox>"
    )
    return f"<object><name>{name}</name><pose>Left</pose>{flags}{bb}</object>"


@pytest.fixture
def devkit(tmp_path: Path) -> Path:
    """A VOCdevkit-style directory with good and bad entries."""
    voc = tmp_path / "VOC2007"
    ann, jpg = voc / "Annotations", voc / "JPEGImages"
    ann.mkdir(parents=True)
    write_image(jpg / "000001.jpg", 64, 48)
    write_image(jpg / "000002.jpg", 32, 32, seed=1)
    write_image(jpg / "000007.jpg", 32, 32, seed=7)
    secret = tmp_path / "secret.txt"
    secret.write_text("TOPSECRET-CONTENT")
    (ann / "000001.xml").write_text(
        _xml("000001.jpg", [_obj("dog", (1, 1, 64, 48)), _obj(" person ", (10, 5, 20, 15), difficult=1, truncated=0)])
    )
    # an annotator's 0 (not valid 1-based) overshoots by one pixel and is clipped
    (ann / "000002.xml").write_text(_xml("000002.jpg", [_obj("cat", (0, 1, 10, 10))], size=(32, 32)))
    (ann / "000003.xml").write_text(
        _xml(
            "&xxe;",
            [_obj("cat", (1, 1, 5, 5))],
            prolog=f'<?xml version="1.0"?><!DOCTYPE annotation [<!ENTITY xxe SYSTEM "file://{secret}">]>',
        )
    )
    (ann / "000004.xml").write_text("<annotation><filename>000004.jpg</filename><object>")
    (ann / "000005.xml").write_text(_xml("000005.jpg", [_obj("cat", (1, 1, 5, 5))]))
    (ann / "000006.xml").write_text(_xml("../../secret.txt", [_obj("cat", (1, 1, 5, 5))]))
    (ann / "000007.xml").write_text(
        _xml("000007.jpg", [_obj("cat", None), _obj("cat", (1, 1, 32, 32)), _obj("dog", (20, 20, 40, 40))], size=(32, 32))
    )
    main = voc / "ImageSets" / "Main"
    main.mkdir(parents=True)
    (main / "train.txt").write_text("000001\n000007\n")
    (main / "val.txt").write_text("000002\n")
    return voc


def test_reads_voc_with_one_based_conversion_flags_and_splits(devkit: Path) -> None:
    res = read_source(data_spec(devkit), "detection")
    m = res.manifest
    assert m.format == "voc" and m.root == str(devkit / "JPEGImages")
    # first mention in sorted file order, the rule every format follows (000001.xml names dog, then person)
    assert res.label_map.classes == {1: "dog", 2: "person", 3: "cat"}
    by_id = {r.image_id: r for r in m.images}
    assert sorted(by_id) == ["000001", "000002", "000007"]
    first = by_id["000001"]
    assert (first.path, first.width, first.height, first.split) == ("000001.jpg", 64, 48, "train")
    dog, person = first.objects
    # whole-image box 1..64 x 1..48 is [0, 0, 64, 48]
    assert (dog.class_id, dog.bbox, dog.area, dog.attributes) == (1, [0.0, 0.0, 64.0, 48.0], 64.0 * 48.0, {"pose": "Left"})
    assert (person.class_id, person.bbox) == (2, [9.0, 4.0, 11.0, 11.0])
    assert person.attributes == {"difficult": True, "truncated": False, "pose": "Left"}
    assert person.annotation_id == "000001#1"
    second = by_id["000002"]
    assert second.split == "validation"
    assert [o.bbox for o in second.objects] == [[0.0, 0.0, 10.0, 10.0]]
    seventh = by_id["000007"]
    assert [o.bbox for o in seventh.objects] == [[0.0, 0.0, 32.0, 32.0]]


def test_bad_voc_entries_are_quarantined(devkit: Path) -> None:
    res = read_source(data_spec(devkit), "detection")
    q = res.quarantine
    images = {i.image_id: i for i in q.items if i.annotation_id is None}
    assert {k: v.kind for k, v in images.items()} == {
        "000003": "unsafe_xml",
        "000004": "invalid_annotation",
        "000005": "missing_file",
        "000006": "path_escapes_root",
    }
    assert images["000003"].file == str(devkit / "Annotations" / "000003.xml")
    assert "cannot parse XML" in images["000004"].reason
    annotations = {i.annotation_id: i.kind for i in q.items if i.annotation_id is not None}
    assert annotations == {"000007#0": "invalid_coordinates", "000007#2": "box_outside_image"}
    assert q.total == 7 and q.rejected_images == 4


def test_xml_external_entity_is_never_expanded(devkit: Path, tmp_path: Path) -> None:
    res = read_source(data_spec(devkit), "detection")
    text = res.manifest.model_dump_json() + res.quarantine.model_dump_json() + res.quarantine.to_csv()
    assert "TOPSECRET" not in text
    item = next(i for i in res.quarantine.items if i.image_id == "000003")
    assert "entit" in item.reason.lower()


def test_billion_laughs_is_refused(tmp_path: Path) -> None:
    write_image(tmp_path / "a.jpg", 32, 32)
    lol = '<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>'
    (tmp_path / "a.xml").write_text(_xml("a.jpg", [_obj("&lol2;", (1, 1, 5, 5))], prolog=lol))
    res = read_source(data_spec(tmp_path, format="voc"), "detection")
    assert len(res.manifest) == 0
    assert [i.kind for i in res.quarantine.items] == ["unsafe_xml"]


def test_flat_layout_finds_image_beside_xml_without_filename(tmp_path: Path) -> None:
    write_image(tmp_path / "sub" / "pic.png", 40, 30)
    (tmp_path / "sub" / "pic.xml").write_text(_xml(None, [_obj("bird", (2, 3, 11, 13))], size=(40, 30)))
    res = read_source(data_spec(tmp_path, format="voc"), "detection")
    [rec] = res.manifest.images
    assert (rec.image_id, rec.path, rec.split) == ("sub/pic", "sub/pic.png", None)
    assert rec.objects[0].bbox == [1.0, 2.0, 10.0, 11.0]


def test_directory_without_xml_raises(tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    with pytest.raises(AnnotationError, match=r"no \.xml"):
        read_source(data_spec(tmp_path / "x", format="voc"), "detection")
