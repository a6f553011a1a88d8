"""The alert dispatcher: deduplication, cooldown, resolve, and delivery that never loses an alert.

Like Alertmanager, the dispatcher keeps one state per ``dedup_key``
(``<log stem>.state.json`` beside the log, written atomically):

- a **firing** alert whose key is not firing is a new incident: it is sent;
- a firing alert whose key already fires is a duplicate and is suppressed,
  unless its severity is higher (sent as an escalation) or ``cooldown_s`` has
  passed since the last notification (sent as a reminder);
- a **resolved** alert is sent only when its key is firing (the condition
  cleared), and the key stops firing; a resolve of a key that never fired is
  neither sent nor counted as suppressed;
- an alert carrying an ``update`` (a follow-up: the retraining ended, a model
  took an alias) is sent once per distinct update text, whatever the cooldown;
- an **acknowledged** incident (:meth:`AlertDispatcher.ack`) is not reminded
  of; a change of severity notifies again and clears the acknowledgement;
- an incident matching an active **silence** (:meth:`AlertDispatcher.silence`)
  is logged but sent only to Alertmanager sinks, which hold the same silence
  (created through their API v2) and show it as suppressed.

An incident gets its id (:func:`~.incident.incident_id`) and console link
when it first fires; reminders, escalations, follow-ups and the resolve carry
the same id.

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
    {"record": "ack", "key": ..., "incident_id": ..., "logged_at": ..., "by": ..., "comment": ...}
    {"record": "silence", "logged_at": ..., "silence": {...}}
    {"record": "unsilence", "silence_id": ..., "logged_at": ..., "by": ...}

Alert records also carry ``"silenced_by"`` (a silence id) when a silence held them back.

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

from components.core.clock import utc_now
from components.core.errors import AlertError
from components.core.io import atomic_write_json, read_json
from components.core.log import get_logger

from .config import AlertConfig, AlertmanagerSinkConfig
from .incident import console_link, incident_id
from .model import Alert
from .silence import Matcher, Silence, expire_in_alertmanager, silence_in_alertmanager
from .sinks import AlertmanagerSink, AlertSink, alertmanager_labels, build_sinks

__all__ = ["AlertDispatcher", "AlertLog", "DispatchResult", "Incident", "PendingDelivery"]

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
        notified: alerts accepted and sent to the sinks (new, reminders, escalations, resolves, updates),
            as sent (with their incident id and console link).
        suppressed: firing alerts dropped as duplicates (within the cooldown, or acknowledged)
            and updates already sent.
        silenced: alerts logged but held back from every sink but Alertmanager by a silence.
        redelivered: ``(alert id, sink)`` delivered now after failing earlier.
        superseded: ``(alert id, sink)`` given up because a newer alert with the same key was logged.
        undelivered: alert id -> sink -> error, for everything still undelivered after this run.
    """

    notified: list[Alert] = field(default_factory=list)
    suppressed: list[Alert] = field(default_factory=list)
    silenced: list[Alert] = field(default_factory=list)
    redelivered: list[tuple[str, str]] = field(default_factory=list)
    superseded: list[tuple[str, str]] = field(default_factory=list)
    undelivered: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def all_delivered(self) -> bool:
        """True when nothing is left undelivered."""
        return not self.undelivered


@dataclass
class Incident:
    """One incident as the log and the state know it (what ``cvpipe alerts list/show`` print).

    Attributes:
        key: the dedup key.
        incident_id: its id.
        status: firing, resolved, or announced (news of no incident, such as an alias move).
        alert: the latest notification logged for it.
        state: the dispatcher's state entry (times, severity, acknowledgement, suppressed count).
        history: ``(reason, logged_at, alert)`` of every notification of this incident, oldest first.
        silenced_by: the active silence that matches it, if any.
    """

    key: str
    incident_id: str
    status: str
    alert: Alert
    state: dict[str, Any]
    history: list[tuple[str, str, Alert]] = field(default_factory=list)
    silenced_by: Silence | None = None

    @property
    def acked(self) -> bool:
        """Whether it is acknowledged."""
        return bool(self.state.get("acked_at"))


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

    def notifications(self) -> list[tuple[str, str, str, Alert]]:
        """Every logged notification: ``(id, reason, logged_at, alert)``, oldest first.

        Returns:
            The notifications.
        """
        out = []
        for rec in self.records():
            if rec.get("record") == "alert":
                with contextlib.suppress(KeyError, ValidationError):
                    out.append(
                        (str(rec["id"]), str(rec.get("reason", "")), str(rec.get("logged_at", "")), Alert.model_validate(rec["alert"]))
                    )
        return out

    def silences(self) -> list[Silence]:
        """Every silence, as last changed (an unsilence ends it at that moment), oldest first.

        Returns:
            The silences.
        """
        found: dict[str, Silence] = {}
        for rec in self.records():
            kind = rec.get("record")
            if kind == "silence":
                try:
                    s = Silence.model_validate(rec["silence"])
                except (KeyError, ValidationError):
                    _log.warning("%s: silence record cannot be read; skipped", self.path)
                    continue
                found[s.id] = s
            elif kind == "unsilence" and str(rec.get("silence_id")) in found:
                sid = str(rec["silence_id"])
                end = datetime.fromisoformat(str(rec["logged_at"]))
                if end < found[sid].ends_at:
                    found[sid] = found[sid].model_copy(update={"ends_at": end})
        return list(found.values())

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
        if alert.update:
            return "update" if entry is None or entry.get("last_update") != alert.update else None
        if alert.status == "resolved":
            return "resolve" if firing else None
        if not firing or entry is None:
            return "new"
        if alert.severity_rank > int(entry.get("severity_rank", 0)):
            return "escalation"
        if entry.get("acked_at"):
            return "severity_change" if alert.severity_rank != int(entry.get("ack_severity_rank", entry.get("severity_rank", 0))) else None
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
            silences = [x for x in self.log.silences() if x.active(now)]
            try:
                for alert in alerts:
                    entry = state.get(alert.dedup_key)
                    reason = self._reason(alert, entry, now)
                    if reason is None:
                        if alert.status == "firing" and entry is not None and entry.get("status") == "firing" and not alert.update:
                            result.suppressed.append(alert)
                            entry["suppressed"] = int(entry.get("suppressed", 0)) + 1
                        elif alert.update:
                            result.suppressed.append(alert)
                        continue  # a resolve of nothing firing is no news: neither sent nor "suppressed"
                    if alert.status == "resolved" and alert.ends_at is None:
                        alert = alert.resolved(now)
                    if reason == "new" or entry is None or not entry.get("incident_id"):
                        first = _ts(now) if reason == "new" or entry is None else str(entry.get("first_fired_at") or _ts(now))
                        ident = incident_id(alert.dedup_key, first)
                    else:
                        ident = str(entry["incident_id"])
                    alert = alert.model_copy(
                        update={"incident_id": ident, "console_url": console_link(self.config.console_url, ident) or alert.console_url}
                    )
                    labels = alertmanager_labels(alert)
                    silence = next((x for x in silences if x.matches(labels)), None)
                    alert_id = uuid.uuid4().hex
                    sinks = list(self.sinks)
                    record: dict[str, Any] = {"record": "alert", "id": alert_id, "logged_at": _ts(now), "reason": reason}
                    if silence is not None:
                        sinks = [n for n, sk in self.sinks.items() if isinstance(sk, AlertmanagerSink)]
                        record["silenced_by"] = silence.id
                        result.silenced.append(alert)
                    record.update({"sinks": sinks, "alert": alert.model_dump(mode="json")})
                    self.log.append(record)
                    state[alert.dedup_key] = self._entry(alert, entry, alert_id, now, reason, ident)
                    if silence is None:
                        result.notified.append(alert)
                    for name in sinks:
                        self._deliver(alert_id, alert, name, now, failed, result)
            finally:
                self._save(state)
        return result

    @staticmethod
    def _entry(alert: Alert, previous: dict[str, Any] | None, alert_id: str, now: datetime, reason: str, ident: str) -> dict[str, Any]:
        prev = previous or {}
        if reason == "update":
            # news that belongs to no incident (an alias moved) is an announcement, not a firing condition
            base = prev or {"status": "announced", "severity": alert.severity, "severity_rank": alert.severity_rank}
            return {**base, "incident_id": ident, "last_update": alert.update, "last_alert_id": alert_id, "last_notified_at": _ts(now)}
        if alert.status == "resolved":
            return {**prev, "status": "resolved", "resolved_at": _ts(now), "last_alert_id": alert_id, "incident_id": ident}
        first = prev.get("first_fired_at") if prev.get("status") == "firing" else None
        entry = {
            "status": "firing",
            "severity": alert.severity,
            "severity_rank": alert.severity_rank,
            "first_fired_at": first or _ts(now),
            "last_notified_at": _ts(now),
            "last_alert_id": alert_id,
            "suppressed": int(prev.get("suppressed", 0)) if first else 0,
            "incident_id": ident,
        }
        if first and prev.get("last_update"):
            entry["last_update"] = prev["last_update"]
        if first and prev.get("acked_at") and reason not in ("escalation", "severity_change"):
            entry.update({k: prev[k] for k in ("acked_at", "acked_by", "ack_comment", "ack_severity_rank") if k in prev})
        return entry

    # ------------------------------------------------------------------ on-call actions

    def incidents(self, now: datetime | None = None) -> list[Incident]:
        """Every incident the log knows, newest first, with its state and the silence holding it.

        Args:
            now: the current time (which silences are active).

        Returns:
            The incidents.
        """
        now = now or utc_now()
        state = self.state()
        silences = [x for x in self.log.silences() if x.active(now)]
        by_key: dict[tuple[str, str], Incident] = {}
        for _, reason, logged_at, alert in self.log.notifications():
            ident = alert.incident_id or incident_id(alert.dedup_key, "")
            inc = by_key.get((alert.dedup_key, ident))
            if inc is None:
                inc = by_key[(alert.dedup_key, ident)] = Incident(alert.dedup_key, ident, alert.status, alert, {})
            inc.history.append((reason, logged_at, alert))
            if not alert.update:
                inc.alert, inc.status = alert, alert.status
            else:  # a follow-up: the news, and what cvpipe did as of then
                inc.alert = inc.alert.model_copy(update={"update": alert.update, "action": alert.action or inc.alert.action})
        for inc in by_key.values():
            entry = state.get(inc.key, {})
            if entry.get("incident_id") == inc.incident_id:
                inc.state = dict(entry)
                inc.status = str(entry.get("status", inc.status))
            inc.silenced_by = next((x for x in silences if x.matches(alertmanager_labels(inc.alert))), None)
        return sorted(by_key.values(), key=lambda i: i.history[-1][1], reverse=True)

    def find(self, ref: str, now: datetime | None = None) -> Incident:
        """One incident by id (or a unique prefix of it) or dedup key; the newest when a key fired several times.

        Args:
            ref: the id, an id prefix, or the dedup key.
            now: the current time.

        Returns:
            The incident.

        Raises:
            AlertError: nothing or several incidents match.
        """
        found = self.incidents(now)
        exact = [i for i in found if ref in (i.incident_id, i.key)]
        hits = exact or [i for i in found if i.incident_id.startswith(ref)]
        if not hits:
            raise AlertError(f"no incident {ref!r} in {self.log.path} (cvpipe alerts list shows them)")
        if len({i.incident_id for i in hits}) > 1 and not exact:
            raise AlertError(f"{ref!r} matches {len(hits)} incidents: {', '.join(i.incident_id for i in hits)}")
        return hits[0]

    def ack(self, ref: str, by: str, comment: str = "", now: datetime | None = None) -> Incident:
        """Acknowledges a firing incident: no reminders until its severity changes (or it resolves and fires anew).

        Args:
            ref: incident id, id prefix or dedup key.
            by: who acknowledges.
            comment: why, what is being done.
            now: the current time.

        Returns:
            The incident, acknowledged.

        Raises:
            AlertError: no such incident, or it is not firing.
        """
        now = now or utc_now()
        with self._locked():
            inc = self.find(ref, now)
            state = self.state()
            entry = state.get(inc.key)
            if entry is None or entry.get("status") != "firing" or entry.get("incident_id") != inc.incident_id:
                raise AlertError(f"incident {inc.incident_id} ({inc.key}) is not firing; nothing to acknowledge")
            entry.update({"acked_at": _ts(now), "acked_by": by, "ack_comment": comment, "ack_severity_rank": entry.get("severity_rank", 0)})
            self.log.append(
                {"record": "ack", "key": inc.key, "incident_id": inc.incident_id, "logged_at": _ts(now), "by": by, "comment": comment}
            )
            self._save(state)
            inc.state = dict(entry)
        return inc

    def _alertmanagers(self) -> list[AlertmanagerSinkConfig]:
        return [sk.config for sk in self.sinks.values() if isinstance(sk, AlertmanagerSink)]

    def silence(self, matchers: Sequence[Matcher], duration_s: float, by: str, comment: str, now: datetime | None = None) -> Silence:
        """Creates a silence (logged, and in every configured Alertmanager through its API v2).

        Args:
            matchers: label matchers, all of which must match.
            duration_s: how long it lasts, seconds.
            by: its author.
            comment: why.
            now: when it starts (default: now).

        Returns:
            The silence, with its Alertmanager ids.

        Raises:
            AlertError: no matcher, a non-positive duration, or an Alertmanager refused it (nothing is logged then).
        """
        from datetime import timedelta

        if not matchers:
            raise AlertError("a silence needs at least one matcher (e.g. model=NAME or cause=input_drift)")
        if duration_s <= 0:
            raise AlertError("a silence needs a positive duration")
        silence = Silence.create(list(matchers), timedelta(seconds=duration_s), by, comment, now)
        for cfg in self._alertmanagers():
            silence.alertmanager_ids[cfg.name] = silence_in_alertmanager(cfg, silence)
        with self._locked():
            self.log.append({"record": "silence", "logged_at": _ts(silence.starts_at), "silence": silence.model_dump(mode="json")})
        return silence

    def unsilence(self, silence_id: str, by: str, now: datetime | None = None) -> Silence:
        """Expires a silence now (in the log and in the Alertmanagers that hold it).

        Args:
            silence_id: cvpipe's silence id (or a unique prefix).
            by: who expires it.
            now: the current time.

        Returns:
            The silence as expired.

        Raises:
            AlertError: no such silence, or an Alertmanager refused to expire it.
        """
        now = now or utc_now()
        hits = [x for x in self.log.silences() if x.id.startswith(silence_id)]
        if len(hits) != 1:
            raise AlertError(f"{'no' if not hits else 'more than one'} silence {silence_id!r} in {self.log.path}")
        silence = hits[0]
        configs = {c.name: c for c in self._alertmanagers()}
        for sink, am_id in silence.alertmanager_ids.items():
            if sink in configs:
                expire_in_alertmanager(configs[sink], am_id)
        with self._locked():
            self.log.append({"record": "unsilence", "silence_id": silence.id, "logged_at": _ts(now), "by": by})
        return silence.model_copy(update={"ends_at": min(now, silence.ends_at)})
