"""The TFRecord contract: TF-free encoding and framing agree with TensorFlow's own parser and reader."""

from __future__ import annotations

import gzip
import io

import numpy as np
import pytest
from PIL import Image

from components.core.errors import DataError
from components.core.examples import (
    ExampleContent,
    ExamplesIndex,
    ShardInfo,
    SplitInfo,
    TFRecordWriter,
    encode_example,
    iter_records,
    load_index,
    read_dataset,
    shard_paths,
)
from components.core.labelmap import LabelMap

tf = pytest.importorskip("tensorflow")


def _png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def _content() -> tuple[ExampleContent, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 256, (12, 20, 3), dtype=np.uint8)
    mask = (rng.random((12, 20)) > 0.5).astype(np.uint8)
    c = ExampleContent(
        encoded=_png(pixels),
        image_format="png",
        height=12,
        width=20,
        filename="dir/ä.png",
        source_id="img-7",
        sha256="ab" * 32,
        boxes=[(0.1, 0.2, 0.5, 0.75), (0.0, 0.0, 1.0, 1.0)],
        labels=[3, 70000000000],
        texts=["cat", "dög"],
        is_crowd=[False, True],
        area=[12.5, 240.0],
        masks_png=[_png(mask), _png(1 - mask)],
        segmentation_png=_png(mask * 3),
    )
    return c, pixels, mask


def test_encoded_example_parses_with_tensorflow_field_by_field() -> None:
    c, _, _ = _content()
    f = tf.train.Example.FromString(encode_example(c)).features.feature
    assert f["image/encoded"].bytes_list.value == [c.encoded]
    assert f["image/format"].bytes_list.value == [b"png"]
    assert f["image/height"].int64_list.value == [12]
    assert f["image/width"].int64_list.value == [20]
    assert f["image/filename"].bytes_list.value == ["dir/ä.png".encode()]
    assert f["image/source_id"].bytes_list.value == [b"img-7"]
    assert f["image/key/sha256"].bytes_list.value == [("ab" * 32).encode()]
    assert list(f["image/object/bbox/ymin"].float_list.value) == pytest.approx([0.1, 0.0])
    assert list(f["image/object/bbox/xmin"].float_list.value) == pytest.approx([0.2, 0.0])
    assert list(f["image/object/bbox/ymax"].float_list.value) == pytest.approx([0.5, 1.0])
    assert list(f["image/object/bbox/xmax"].float_list.value) == pytest.approx([0.75, 1.0])
    assert f["image/object/class/label"].int64_list.value == [3, 70000000000]
    assert f["image/object/class/text"].bytes_list.value == [b"cat", "dög".encode()]
    assert f["image/object/is_crowd"].int64_list.value == [0, 1]
    assert list(f["image/object/area"].float_list.value) == pytest.approx([12.5, 240.0])
    assert list(f["image/object/mask"].bytes_list.value) == list(c.masks_png)
    assert f["image/segmentation/class/format"].bytes_list.value == [b"png"]
    assert "image/class/label" not in f


def test_classification_example_and_negative_ints() -> None:
    c = ExampleContent(encoded=b"\xff\xd8", image_format="jpeg", height=1, width=1, class_label=-2, class_text="neg")
    f = tf.train.Example.FromString(encode_example(c)).features.feature
    assert f["image/class/label"].int64_list.value == [-2]
    assert f["image/class/text"].bytes_list.value == [b"neg"]
    assert "image/object/bbox/xmin" not in f  # classification records carry no object features


def test_empty_object_lists_parse_as_empty() -> None:
    c = ExampleContent(encoded=b"x", image_format="jpeg", height=4, width=5)
    f = tf.train.Example.FromString(encode_example(c)).features.feature
    assert list(f["image/object/bbox/xmin"].float_list.value) == []
    assert list(f["image/object/class/label"].int64_list.value) == []
    assert list(f["image/object/mask"].bytes_list.value) == []


def test_mismatched_object_lists_are_refused() -> None:
    with pytest.raises(ValueError, match="labels has 1 entries for 2 boxes"):
        encode_example(ExampleContent(encoded=b"x", image_format="jpeg", height=1, width=1, boxes=[(0, 0, 1, 1)] * 2, labels=[1]))


@pytest.mark.parametrize("gz", [False, True])
def test_writer_framing_is_read_by_tensorflow_and_by_iter_records(tmp_path, gz: bool) -> None:
    path = tmp_path / ("a.tfrecord.gz" if gz else "a.tfrecord")
    records = [b"", b"x" * 1000, bytes(range(256))]
    with TFRecordWriter(path, gzip_compress=gz) as w:
        for r in records:
            w.write(r)
    if gz:
        assert path.read_bytes()[:2] == b"\x1f\x8b"
        assert gzip.decompress(path.read_bytes())  # a valid GZIP stream
    assert list(iter_records(path)) == records
    ds = tf.data.TFRecordDataset(str(path), compression_type="GZIP" if gz else "")
    assert [bytes(r.numpy()) for r in ds] == records


def test_iter_records_detects_corruption(tmp_path) -> None:
    path = tmp_path / "a.tfrecord"
    with TFRecordWriter(path) as w:
        w.write(b"hello world")
    data = bytearray(path.read_bytes())
    data[14] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match="data CRC mismatch"):
        list(iter_records(path))
    path.write_bytes(bytes(data[:10]))
    with pytest.raises(DataError, match="truncated"):
        list(iter_records(path))


def _write_dir(tmp_path, task: str, contents: list[ExampleContent], gz: bool = False) -> None:
    name = "train-00000-of-00001.tfrecord" + (".gz" if gz else "")
    with TFRecordWriter(tmp_path / name, gzip_compress=gz) as w:
        for c in contents:
            w.write(encode_example(c))
    ExamplesIndex(
        task=task,  # type: ignore[arg-type]
        gzip=gz,
        label_map=LabelMap.from_names(["cat", "dog", "cow"]),
        splits={
            "train": SplitInfo(records=len(contents), shards=[ShardInfo(file=name, records=len(contents), sha256="")]),
            "test": SplitInfo(),
        },
    ).save(tmp_path)


def test_read_dataset_keys_shapes_and_values(tmp_path) -> None:
    c, pixels, mask = _content()
    c.labels = [3, 1]
    _write_dir(tmp_path, "segmentation", [c], gz=True)
    (el,) = list(read_dataset(tmp_path, "train", "segmentation"))
    assert set(el) == {
        "image",
        "height",
        "width",
        "source_id",
        "filename",
        "sha256",
        "boxes",
        "labels",
        "is_crowd",
        "area",
        "masks",
        "segmentation",
    }
    np.testing.assert_array_equal(el["image"].numpy(), pixels)
    assert el["boxes"].dtype == tf.float32 and el["boxes"].shape == (2, 4)
    np.testing.assert_allclose(el["boxes"].numpy()[0], [0.1, 0.2, 0.5, 0.75], rtol=1e-6)
    assert el["labels"].dtype == tf.int64 and el["labels"].numpy().tolist() == [3, 1]
    assert el["is_crowd"].numpy().tolist() == [False, True]
    assert el["masks"].dtype == tf.uint8 and el["masks"].shape == (2, 12, 20)
    np.testing.assert_array_equal(el["masks"].numpy()[0], mask)
    np.testing.assert_array_equal(el["segmentation"].numpy(), mask * 3)
    assert el["filename"].numpy().decode() == "dir/ä.png"
    (det,) = list(read_dataset(tmp_path, "train", "detection", decode_masks=False))
    assert "segmentation" not in det and det["masks"].shape == (0, 12, 20)
    assert list(read_dataset(tmp_path, "test", "detection")) == []


def test_read_dataset_refuses_missing_index_unknown_split_and_wrong_task(tmp_path) -> None:
    with pytest.raises(DataError, match="no examples index"):
        load_index(tmp_path)
    c = ExampleContent(encoded=_png(np.zeros((2, 2, 3), np.uint8)), image_format="png", height=2, width=2, class_label=1, class_text="cat")
    _write_dir(tmp_path, "classification", [c])
    with pytest.raises(DataError, match="no split 'validation'"):
        shard_paths(tmp_path, "validation")
    with pytest.raises(DataError, match="cannot be read as detection"):
        read_dataset(tmp_path, "train", "detection")
    (el,) = list(read_dataset(tmp_path, "train", "classification", shuffle=True, seed=1))
    assert set(el) == {"image", "height", "width", "source_id", "filename", "sha256", "label"}
    assert el["label"].numpy() == 1


def test_crc32c_fallback_matches_the_c_implementation() -> None:
    from components.core.examples import tfrecord

    assert tfrecord._crc32c_python(b"123456789") == 0xE3069283  # the standard CRC-32C check value
    data = bytes(range(256)) * 7
    assert tfrecord._crc32c_python(data) == tfrecord._crc32c(data)
