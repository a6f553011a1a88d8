"""The transform component: a validated manifest becomes sharded TFRecords per split.

See :mod:`components.transform.core` for what it does and
:mod:`components.core.examples` for the record format it writes.
"""

__all__: list[str] = []
