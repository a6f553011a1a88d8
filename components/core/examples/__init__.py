"""The TFRecord contract shared by transform, training and evaluation.

Transform writes one ``tf.train.Example`` per image into sharded TFRecord
files plus an index, ``examples.json``; training and evaluation read them
back with :func:`read_dataset`. Feature keys follow the TensorFlow Object
Detection API:

=================================  ========  ==============================================
key                                type      meaning
=================================  ========  ==============================================
image/encoded                      bytes     JPEG or PNG bytes of upright 8-bit RGB pixels
image/format                       bytes     ``jpeg`` or ``png``
image/height, image/width          int64     size of the encoded image
image/filename                     bytes     the image's path in the manifest
image/source_id                    bytes     the manifest's ``image_id``
image/key/sha256                   bytes     hex sha256 of the *source* file (the manifest's content hash)
image/object/bbox/xmin|xmax|...    float     boxes, normalised to 0..1
image/object/class/label           int64     label-map ids (from 1)
image/object/class/text            bytes     class names
image/object/is_crowd              int64     COCO ``iscrowd`` (0/1)
image/object/area                  float     object area in pixels of the encoded image
image/object/mask                  bytes     one PNG per object, 0/1 values, image size
image/class/label, .../text        int64     image class (classification)
image/segmentation/class/encoded   bytes     PNG class map: label-map ids, 0 background
image/segmentation/class/format    bytes     ``png``
=================================  ========  ==============================================

The index (:class:`ExamplesIndex`, ``examples_dir/examples.json``) lists each
split's shards (file, record count, sha256), whether they are GZIP
compressed, the task, the label map and counts per split and class.

Writing needs no TensorFlow: :func:`encode_example` emits the protobuf wire
format directly and :class:`TFRecordWriter` frames records with CRC32C, so
transform workers start in milliseconds. Reading (:func:`read_dataset`)
imports TensorFlow inside the function, so importing this module stays cheap.
"""

from .encode import ExampleContent, encode_example
from .features import AUTOTUNE, EXAMPLES_INDEX, SPLITS
from .index import ExamplesIndex, ShardInfo, SplitInfo, load_index, shard_paths
from .reader import read_dataset
from .tfrecord import TFRecordWriter, iter_records

__all__ = [
    "AUTOTUNE",
    "EXAMPLES_INDEX",
    "SPLITS",
    "ExampleContent",
    "ExamplesIndex",
    "ShardInfo",
    "SplitInfo",
    "TFRecordWriter",
    "encode_example",
    "iter_records",
    "load_index",
    "read_dataset",
    "shard_paths",
]
