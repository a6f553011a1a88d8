"""What every ``cvpipe`` command shares: loading a spec, reporting errors, options.

* :func:`load_spec_arg` is the one way a command loads the spec it was given;
* :func:`friendly` is the one way a command reports cvpipe's own errors: one
  clear message (a :class:`~components.core.errors.SpecError` with every
  problem and its key path), exit 1, never a stack trace (``CVPIPE_DEBUG=1``
  re-raises, to see it);
* :class:`OneLineUsageError` is a usage error printed as one line (exit 2);
  :func:`until_option` and :func:`check_until` use it for ``--until`` names
  that are not steps (the training pipeline's steps depend on the spec's
  ``steps``, so its commands check ``--until`` once the spec is loaded).

Imports only click, so the CLI's start-up stays fast.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable, Sequence
from typing import IO, TYPE_CHECKING, Any, TypeVar

import click

from components.core.errors import CvpipeError, SpecError

if TYPE_CHECKING:
    from components.core.spec import PipelineSpec

__all__ = [
    "OneLineUsageError",
    "apply_options",
    "check_until",
    "echo_spec_error",
    "friendly",
    "load_spec_arg",
    "until_option",
]

F = TypeVar("F", bound=Callable[..., Any])


def load_spec_arg(path: str) -> PipelineSpec:
    """Loads the spec a command was given (raises :class:`SpecError`, which :func:`friendly` prints).

    Args:
        path: the spec file.

    Returns:
        The parsed spec.
    """
    from components.core.spec import load_spec

    return load_spec(path)


def echo_spec_error(e: SpecError, head: str) -> None:
    """Prints a spec's problems to stderr: a head line, then one line per problem with its key path.

    Args:
        e: the error.
        head: what the first line starts with (``error: FILE`` or ``FILE``).
    """
    click.echo(f"{head}: {len(e.problems)} problem(s)", err=True)
    for path, msg in e.problems:
        click.echo(f"  {path}: {msg}" if path else f"  {msg}", err=True)


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
                echo_spec_error(e, f"error: {e.source or 'spec'}")
            else:
                click.echo(f"error: {e}", err=True)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


class OneLineUsageError(click.UsageError):
    """A usage error printed as one line, ``error: MESSAGE`` (exit status 2, as click's own)."""

    def show(self, file: IO[Any] | None = None) -> None:
        """Prints the message.

        Args:
            file: where to print (default: stderr).
        """
        click.echo(f"error: {self.format_message()}", err=file is None, file=file)


def check_until(until: str | None, steps: Sequence[str]) -> None:
    """Refuses an ``--until`` that is not one of ``steps`` with a :class:`OneLineUsageError` naming them.

    Args:
        until: the option's value (None: not given).
        steps: the pipeline's step names, in order.

    Raises:
        OneLineUsageError: ``until`` is not a step.
    """
    if until is not None and until not in steps:
        raise OneLineUsageError(f"--until: unknown step {until!r}; steps are {', '.join(steps)}", click.get_current_context(silent=True))


def until_option(steps: Sequence[str] | None, help: str | None = None) -> Callable[[F], F]:
    """A ``--until STEP`` option accepting only ``steps`` (anything else is a :class:`OneLineUsageError`).

    Args:
        steps: the pipeline's step names, in order; None when they depend on the spec (the
            training pipeline with the spec's own ``steps``): the command then calls
            :func:`check_until` once it has loaded the spec.
        help: the option's help (default: "Last step (a, b, ...).").

    Returns:
        The click decorator.
    """

    def check(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
        if steps is not None:
            check_until(value, steps)
        return value

    return click.option("--until", default=None, callback=check, help=help or f"Last step ({', '.join(steps or ())}).")


def apply_options(options: Sequence[Callable[[F], F]]) -> Callable[[F], F]:
    """One decorator applying several click options, in the order listed.

    Args:
        options: click option decorators.

    Returns:
        The decorator.
    """

    def apply(fn: F) -> F:
        for opt in reversed(options):
            fn = opt(fn)
        return fn

    return apply
