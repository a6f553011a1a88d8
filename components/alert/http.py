"""POSTing JSON to an alert receiver, with retries where a retry can help.

Retried (exponential backoff via tenacity; a ``Retry-After`` header is
honoured up to ``max_backoff_s``): HTTP 429, every 5xx, connection errors and
timeouts. Not retried: every other 4xx, which will not get better by itself
(a malformed payload, a revoked webhook, a wrong routing key); it raises
:class:`~components.core.errors.AlertError` at once, naming the sink and the
status. A request that cannot even be made (a URL without a scheme, a token
with a line break) is not retried either.

Every error is an :class:`~components.core.errors.AlertError`: the HTTP
library's own exceptions are caught here and never quoted, because their text
holds the URL and headers (Slack's webhook URL *is* the secret). Messages
show ``target`` (or the URL with its credentials removed) and the start of
the response body, with every secret the caller names replaced by ``***``.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import requests
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt

from components.core.errors import AlertError
from components.core.secrets import describe_http_error, redact_url, scrub

from .config import RetryConfig

__all__ = ["RETRY_STATUSES", "post_json"]

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504}) | frozenset(range(505, 600))
"""HTTP statuses worth another try."""


class _Transient(Exception):
    """A failure a later try may not have (429, 5xx, connection trouble)."""

    def __init__(self, message: str, status: int | None = None, retry_after: float | None = None):
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _body(resp: requests.Response, secrets: Sequence[str]) -> str:
    text = scrub(resp.text, secrets).strip().replace("\n", " ")
    return text[:300] + ("..." if len(text) > 300 else "")


def post_json(
    sink: str,
    url: str,
    payload: Any,
    retry: RetryConfig,
    *,
    target: str | None = None,
    headers: Mapping[str, str] | None = None,
    session: requests.Session | None = None,
    sleep: Callable[[float], None] = time.sleep,
    secrets: Sequence[str] = (),
) -> requests.Response:
    """POSTs ``payload`` as JSON, retrying transient failures.

    Args:
        sink: the sink's name (for messages).
        url: where to POST.
        payload: the JSON body.
        retry: attempts, backoff and timeout.
        target: how to show the destination in messages (default: ``url``; pass something
            else when the URL is a secret, as Slack's webhook URL is).
        headers: extra headers.
        session: HTTP session (default: a new one per call).
        sleep: how to wait between tries.
        secrets: values never to show (a routing key in the payload, a token); the URL and
            header values are hidden as well.

    Returns:
        The successful (2xx) response.

    Raises:
        AlertError: the request cannot be made, a non-retryable status, or still failing after
            ``retry.attempts`` tries.
    """
    where = target or redact_url(url)
    hidden = [*secrets, url, *(headers or {}).values(), *(v.split(" ", 1)[-1] for v in (headers or {}).values())]
    if target:  # the URL is the secret: a server quoting just its path must not show it either
        hidden.append("/" + url.split("://", 1)[-1].partition("/")[2])
    http = session or requests.Session()
    all_headers = {"Content-Type": "application/json", "User-Agent": "cvpipe-alert", **(headers or {})}

    def attempt() -> requests.Response:
        failure = None
        try:
            resp = http.post(url, json=payload, headers=all_headers, timeout=retry.timeout_s, allow_redirects=False)
        except Exception as e:  # the library's text quotes the URL and headers: keep only what kind of failure it was
            failure = (describe_http_error(e), isinstance(e, requests.ConnectionError | requests.Timeout))
        # raised outside the except block, so the library's exception is not even kept as __context__
        if failure is not None:
            what, transient = failure
            if transient:
                raise _Transient(f"{what} talking to {where}")
            raise AlertError(f"{sink}: cannot send to {where}: {what} (not retried)", sink=sink)
        if 200 <= resp.status_code < 300:
            return resp
        if resp.status_code in RETRY_STATUSES:
            raise _Transient(
                f"HTTP {resp.status_code} from {where}: {_body(resp, hidden)}",
                resp.status_code,
                _retry_after(resp.headers.get("Retry-After")),
            )
        raise AlertError(
            f"{sink}: HTTP {resp.status_code} from {where}: {_body(resp, hidden)} (not retried: the request itself was refused)",
            sink=sink,
            status=resp.status_code,
        )

    def wait(state: RetryCallState) -> float:
        exp = min(retry.max_backoff_s, retry.backoff_s * (2 ** (state.attempt_number - 1)))
        exc = state.outcome.exception() if state.outcome is not None else None
        hinted = exc.retry_after if isinstance(exc, _Transient) and exc.retry_after is not None else 0.0
        return max(exp, min(hinted, retry.max_backoff_s))

    retrying = Retrying(
        stop=stop_after_attempt(retry.attempts),
        wait=wait,
        retry=retry_if_exception_type(_Transient),
        sleep=sleep,
        reraise=True,
    )
    try:
        return retrying(attempt)
    except _Transient as e:
        raise AlertError(f"{sink}: gave up after {retry.attempts} attempt(s): {e}", sink=sink, status=e.status, transient=True) from None
    finally:
        if session is None:
            http.close()
