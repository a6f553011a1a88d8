"""Per-step log lines and progress bars.

Components log through :func:`get_logger` (shown as ``HH:MM:SS component: message``
once the application calls :func:`configure_logging`) so a pipeline run reads as one timeline; long loops wrap their iterable in
:func:`progress`, a rich progress bar on a terminal and periodic log lines
elsewhere (KFP pods, CI), never a silent wait.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable, Iterator
from typing import TextIO, TypeVar

__all__ = ["configure_logging", "get_logger", "progress"]

T = TypeVar("T")
ROOT = "cvpipe"
"""The parent of every cvpipe logger (``cvpipe.<component>``)."""


def get_logger(component: str) -> logging.Logger:
    """The logger of a component or tool, ``cvpipe.<component>``.

    It has no handler and no level of its own: like kfp and httpx, cvpipe
    leaves showing log records to the application (the ``cvpipe`` command
    line and the KFP task process call :func:`configure_logging`).

    Args:
        component: the component or tool name.

    Returns:
        The logger.
    """
    return logging.getLogger(f"{ROOT}.{component}")


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is when a record is emitted (test runners swap it)."""

    @property  # type: ignore[override]
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        pass


def configure_logging(level: int = logging.INFO) -> None:
    """Shows cvpipe's log records on stderr as ``HH:MM:SS component: message``.

    For applications only: the ``cvpipe`` command line and the process of a
    KFP task (:meth:`~components.core.step.StepContext.for_component`) call it;
    the library itself never does. Calling it again changes nothing but the level.

    Args:
        level: the lowest level shown.
    """
    root = logging.getLogger(ROOT)
    root.setLevel(level)
    if any(isinstance(h, _StderrHandler) for h in root.handlers):
        return
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S"))
    root.addHandler(handler)
    # kfp configures the root logger in its executor and local runner: without this, every line would print twice.
    root.propagate = False


def progress(
    items: Iterable[T], total: int | None, description: str, logger: logging.Logger | None = None, every_s: float = 5.0
) -> Iterator[T]:
    """Yields items while showing progress.

    On a terminal this is a rich progress bar; otherwise a log line every
    ``every_s`` seconds and one at the end.

    Args:
        items: the iterable.
        total: number of items, if known.
        description: what is being done.
        logger: where log lines go (default: the ``cvpipe.progress`` logger).
        every_s: seconds between log lines off a terminal.

    Yields:
        The items, unchanged.
    """
    if sys.stderr.isatty():
        from rich.progress import track

        yield from track(items, total=total, description=description, transient=True)
        return
    log = logger or get_logger("progress")
    start = last = time.monotonic()
    n = 0
    for item in items:
        yield item
        n += 1
        now = time.monotonic()
        if now - last >= every_s:
            last = now
            of = f"/{total}" if total else ""
            log.info("%s: %d%s (%.1f/s)", description, n, of, n / max(now - start, 1e-9))
    log.info("%s: %d done in %.1fs", description, n, time.monotonic() - start)
