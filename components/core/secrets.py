"""Secrets: where they come from, and keeping them out of messages.

cvpipe reads every secret (the ML Metadata database password, alert sinks'
webhook URLs, routing keys and tokens, the Label Studio API token) from an
environment variable or a mounted secret file that configuration *names*;
configuration never holds the value. Values are read when they are used,
stripped of surrounding whitespace (a file written by ``echo`` or a
Kubernetes Secret ends with a newline), and refused with a message naming
the variable or file, never the value, when control characters remain.

Messages show URLs through :func:`redact_url` (no password, no secret-looking
query values) and never include an HTTP library's exception text, which
quotes the URL and headers it was given; see :func:`describe_http_error`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = ["clean_secret", "describe_http_error", "network_reason", "read_secret", "redact_url", "scrub"]

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SECRET_QUERY = re.compile(r"(token|key|secret|password|passwd|pwd|sig|signature|auth|credential)", re.IGNORECASE)
REDACTED = "***"


def clean_secret(value: str, source: str) -> str:
    """A secret's value with surrounding whitespace removed, checked to be usable in a header or URL.

    Args:
        value: the raw value.
        source: where it came from, for messages (``environment variable X``, ``file /run/secrets/x``).

    Returns:
        The stripped value.

    Raises:
        ValueError: empty, or control characters (a newline inside, a NUL...) remain.
    """
    stripped = value.strip()
    if not stripped:
        raise ValueError(f"{source} is empty")
    if _CONTROL.search(stripped):
        raise ValueError(f"{source} holds control characters (a line break or similar) inside the value; it must be one line")
    return stripped


def read_secret(env: str | None = None, file: str | os.PathLike[str] | None = None) -> str | None:
    """Reads a secret from a mounted file or an environment variable (the file wins when both are named).

    Args:
        env: environment variable name.
        file: path of a file holding the secret (a mounted Kubernetes Secret, a Docker secret).

    Returns:
        The cleaned value, or None when the variable is unset and no file is named.

    Raises:
        ValueError: the file cannot be read, or the value is empty or malformed.
    """
    if file:
        try:
            raw = Path(file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise ValueError(f"secret file {file} cannot be read ({type(e).__name__})") from None
        return clean_secret(raw, f"secret file {file}")
    if env and os.environ.get(env) is not None:
        return clean_secret(os.environ[env], f"environment variable {env}")
    return None


def redact_url(url: str) -> str:
    """A URL as it may appear in a message: no password, secret-looking query values masked.

    ``mysql://cvpipe:pw@db:3306/mlmd`` becomes ``mysql://cvpipe@db:3306/mlmd``;
    ``https://h/x?token=abc&page=2`` becomes ``https://h/x?token=***&page=2``.

    Args:
        url: any URL (or text that is not one: returned with nothing that looks like credentials).

    Returns:
        The shown form.
    """
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if "@" in netloc:
            userinfo, host = netloc.rsplit("@", 1)
            user = userinfo.split(":", 1)[0]
            netloc = f"{user}@{host}" if user else host
        query = parts.query
        if query:
            pairs = parse_qsl(query, keep_blank_values=True)
            query = urlencode([(k, REDACTED if _SECRET_QUERY.search(k) else v) for k, v in pairs], safe="*")
        if netloc == parts.netloc and query == parts.query:
            return url  # nothing to hide (and sqlite:///x keeps its three slashes)
        return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
    except ValueError:
        return "(a malformed URL)"


def scrub(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` with every occurrence of each secret replaced by ``***``.

    Args:
        text: a message (a server's answer, an error).
        secrets: the values to hide (None and short values of under 4 characters are ignored).

    Returns:
        The cleaned text.
    """
    for s in sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True):
        text = text.replace(s, REDACTED)
    return text


def describe_http_error(error: BaseException) -> str:
    """What went wrong in an HTTP call, without the library's text (which quotes URLs and headers).

    Args:
        error: an exception raised by ``requests`` / ``urllib3`` / ``http.client`` while sending.

    Returns:
        The exception's type and a fixed explanation of what that type means.
    """
    import requests
    import urllib3.exceptions as u3

    name = type(error).__name__
    if isinstance(error, requests.exceptions.MissingSchema):
        why = "the URL has no scheme (http:// or https://)"
    elif isinstance(error, requests.exceptions.InvalidSchema):
        why = "the URL's scheme is not http or https"
    elif isinstance(error, requests.exceptions.InvalidURL | requests.exceptions.URLRequired):
        why = "the URL is malformed"
    elif isinstance(error, requests.exceptions.InvalidHeader):
        why = "a header value is malformed (a token with a line break or leading whitespace?)"
    elif isinstance(error, UnicodeError):
        why = "a URL or header holds characters HTTP cannot carry"
    elif isinstance(error, requests.Timeout | u3.TimeoutError):
        why = "no answer in time"
    elif isinstance(error, requests.ConnectionError | u3.MaxRetryError | u3.NewConnectionError | u3.ProtocolError | ConnectionError):
        found = network_reason(error)
        why = found[0] if found is not None else "the connection failed"
    elif isinstance(error, u3.LocationParseError):
        why = "the URL is malformed"
    elif isinstance(error, requests.TooManyRedirects):
        why = "too many redirects"
    else:
        why = "the request could not be sent"
    return f"{name}: {why}"


def network_reason(error: BaseException) -> tuple[str, bool] | None:
    """Why a request never got an answer, in fixed words found from the exception chain's types, never its text.

    Follows ``__cause__``, ``__context__``, urllib3's ``reason`` and exceptions held in
    ``args`` (requests and google-api-core wrap the socket error in layers).

    Args:
        error: what the HTTP library raised.

    Returns:
        ``(reason, timed_out)``, for example ``("connection refused", False)`` or
        ``("no answer in time", True)``; None when no network failure is in the chain.
    """
    import socket
    import ssl

    import requests
    import urllib3.exceptions as u3

    seen: set[int] = set()
    todo: list[BaseException] = [error]
    generic = False
    while todo:
        e = todo.pop(0)
        if id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, ConnectionRefusedError):
            return "connection refused", False
        if isinstance(e, socket.gaierror):
            return "the host name could not be resolved", False
        if isinstance(e, ConnectionResetError):
            return "the connection was reset", False
        if isinstance(e, ssl.SSLError):
            return "the TLS handshake failed", False
        if isinstance(e, ConnectionError | requests.ConnectionError | u3.MaxRetryError | u3.NewConnectionError | u3.ProtocolError):
            generic = True  # (urllib3's NewConnectionError is a ConnectTimeoutError by descent: its cause says why)
        elif isinstance(e, TimeoutError | requests.Timeout | u3.TimeoutError):
            return "no answer in time", True
        todo.extend(x for x in (e.__cause__, e.__context__, getattr(e, "reason", None)) if isinstance(x, BaseException))
        todo.extend(x for x in getattr(e, "args", ()) if isinstance(x, BaseException))
    return ("the connection failed", False) if generic else None
