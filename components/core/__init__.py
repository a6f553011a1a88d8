"""Shared foundations of every cvpipe component.

Modules: :mod:`~components.core.errors` (the exception tree),
:mod:`~components.core.spec` (the declarative pipeline spec),
:mod:`~components.core.labelmap`, :mod:`~components.core.manifest`,
:mod:`~components.core.quarantine`, :mod:`~components.core.images`,
:mod:`~components.core.masks`, :mod:`~components.core.io`,
:mod:`~components.core.lineage` (ML Metadata), :mod:`~components.core.step`
(run-time context of a component) and :mod:`~components.core.log`.

This package never imports TensorFlow or kfp at import time.
"""

__all__: list[str] = []
