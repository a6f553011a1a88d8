"""Sampling logged predictions for human labelling, and the Label Studio round trip.

Modules: :mod:`~components.sample.core` (drawing a batch, writing it, the
pipeline steps), :mod:`~components.sample.labelstudio` (tasks with
pre-annotations, export import with validation, the API client),
:mod:`~components.sample.simulate` (an export made from true labels, for demos
and tests). The ``cvpipe label`` commands live in :mod:`pipelines.cli.label`.

Importing this package imports neither TensorFlow, Feast nor kfp.
"""

__all__: list[str] = []
