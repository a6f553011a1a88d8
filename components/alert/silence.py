"""Silences: matchers over an incident's labels, a time span, an author and a comment.

A silence is written to the incident log (``{"record": "silence", ...}``;
``{"record": "unsilence", ...}`` expires it early). While it is active the
dispatcher still logs matching incidents but sends them only to Alertmanager
sinks, which hold the same silence: with Alertmanager configured, silences are
created and expired through its API v2 (``POST /api/v2/silences``,
``DELETE /api/v2/silence/{id}``), so they show in its UI and in ``amtool``, and
Alertmanager marks the incidents suppressed itself.

Matchers use Alertmanager's syntax: ``name=value``, ``name!=value``,
``name=~regex``, ``name!~regex`` (regexes are anchored, as Alertmanager's are).
The labels matched are those Alertmanager receives
(:func:`components.alert.sinks.alertmanager_labels`): ``alertname``,
``severity``, ``model``, ``cause``, ``dedup_key``, ``pipeline``...
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import requests
from pydantic import BaseModel, ConfigDict, Field, field_validator

from components.core.clock import utc_now
from components.core.errors import AlertError
from components.core.secrets import describe_http_error, redact_url, scrub

from .config import AlertmanagerSinkConfig
from .http import post_json
from .model import _aware

__all__ = ["Matcher", "Silence", "expire_in_alertmanager", "parse_matcher", "silence_in_alertmanager"]

_MATCHER = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*(.*?)\s*$")


class Matcher(BaseModel):
    """One label matcher (Alertmanager's ``matchers[]`` item).

    Attributes:
        name: the label.
        value: the value or regular expression.
        is_regex: ``value`` is a regular expression (anchored).
        is_equal: match when equal (False: when not equal).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    value: str
    is_regex: bool = False
    is_equal: bool = True

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether a label set matches (a missing label is the empty string, as in Alertmanager).

        Args:
            labels: the labels.

        Returns:
            True on a match.
        """
        v = labels.get(self.name, "")
        hit = re.fullmatch(self.value, v) is not None if self.is_regex else v == self.value
        return hit == self.is_equal

    def __str__(self) -> str:
        op = ("=~" if self.is_equal else "!~") if self.is_regex else ("=" if self.is_equal else "!=")
        return f"{self.name}{op}{self.value}"


def parse_matcher(text: str) -> Matcher:
    """Reads ``name=value``, ``name!=value``, ``name=~re`` or ``name!~re`` (quotes around the value are dropped).

    Args:
        text: the matcher.

    Returns:
        The matcher.

    Raises:
        AlertError: malformed, or an invalid regular expression.
    """
    m = _MATCHER.match(text)
    if not m:
        raise AlertError(f"matcher {text!r}: expected name=value, name!=value, name=~regex or name!~regex")
    name, op, value = m.groups()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        value = value[1:-1]
    regex = op in ("=~", "!~")
    if regex:
        try:
            re.compile(value)
        except re.error as e:
            raise AlertError(f"matcher {text!r}: invalid regular expression: {e}") from None
    return Matcher(name=name, value=value, is_regex=regex, is_equal=op in ("=", "=~"))


class Silence(BaseModel):
    """A silence.

    Attributes:
        id: cvpipe's id.
        matchers: every matcher must match.
        starts_at: when it starts.
        ends_at: when it ends (an unsilence moves it to that moment).
        created_by: its author.
        comment: why.
        alertmanager_ids: sink name -> the silence's id in that Alertmanager.
    """

    model_config = ConfigDict(extra="forbid")

    id: str = Field(default_factory=lambda: uuid.uuid4().hex[:12])
    matchers: list[Matcher] = Field(min_length=1)
    starts_at: datetime = Field(default_factory=utc_now)
    ends_at: datetime
    created_by: str = Field(min_length=1)
    comment: str = Field(min_length=1)
    alertmanager_ids: dict[str, str] = Field(default_factory=dict)

    @field_validator("starts_at", "ends_at")
    @classmethod
    def _utc(cls, v: datetime) -> datetime:
        return _aware(v)

    @classmethod
    def create(cls, matchers: list[Matcher], duration: timedelta, created_by: str, comment: str, now: datetime | None = None) -> Silence:
        """A silence starting now.

        Args:
            matchers: the matchers.
            duration: how long it lasts.
            created_by: its author.
            comment: why.
            now: the current time.

        Returns:
            The silence.
        """
        start = now or utc_now()
        return cls(matchers=matchers, starts_at=start, ends_at=start + duration, created_by=created_by, comment=comment)

    def active(self, now: datetime) -> bool:
        """Whether it silences at ``now``."""
        return self.starts_at <= now < self.ends_at

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether every matcher matches a label set."""
        return all(m.matches(labels) for m in self.matchers)


def _rfc3339(t: datetime) -> str:
    from .sinks import rfc3339

    return rfc3339(t)


def _headers(config: AlertmanagerSinkConfig) -> tuple[dict[str, str], str]:
    from .sinks import _secret

    token = _secret(config.name, config.token_env) if config.token_env else ""
    return ({"Authorization": f"Bearer {token}"} if token else {}), token


def silence_in_alertmanager(config: AlertmanagerSinkConfig, silence: Silence, session: requests.Session | None = None) -> str:
    """Creates the silence in an Alertmanager (``POST /api/v2/silences``).

    Args:
        config: the Alertmanager sink.
        silence: the silence.
        session: HTTP session to reuse.

    Returns:
        Alertmanager's silence id.

    Raises:
        AlertError: refused or unreachable.
    """
    body: dict[str, Any] = {
        "matchers": [{"name": m.name, "value": m.value, "isRegex": m.is_regex, "isEqual": m.is_equal} for m in silence.matchers],
        "startsAt": _rfc3339(silence.starts_at),
        "endsAt": _rfc3339(silence.ends_at),
        "createdBy": silence.created_by,
        "comment": silence.comment,
    }
    url = config.url.rstrip("/") + "/api/v2/silences"
    headers, token = _headers(config)
    resp = post_json(config.name, url, body, config.retry, headers=headers, session=session, secrets=[token])
    try:
        return str(resp.json()["silenceID"])
    except (ValueError, KeyError, TypeError):
        raise AlertError(f"{config.name}: {url} answered without a silenceID", sink=config.name) from None


def expire_in_alertmanager(config: AlertmanagerSinkConfig, silence_id: str, session: requests.Session | None = None) -> None:
    """Expires a silence in an Alertmanager (``DELETE /api/v2/silence/{id}``); one already gone is fine.

    Args:
        config: the Alertmanager sink.
        silence_id: Alertmanager's id.
        session: HTTP session to reuse.

    Raises:
        AlertError: refused or unreachable.
    """
    url = f"{config.url.rstrip('/')}/api/v2/silence/{silence_id}"
    where = redact_url(url)
    headers, token = _headers(config)
    http = session or requests.Session()
    failure = None
    try:
        resp = http.delete(url, headers=headers, timeout=config.retry.timeout_s, allow_redirects=False)
    except requests.RequestException as e:  # its text may quote headers: report only its kind
        failure = describe_http_error(e)
    finally:
        if session is None:
            http.close()
    if failure is not None:
        raise AlertError(f"{config.name}: {failure} talking to {where}", sink=config.name, transient=True)
    if resp.status_code == 404 or 200 <= resp.status_code < 300:
        return
    raise AlertError(
        f"{config.name}: HTTP {resp.status_code} from {where}: {scrub(resp.text[:200], [token])}", sink=config.name, status=resp.status_code
    )
