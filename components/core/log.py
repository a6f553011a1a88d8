"""Per-step log lines and progress bars.

Components log through :func:`get_logger` (``HH:MM:SS component: message``)
so a pipeline run reads as one timeline; long loops wrap their iterable in
:func:`progress`, a rich progress bar on a terminal and periodic log lines
elsewhere (KFP pods, CI), never a silent wait.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

__all__ = ["get_logger", "progress"]

T = TypeVar("T")
_configured = False


def get_logger(component: str) -> logging.Logger:
    """A logger that prints ``HH:MM:SS component: message`` to stderr.

    Args:
        component: the component or tool name.

    Returns:
        The logger.
    """
    global _configured
    if not _configured:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S"))
        root = logging.getLogger("cvpipe")
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        root.propagate = False
        _configured = True
    return logging.getLogger(f"cvpipe.{component}")


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
