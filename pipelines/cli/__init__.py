"""The ``cvpipe`` command line: one package, a module per command group.

::

    main.py       the root group (configures logging) and ``main``, the console script
    _common.py    what every command shares: spec loading, error reporting, ``--until``
    pipeline.py   validate-spec, compile, run, demo
    runs.py       submit, runs list|show|wait|cancel, lineage (through the Runner protocol)
    schedule.py   schedule, scheduler, ce run|compile|demo
    models.py     models list|show|promote|rollback|archive|tree
    predict.py    predict, serve, logs compact
    label.py      label sample|push|pull|simulate|import
    datasets.py   datasets synth
    alerts.py     alerts list|show|ack|silence|unsilence
"""

from __future__ import annotations

from .main import cli, main

__all__ = ["cli", "main"]
