"""Alerting configuration (the spec's ``monitoring.alerts``): where alerts go, how hard to try, how often to repeat.

Secrets never live in a spec or config file. A sink's config names the
*environment variable* that holds its secret (Slack's webhook URL, PagerDuty's
routing key, an Alertmanager bearer token); a config that carries a secret
itself is rejected with a message saying which variable to use instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "AlertConfig",
    "AlertmanagerSinkConfig",
    "PagerDutySinkConfig",
    "RetryConfig",
    "SinkConfig",
    "SlackSinkConfig",
]


class RetryConfig(BaseModel):
    """Retries of one delivery (429, 5xx and connection errors only).

    Attributes:
        attempts: tries in all, the first included.
        backoff_s: wait before the second try; doubles each time.
        max_backoff_s: longest wait (also caps a server's Retry-After).
        timeout_s: connect and read timeout of one request.
    """

    model_config = ConfigDict(extra="forbid")

    attempts: int = Field(5, ge=1, le=20)
    backoff_s: float = Field(1.0, ge=0)
    max_backoff_s: float = Field(30.0, ge=0)
    timeout_s: float = Field(10.0, gt=0)


_SECRET_KEYS = {
    "webhook_url": "webhook_url_env",
    "routing_key": "routing_key_env",
    "token": "token_env",
    "integration_key": "routing_key_env",
}


class _Sink(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = ""
    retry: RetryConfig = Field(default_factory=RetryConfig)

    @model_validator(mode="before")
    @classmethod
    def _no_secrets(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key, env_key in _SECRET_KEYS.items():
                if key in data:
                    raise ValueError(
                        f"{key}: secrets are not read from configuration; put it in an environment variable and name that variable in {env_key}"
                    )
        return data

    @model_validator(mode="after")
    def _default_name(self) -> _Sink:
        if not self.name:
            self.name = str(getattr(self, "type", "sink"))
        return self


class AlertmanagerSinkConfig(_Sink):
    """Prometheus Alertmanager (``POST {url}/api/v2/alerts``).

    Attributes:
        type: ``alertmanager``.
        name: name of this sink in the alert log (default: the type).
        url: Alertmanager's base URL.
        token_env: environment variable holding a bearer token, if Alertmanager sits behind auth.
        retry: retry policy.
    """

    type: Literal["alertmanager"] = "alertmanager"
    url: str = "http://localhost:9093"
    token_env: str | None = None


class SlackSinkConfig(_Sink):
    """A Slack incoming webhook.

    Attributes:
        type: ``slack``.
        name: name of this sink in the alert log (default: the type).
        webhook_url_env: environment variable holding the webhook URL (the URL is the secret).
        retry: retry policy.
    """

    type: Literal["slack"] = "slack"
    webhook_url_env: str = "CVPIPE_SLACK_WEBHOOK_URL"


class PagerDutySinkConfig(_Sink):
    """PagerDuty Events API v2.

    Attributes:
        type: ``pagerduty``.
        name: name of this sink in the alert log (default: the type).
        url: the enqueue endpoint.
        routing_key_env: environment variable holding the integration's routing key.
        retry: retry policy.
    """

    type: Literal["pagerduty"] = "pagerduty"
    url: str = "https://events.pagerduty.com/v2/enqueue"
    routing_key_env: str = "CVPIPE_PAGERDUTY_ROUTING_KEY"


SinkConfig = Annotated[AlertmanagerSinkConfig | SlackSinkConfig | PagerDutySinkConfig, Field(discriminator="type")]
"""Any sink's configuration, told apart by ``type``."""


class AlertConfig(BaseModel):
    """The dispatcher's configuration.

    Attributes:
        log: the JSON-lines alert log (always written: the default sink and the record of deliveries).
        state_file: deduplication state (default: ``<log stem>.state.json`` beside the log).
        cooldown_s: an alert already firing is not sent again for this long (a higher severity is).
        sinks: where alerts are delivered besides the log.
        console_url: the console's base URL; an incident links ``<console_url>/incidents/<id>``
            (without it, alerts link the report's file path).
    """

    model_config = ConfigDict(extra="forbid")

    log: str = "alerts/alerts.jsonl"
    state_file: str | None = None
    cooldown_s: float = Field(3600.0, ge=0)
    sinks: list[SinkConfig] = Field(default_factory=list)
    console_url: str | None = None

    @model_validator(mode="after")
    def _unique_names(self) -> AlertConfig:
        names = [s.name for s in self.sinks]
        dupes = sorted({n for n in names if names.count(n) > 1} | ({"log"} & set(names)))
        if dupes:
            raise ValueError(f"sink names must be unique and not 'log': {dupes}")
        return self

    @property
    def log_path(self) -> Path:
        """The alert log's path."""
        return Path(self.log)

    @property
    def state_path(self) -> Path:
        """The state file's path."""
        if self.state_file:
            return Path(self.state_file)
        p = self.log_path
        return p.with_name(f"{p.stem}.state.json")
