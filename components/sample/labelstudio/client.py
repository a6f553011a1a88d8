"""Label Studio's REST API (project creation, task import, JSON export) with retries.

The token comes from an environment variable only.
"""

from __future__ import annotations

import os
from typing import Any

from components.core.errors import LabellingError

__all__ = ["LabelStudioClient"]


class _Transient(Exception):
    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class LabelStudioClient:
    """Label Studio's REST API: create a project, import tasks, export annotations.

    The token is read from an environment variable (never from configuration),
    stripped of surrounding whitespace, and sent as ``Authorization: Token <token>``
    (Label Studio's legacy API token). Errors never quote the HTTP library's
    text nor the token, and show the URL without credentials.
    Connection errors, timeouts, 429 and 5xx answers are retried with exponential
    backoff (``Retry-After`` honoured up to ``max_wait``); any other 4xx fails at once.

    Args:
        url: Label Studio's base URL (``http://localhost:8080``).
        token_env: environment variable holding the API token.
        timeout: seconds per request.
        attempts: tries per call.
        max_wait: longest wait between tries, seconds.

    Raises:
        LabellingError: the token variable is not set, or its value has a line break inside.
    """

    def __init__(
        self, url: str, token_env: str = "LABEL_STUDIO_API_KEY", *, timeout: float = 30.0, attempts: int = 5, max_wait: float = 10.0
    ):
        import requests

        from components.core.secrets import clean_secret, redact_url

        token = os.environ.get(token_env)
        if not token or not token.strip():
            raise LabellingError(f"Label Studio API token: set the environment variable {token_env}")
        try:
            self._token = clean_secret(token, f"Label Studio API token in environment variable {token_env}")
        except ValueError as e:  # names the variable, never the value
            raise LabellingError(str(e)) from None
        self.url = url.rstrip("/")
        self.shown_url = redact_url(self.url)
        self.timeout = timeout
        self.attempts = max(1, attempts)
        self.max_wait = max_wait
        self._session = requests.Session()
        self._session.headers["Authorization"] = f"Token {self._token}"

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        import requests
        from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

        from components.core.secrets import describe_http_error, scrub

        backoff = wait_exponential(multiplier=0.2, max=self.max_wait)

        def wait(state: Any) -> float:
            exc = state.outcome.exception() if state.outcome else None
            if isinstance(exc, _Transient) and exc.retry_after is not None:
                return min(exc.retry_after, self.max_wait)
            return float(backoff(state))

        def once() -> Any:
            failure = None
            try:
                r = self._session.request(method, self.url + path, timeout=self.timeout, **kwargs)
            except Exception as e:  # requests' text quotes the URL and headers (the token): keep only the kind of failure
                failure = (describe_http_error(e), isinstance(e, requests.ConnectionError | requests.Timeout))
            if failure is not None:  # raised outside the except block: the library's exception is not kept as context
                what, transient = failure
                if transient:
                    raise _Transient(f"{method} {path}: {what}")
                raise LabellingError(f"Label Studio at {self.shown_url}: cannot send {method} {path}: {what}")
            if r.status_code == 429 or r.status_code >= 500:
                after = r.headers.get("Retry-After")
                raise _Transient(f"{method} {path}: HTTP {r.status_code}", float(after) if after and after.isdigit() else None)
            if r.status_code >= 400:
                body = scrub(r.text, [self._token, self.url])[:300]
                raise LabellingError(f"Label Studio refused {method} {path}: HTTP {r.status_code}: {body}", status=r.status_code)
            if not r.content:
                return None
            try:
                return r.json()
            except ValueError:
                raise LabellingError(f"Label Studio at {self.shown_url} answered {method} {path} with something that is not JSON") from None

        try:
            for attempt in Retrying(
                retry=retry_if_exception_type(_Transient), stop=stop_after_attempt(self.attempts), wait=wait, reraise=True
            ):
                with attempt:
                    return once()
        except _Transient as e:
            raise LabellingError(f"Label Studio at {self.shown_url} still failing after {self.attempts} tries: {e}") from None
        raise LabellingError(f"Label Studio at {self.shown_url}: no answer")  # pragma: no cover - Retrying always returns or raises

    def create_project(self, title: str, label_config_xml: str) -> int:
        """Creates a project (``POST /api/projects``).

        Args:
            title: project title.
            label_config_xml: the labelling config (:func:`label_config`).

        Returns:
            The project id.
        """
        doc = self._request("POST", "/api/projects", json={"title": title, "label_config": label_config_xml})
        return int(doc["id"])

    def import_tasks(self, project_id: int, tasks: list[dict[str, Any]]) -> dict[str, Any]:
        """Imports tasks with their pre-annotations (``POST /api/projects/{id}/import``).

        Args:
            project_id: the project.
            tasks: the tasks (:func:`to_tasks`).

        Returns:
            Label Studio's answer (``task_count``, ``prediction_count``...).
        """
        return dict(self._request("POST", f"/api/projects/{int(project_id)}/import", json=tasks) or {})

    def export(self, project_id: int) -> list[dict[str, Any]]:
        """Exports the project's tasks with annotations (``GET /api/projects/{id}/export?exportType=JSON``).

        Args:
            project_id: the project.

        Returns:
            The exported tasks.

        Raises:
            LabellingError: the answer is not a list of tasks.
        """
        doc = self._request("GET", f"/api/projects/{int(project_id)}/export", params={"exportType": "JSON"})
        if not isinstance(doc, list):
            raise LabellingError(f"Label Studio export of project {project_id} is not a list of tasks")
        return doc
