"""Alerting configuration: defined in :mod:`components.core.alert_config` (the spec owns it); re-exported here."""

from __future__ import annotations

from components.core.alert_config import (
    AlertConfig,
    AlertmanagerSinkConfig,
    PagerDutySinkConfig,
    RetryConfig,
    SinkConfig,
    SlackSinkConfig,
)

__all__ = [
    "AlertConfig",
    "AlertmanagerSinkConfig",
    "PagerDutySinkConfig",
    "RetryConfig",
    "SinkConfig",
    "SlackSinkConfig",
]
