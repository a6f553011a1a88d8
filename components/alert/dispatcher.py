"""The alert dispatcher: deduplication, cooldown, resolve, and delivery that never loses an alert.

Like Alertmanager, the dispatcher keeps one state per ``dedup_key``
(``<log stem>.state.json`` beside the log, written atomically):

- a **firing** alert whose key is not firing is a new incident: it is sent;
- a firing alert whose key already fires is a duplicate and is suppressed,
  unless its severity is higher (sent as an escalation) or ``cooldown_s`` has
  passed since the last notification (sent as a reminder);
- a **resolved** alert is sent only when its key is firing (the condition
  cleared), and the key stops firing.

The JSON-lines alert log is the default sink and the record of every
delivery. An accepted alert is appended *before* any sink is tried (write
ahead), then one ``delivery`` line per sink says ``delivered`` or
``undelivered`` with the error. Whatever is still undelivered (a sink that
failed, or a run killed mid-way) is retried at the start of the next
:meth:`AlertDispatcher.dispatch`; when a newer alert with the same key has
been logged since, the older one is marked ``superseded`` instead, so a
receiver never sees a stale trigger after its resolve. Delivery is therefore
at least once; receivers deduplicate by the key (PagerDuty's ``dedup_key``,
Alertmanager's label set).

Within one run, a sink whose retries ran out on a transient failure is not
tried again for the remaining alerts of that run (they stay undelivered),
so a dead endpoint costs one backoff sequence, not one per alert.

Log records::

    {"record": "alert", "id": ..., "logged_at": ..., "reason": "new|repeat|escalation|resolve",
     "sinks": [...], "alert": {...}}
    {"record": "delivery", "id": ..., "logged_at": ..., "sink": ..., "status": "delivered|undelivered|superseded",
     "error": ...}

A lock file beside the log (``fcntl.flock``) serialises dispatchers of one log.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from components.core.errors import AlertError
from components.core.io import atomic_write_json, read_json
from components.core.log import get_logger

from .config import AlertConfig
from .model import Alert, utc_now
from .sinks import AlertSink, build_sinks

__all__ = ["AlertDispatcher", "AlertLog", "DispatchResult", "PendingDelivery"]

_log = get_logger("alert")


@dataclass(frozen=True)
class PendingDelivery:
    """An alert not yet delivered to one sink.

    Attributes:
        alert_id: the alert record's id in the log.
        alert: the alert.
        sink: the sink's name.
        error: the last error (``not attempted`` when the run stopped before trying).
    """

    alert_id: str
    alert: Alert
    sink: str
    error: str


@dataclass
class DispatchResult:
    """What one :meth:`AlertDispatcher.dispatch` did.

    Attributes:
        notified: alerts accepted and sent to the sinks (new, reminders, escalations, resolves).
        suppressed: alerts dropped as duplicates within the cooldown, or resolves of nothing firing.
        redelivered: ``(alert id, sink)`` delivered now after failing earlier.
        superseded: ``(alert id, sink)`` given up because a newer alert with the same key was logged.
        undelivered: alert id -> sink -> error, for everything still undelivered after this run.
    """

    notified: list[Alert] = field(default_factory=list)
    suppressed: list[Alert] = field(default_factory=list)
    redelivered: list[tuple[str, str]] = field(default_factory=list)
    superseded: list[tuple[str, str]] = field(default_factory=list)
    undelivered: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def all_delivered(self) -> bool:
        """True when nothing is left undelivered."""
        return not self.undelivered


def _ts(t: datetime) -> str:
    return t.isoformat(timespec="milliseconds")


class AlertLog:
    """The append-only JSON-lines alert log.

    Args:
        path: the log file (created with its directory on first append).
    """

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)

    def append(self, record: dict[str, Any]) -> None:
        """Appends one record and syncs it to disk.

        Args:
            record: a JSON-serialisable mapping.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps(record, sort_keys=False, separators=(",", ":")) + "\n"
        with open(self.path, "a+b") as f:
            if f.tell() > 0:
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":  # a torn last line from a killed writer: do not glue onto it
                    line = "\n" + line
            f.write(line.encode("utf-8"))
            f.flush()
            os.fsync(f.fileno())

    def records(self) -> Iterator[dict[str, Any]]:
        """The log's records, oldest first (a torn last line from a killed writer is skipped).

        Yields:
            Each record.
        """
        if not self.path.exists():
            return
        with open(self.path, encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    _log.warning("%s:%d: unreadable alert-log line skipped", self.path, number)
                    continue
                if isinstance(rec, dict):
                    yield rec

    def alerts(self) -> list[tuple[str, Alert]]:
        """Every logged alert with its id, oldest first.

        Returns:
            ``(id, alert)`` pairs.
        """
        out = []
        for rec in self.records():
            if rec.get("record") == "alert":
                with contextlib.suppress(ValidationError):
                    out.append((str(rec["id"]), Alert.model_validate(rec["alert"])))
        return out

    def pending(self) -> tuple[list[PendingDelivery], list[PendingDelivery]]:
        """Undelivered ``(alert, sink)`` pairs, split into still due and superseded.

        A pair is superseded when a later alert with the same dedup key was logged for the same sink.

        Returns:
            ``(due, superseded)``, each oldest first.
        """
        alerts: dict[str, tuple[Alert, list[str]]] = {}
        status: dict[tuple[str, str], tuple[str, str]] = {}
        latest: dict[tuple[str, str], str] = {}
        for rec in self.records():
            kind = rec.get("record")
            if kind == "alert":
                try:
                    alert = Alert.model_validate(rec["alert"])
                except (KeyError, ValidationError):
                    _log.warning("%s: alert record %s cannot be read; skipped", self.path, rec.get("id"))
                    continue
                aid = str(rec["id"])
                sinks = [str(s) for s in rec.get("sinks", [])]
                alerts[aid] = (alert, sinks)
                for s in sinks:
                    status[(aid, s)] = ("undelivered", "not attempted")
                    latest[(alert.dedup_key, s)] = aid
            elif kind == "delivery":
                status[(str(rec.get("id")), str(rec.get("sink")))] = (str(rec.get("status")), str(rec.get("error") or ""))
        due: list[PendingDelivery] = []
        superseded: list[PendingDelivery] = []
        for aid, (alert, sinks) in alerts.items():
            for s in sinks:
                st, err = status[(aid, s)]
                if st != "undelivered":
                    continue
                p = PendingDelivery(aid, alert, s, err)
                (due if latest[(alert.dedup_key, s)] == aid else superseded).append(p)
        return due, superseded


class AlertDispatcher:
    """Deduplicates alerts, rate-limits repeats, resolves, and delivers to every sink.

    Args:
        config: log path, state file, cooldown and sink configurations.
        sinks: the sinks (default: built from ``config.sinks``).
    """

    def __init__(self, config: AlertConfig | None = None, sinks: Sequence[AlertSink] | None = None):
        self.config = config or AlertConfig()
        built = list(sinks) if sinks is not None else build_sinks(self.config.sinks)
        self.sinks: dict[str, AlertSink] = {s.name: s for s in built}
        self.log = AlertLog(self.config.log_path)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        lock = self.config.log_path.with_name(self.config.log_path.name + ".lock")
        lock.parent.mkdir(parents=True, exist_ok=True)
        with open(lock, "a") as f:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)

    def state(self) -> dict[str, dict[str, Any]]:
        """The deduplication state: dedup key -> status, severity, times, suppressed count.

        Returns:
            The state (empty before the first dispatch).
        """
        p = self.config.state_path
        if not p.exists():
            return {}
        try:
            data = read_json(p)
        except (OSError, ValueError) as e:
            raise AlertError(f"{p}: alert state file cannot be read ({e}); move it away to start afresh") from None
        return dict(data.get("keys", {}))

    def _save(self, state: dict[str, dict[str, Any]]) -> None:
        atomic_write_json(self.config.state_path, {"format_version": 1, "keys": state})

    def _reason(self, alert: Alert, entry: dict[str, Any] | None, now: datetime) -> str | None:
        firing = entry is not None and entry.get("status") == "firing"
        if alert.status == "resolved":
            return "resolve" if firing else None
        if not firing or entry is None:
            return "new"
        if alert.severity_rank > int(entry.get("severity_rank", 0)):
            return "escalation"
        last = datetime.fromisoformat(str(entry["last_notified_at"]))
        if (now - last).total_seconds() >= self.config.cooldown_s:
            return "repeat"
        return None

    def _deliver(self, alert_id: str, alert: Alert, sink_name: str, now: datetime, failed: dict[str, str], result: DispatchResult) -> bool:
        sink = self.sinks.get(sink_name)
        if sink is None:
            error = f"{sink_name}: sink is no longer configured"
        elif sink_name in failed:
            error = f"{sink_name}: skipped, the sink failed earlier in this run ({failed[sink_name]})"
        else:
            try:
                sink.send(alert)
            except AlertError as e:
                error = str(e)
                if e.transient or e.status is None:
                    failed[sink_name] = error
            else:
                self.log.append({"record": "delivery", "id": alert_id, "logged_at": _ts(now), "sink": sink_name, "status": "delivered"})
                return True
        if sink is not None:
            self.log.append(
                {"record": "delivery", "id": alert_id, "logged_at": _ts(now), "sink": sink_name, "status": "undelivered", "error": error}
            )
        _log.warning("alert %s (%s) not delivered to %s: %s", alert_id, alert.dedup_key, sink_name, error)
        result.undelivered.setdefault(alert_id, {})[sink_name] = error
        return False

    def pending(self) -> list[PendingDelivery]:
        """Deliveries still due (what the next dispatch retries first).

        Returns:
            The pending deliveries, oldest first.
        """
        return self.log.pending()[0]

    def dispatch(self, alerts: Iterable[Alert] = (), now: datetime | None = None) -> DispatchResult:
        """Retries earlier undelivered alerts, then deduplicates and sends these ones.

        Args:
            alerts: firing and resolved alerts of this evaluation (may be empty: then it only redelivers).
            now: the current time (default: now; tests pass a fixed clock).

        Returns:
            What was sent, suppressed, redelivered and is still undelivered.
        """
        now = now or utc_now()
        result = DispatchResult()
        failed: dict[str, str] = {}
        with self._locked():
            due, superseded = self.log.pending()
            for p in superseded:
                self.log.append({"record": "delivery", "id": p.alert_id, "logged_at": _ts(now), "sink": p.sink, "status": "superseded"})
                result.superseded.append((p.alert_id, p.sink))
            for p in due:
                if self._deliver(p.alert_id, p.alert, p.sink, now, failed, result):
                    result.redelivered.append((p.alert_id, p.sink))

            state = self.state()
            try:
                for alert in alerts:
                    entry = state.get(alert.dedup_key)
                    reason = self._reason(alert, entry, now)
                    if reason is None:
                        result.suppressed.append(alert)
                        if entry is not None and alert.status == "firing":
                            entry["suppressed"] = int(entry.get("suppressed", 0)) + 1
                        continue
                    if alert.status == "resolved" and alert.ends_at is None:
                        alert = alert.resolved(now)
                    alert_id = uuid.uuid4().hex
                    sinks = list(self.sinks)
                    self.log.append(
                        {
                            "record": "alert",
                            "id": alert_id,
                            "logged_at": _ts(now),
                            "reason": reason,
                            "sinks": sinks,
                            "alert": alert.model_dump(mode="json"),
                        }
                    )
                    state[alert.dedup_key] = self._entry(alert, entry, alert_id, now)
                    result.notified.append(alert)
                    for name in sinks:
                        self._deliver(alert_id, alert, name, now, failed, result)
            finally:
                self._save(state)
        return result

    @staticmethod
    def _entry(alert: Alert, previous: dict[str, Any] | None, alert_id: str, now: datetime) -> dict[str, Any]:
        prev = previous or {}
        if alert.status == "resolved":
            return {**prev, "status": "resolved", "resolved_at": _ts(now), "last_alert_id": alert_id}
        first = prev.get("first_fired_at") if prev.get("status") == "firing" else None
        return {
            "status": "firing",
            "severity": alert.severity,
            "severity_rank": alert.severity_rank,
            "first_fired_at": first or _ts(now),
            "last_notified_at": _ts(now),
            "last_alert_id": alert_id,
            "suppressed": int(prev.get("suppressed", 0)) if first else 0,
        }
