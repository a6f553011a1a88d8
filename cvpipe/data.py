"""Datasets: reading annotations, generated data, and the TFRecords a transform wrote.

::

    from cvpipe.data import SynthConfig, generate_dataset, read_source, read_dataset

    generate_dataset(SynthConfig(task="detection", num_images=240), "data/shapes")   # COCO + JPEGs
    result = read_source(spec.data, spec.task)     # manifest, label map, quarantine; nothing written
    ds = read_dataset("runs/<run>/transform/examples", "train", "detection")     # a tf.data.Dataset

Importing this module does not import TensorFlow; :func:`read_dataset` does when called.
"""

from components.core.examples import load_index, read_dataset
from components.ingest.core import IngestResult, read_source
from components.synth.core import SynthConfig, SynthResult, available_backgrounds, available_classes
from components.synth.core import generate as generate_dataset

__all__ = [
    "IngestResult",
    "SynthConfig",
    "SynthResult",
    "available_backgrounds",
    "available_classes",
    "generate_dataset",
    "load_index",
    "read_dataset",
    "read_source",
]
