"""What every ``cvpipe`` command shares: errors as clear messages, not stack traces.

Imports only click, so command modules that use it keep the CLI's start-up fast.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from .errors import CvpipeError, SpecError

__all__ = ["friendly"]

F = TypeVar("F", bound=Callable[..., Any])


def friendly(fn: F) -> F:
    """Prints cvpipe's own errors as one clear message and exits 1.

    A :class:`~components.core.errors.SpecError` lists every problem with its
    key path. ``CVPIPE_DEBUG=1`` re-raises, to see the trace.

    Args:
        fn: the click command callback.

    Returns:
        The wrapped callback.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except CvpipeError as e:
            if os.environ.get("CVPIPE_DEBUG"):
                raise
            if isinstance(e, SpecError):
                click.echo(f"error: {e.source or 'spec'}: {len(e.problems)} problem(s)", err=True)
                for path, msg in e.problems:
                    click.echo(f"  {path}: {msg}" if path else f"  {msg}", err=True)
            else:
                click.echo(f"error: {e}", err=True)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]
