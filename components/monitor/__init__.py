"""What continuous evaluation shares: the model in production, its training data, the window, the labels.

Modules: :mod:`.production` (the production version, its blessed evaluation and
its training manifest, from the registry and lineage), :mod:`.window` (the
read-window step), :mod:`.labels` (the import-labels step) and
:mod:`.component` (KFP wrappers of read-window, sample and import-labels).
Importing this package imports neither kfp, Feast nor TensorFlow.
"""

from .production import BlessedModel, blessed_model, producer_outputs, training_manifest, upstream_of_kind

__all__ = ["BlessedModel", "blessed_model", "producer_outputs", "training_manifest", "upstream_of_kind"]
