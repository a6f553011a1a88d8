"""Sampling logged predictions for human labelling, and the Label Studio round trip.

Modules: :mod:`~components.sample.core` (drawing a batch, writing it, the
pipeline steps), :mod:`~components.sample.labelstudio` (tasks with
pre-annotations, export import with validation, the API client),
:mod:`~components.sample.simulate` (an export made from true labels, for demos
and tests), :mod:`~components.sample.cli` (the ``label`` command group).

Importing this package imports neither TensorFlow, Feast nor kfp.
"""

__all__: list[str] = []
