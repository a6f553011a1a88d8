"""The alert component: one alert model, sinks, and a dispatcher that deduplicates and never loses an alert.

Modules: :mod:`.model` (:class:`Alert`), :mod:`.incident` (findings grouped
into one incident per model and cause, in words, with links), :mod:`.config`
(sinks, retries, cooldown, console URL; secrets only by environment-variable
name), :mod:`.http` (POST with retries on 429/5xx/connection errors only),
:mod:`.sinks` (Alertmanager, Slack, PagerDuty), :mod:`.dispatcher` (the
JSON-lines incident log, deduplication, cooldown, resolve, acknowledgements,
silences and redelivery), :mod:`.silence` (matchers, Alertmanager's silences
API) and :mod:`.announce` (follow-ups and alias announcements). Importing this
package does not import kfp.
"""

from components.core.clock import utc_now

from .announce import announce_alias, follow_up
from .config import AlertConfig, AlertmanagerSinkConfig, PagerDutySinkConfig, RetryConfig, SinkConfig, SlackSinkConfig
from .dispatcher import AlertDispatcher, AlertLog, DispatchResult, Incident, PendingDelivery
from .incident import group_incidents, incident_text
from .model import Alert, AlertStatus, Severity, TimeWindow
from .silence import Matcher, Silence, parse_matcher
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
    "Incident",
    "Matcher",
    "PagerDutySink",
    "PagerDutySinkConfig",
    "PendingDelivery",
    "RetryConfig",
    "Severity",
    "Silence",
    "SinkConfig",
    "SlackSink",
    "SlackSinkConfig",
    "TimeWindow",
    "alertmanager_payload",
    "announce_alias",
    "build_sinks",
    "follow_up",
    "group_incidents",
    "incident_text",
    "pagerduty_payload",
    "parse_matcher",
    "slack_payload",
    "utc_now",
]
