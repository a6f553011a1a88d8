"""The train component: Keras models for classification, detection and segmentation.

:func:`components.train.core.run` trains one model from the transform step's
TFRecords and exports it (see :mod:`components.train.export` for the model
directory layout, :class:`components.core.predictor.Predictor` to use it).
Modules: ``core`` (the step), ``models`` (architectures, losses, warm-start
weight transfer), ``detector`` (the compact detector's targets, losses and
decoding), ``data`` (input pipeline), ``loop`` (training loop with early
stopping and resumable step checkpoints), ``strategy`` (distribution and
mixed precision), ``tuner`` (KerasTuner search), ``export`` (SavedModel,
TFLite), ``report`` (loss curves, over-fitting check), ``retinanet``
(keras-hub's RetinaNet as a cvpipe detector), ``user`` (user build functions
and ``run_fn``).

Importing this package imports neither TensorFlow nor kfp.
"""

__all__: list[str] = []
