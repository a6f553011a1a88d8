"""The alert component: one alert model, sinks, and a dispatcher that deduplicates and never loses an alert.

Modules: :mod:`.model` (:class:`Alert`), :mod:`.config` (sinks, retries,
cooldown; secrets only by environment-variable name), :mod:`.http` (POST
with retries on 429/5xx/connection errors only), :mod:`.sinks`
(Alertmanager, Slack, PagerDuty) and :mod:`.dispatcher` (the JSON-lines
alert log, deduplication, cooldown, resolve and redelivery). Importing this
package does not import kfp.
"""

from .config import AlertConfig, AlertmanagerSinkConfig, PagerDutySinkConfig, RetryConfig, SinkConfig, SlackSinkConfig
from .dispatcher import AlertDispatcher, AlertLog, DispatchResult, PendingDelivery
from .model import Alert, AlertStatus, Severity, TimeWindow, utc_now
from .sinks import (
    AlertmanagerSink,
    AlertSink,
    PagerDutySink,
    SlackSink,
    alertmanager_payload,
    build_sinks,
    pagerduty_payload,
    slack_payload,
)

__all__ = [
    "Alert",
    "AlertConfig",
    "AlertDispatcher",
    "AlertLog",
    "AlertSink",
    "AlertStatus",
    "AlertmanagerSink",
    "AlertmanagerSinkConfig",
    "DispatchResult",
    "PagerDutySink",
    "PagerDutySinkConfig",
    "PendingDelivery",
    "RetryConfig",
    "Severity",
    "SinkConfig",
    "SlackSink",
    "SlackSinkConfig",
    "TimeWindow",
    "alertmanager_payload",
    "build_sinks",
    "pagerduty_payload",
    "slack_payload",
    "utc_now",
]
