"""Time in cvpipe: timezone-aware UTC everywhere (alerts, the prediction log, windows, reports)."""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["utc", "utc_now"]


def utc_now() -> datetime:
    """The current time, timezone-aware UTC, whole milliseconds.

    Returns:
        The time.
    """
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def utc(value: datetime) -> datetime:
    """A timezone-aware UTC datetime (a naive one is taken to be UTC already).

    Args:
        value: the datetime.

    Returns:
        The same instant in UTC.
    """
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
