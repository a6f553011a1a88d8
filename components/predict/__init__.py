"""Batch and online prediction with a prediction log in Feast.

Modules: :mod:`~components.predict.logs` (the prediction log and human labels
in a Feast repository), :mod:`~components.predict.core` (batch prediction,
``run()`` for the KFP step), :mod:`~components.predict.server` (the HTTP
prediction server). The ``cvpipe predict`` and ``serve`` commands live in :mod:`pipelines.cli.predict`.

Importing this package imports neither TensorFlow, Feast nor kfp.
"""

__all__: list[str] = []
