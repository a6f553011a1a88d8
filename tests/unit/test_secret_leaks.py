"""Malformed secrets never leak: each alert sink, a plain webhook POST and the Label Studio client.

A secret that is malformed (a webhook URL without a scheme, a token with a
line break) used to reach ``requests``, whose exceptions quote the URL and
headers; they escaped the dispatcher with the secret in their text. Each case
here runs against a real HTTP server on 127.0.0.1 and checks that the secret
appears in no log line (cvpipe's loggers at every level, everything else at
INFO), no file written, and no exception (its whole formatted chain).
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fakes.label_studio_server import FakeLabelStudio
from fakes.webhook_server import Reply, WebhookServer

from components.alert import Alert, AlertConfig, AlertDispatcher, RetryConfig, SlackSink, SlackSinkConfig
from components.alert.http import post_json
from components.core.errors import AlertError, LabellingError
from components.core.secrets import clean_secret, read_secret, redact_url, scrub
from components.sample.labelstudio import LabelStudioClient

RETRY = {"attempts": 2, "backoff_s": 0.0, "max_backoff_s": 0.0, "timeout_s": 5.0}
SECRET = "S3CRET-9f8e7d6c5b4a"


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def logs() -> Iterator[_Records]:
    """Every cvpipe log line (cvpipe's logger does not propagate) and every other INFO+ line."""
    handler = _Records()
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    cvpipe, root = logging.getLogger("cvpipe"), logging.getLogger()
    root_handler = _Records()
    root_handler.setLevel(logging.INFO)
    saved = cvpipe.level
    cvpipe.setLevel(logging.DEBUG)
    cvpipe.addHandler(handler)
    root.addHandler(root_handler)
    try:
        yield handler
    finally:
        cvpipe.removeHandler(handler)
        root.removeHandler(root_handler)
        cvpipe.setLevel(saved)
        handler.lines.extend(root_handler.lines)


@pytest.fixture
def server() -> Iterator[WebhookServer]:
    with WebhookServer() as s:
        yield s


def _alert() -> Alert:
    return Alert.model_validate(
        {
            "name": "FeatureDrift",
            "severity": "warning",
            "summary": "m1: brightness drifted",
            "model": "m1",
            "metric": "psi/brightness",
            "dedup_key": "cvpipe/m1/drift/psi/brightness",
            "starts_at": datetime(2026, 11, 22, 3, tzinfo=UTC),
        }
    )


def _chain(e: BaseException) -> str:
    """Everything a traceback of ``e`` could show, suppressed context included."""
    parts = []
    seen: BaseException | None = e
    while seen is not None:
        parts.append("".join(traceback.format_exception_only(type(seen), seen)))
        seen = seen.__cause__ or seen.__context__
    return "\n".join(parts) + "".join(traceback.format_exception(e))


def _files(root: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in root.rglob("*") if p.is_file())


def _assert_hidden(secret: str, *texts: str) -> None:
    for text in texts:
        assert secret not in text, f"secret leaked into: {text[:500]}"


def _dispatch(tmp_path: Path, sink: dict, logs: _Records) -> tuple[dict[str, str], str]:
    """Dispatches one alert to one sink; returns the undelivered errors and every text a user could see."""
    config = AlertConfig.model_validate({"log": str(tmp_path / "alerts" / "alerts.jsonl"), "sinks": [{**sink, "retry": RETRY}]})
    result = AlertDispatcher(config).dispatch([_alert()])  # must not raise: a sink failure is recorded, not thrown
    errors = {name: err for by_sink in result.undelivered.values() for name, err in by_sink.items()}
    return errors, "\n".join([*logs.lines, _files(tmp_path), repr(result)])


# --------------------------------------------------------------------------- Slack


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        (f"hooks.slack.example/services/T0/B0/{SECRET}", "MissingSchema: the URL has no scheme"),
        (f"htps://hooks.slack.example/services/T0/B0/{SECRET}", "InvalidSchema"),
        (f"https://hooks.slack.example/services/T0/B0/{SECRET}\nX", "environment variable CVPIPE_T_SLACK holds control characters"),
        (f"http://[hooks.slack.example/services/T0/B0/{SECRET}", "InvalidURL: the URL is malformed"),
    ],
)
def test_slack_malformed_webhook_url_never_shown(tmp_path, logs, monkeypatch, url, problem):
    monkeypatch.setenv("CVPIPE_T_SLACK", url)
    errors, seen = _dispatch(tmp_path, {"type": "slack", "webhook_url_env": "CVPIPE_T_SLACK"}, logs)
    assert problem in errors["slack"]
    assert "$CVPIPE_T_SLACK" in errors["slack"] or "CVPIPE_T_SLACK" in errors["slack"]
    _assert_hidden(SECRET, seen)
    with pytest.raises(AlertError) as e:  # the sink itself raises only AlertError
        SlackSink(SlackSinkConfig(webhook_url_env="CVPIPE_T_SLACK", retry=RetryConfig(**RETRY))).send(_alert())
    _assert_hidden(SECRET, _chain(e.value))


def test_slack_url_with_a_trailing_newline_is_delivered_without_showing_it(tmp_path, logs, monkeypatch, server):
    server.default(f"/services/T0/B0/{SECRET}", Reply(404, f"no_service for /services/T0/B0/{SECRET}"))
    monkeypatch.setenv("CVPIPE_T_SLACK", f"{server.url}/services/T0/B0/{SECRET}\n")
    errors, seen = _dispatch(tmp_path, {"type": "slack", "webhook_url_env": "CVPIPE_T_SLACK"}, logs)
    [received] = server.received()
    assert received.path == f"/services/T0/B0/{SECRET}"  # stripped, then sent
    assert "HTTP 404 from the Slack webhook in $CVPIPE_T_SLACK: no_service for ***" in errors["slack"]
    _assert_hidden(SECRET, seen)


# --------------------------------------------------------------------------- Alertmanager


@pytest.mark.parametrize(
    ("token", "problem"),
    [
        (f"am-{SECRET}\nInjected: 1", "environment variable CVPIPE_T_AM holds control characters"),
        (f"am-{SECRET}-tøkén-€", "UnicodeEncodeError: a URL or header holds characters HTTP cannot carry"),
        (f"am {SECRET}", None),  # a space inside is legal in a header: sent, and the server's echo is hidden
    ],
)
def test_alertmanager_malformed_token_never_shown(tmp_path, logs, monkeypatch, server, token, problem):
    server.default("/api/v2/alerts", Reply(401, f"invalid bearer token {token.strip()}"))
    monkeypatch.setenv("CVPIPE_T_AM", token)
    errors, seen = _dispatch(tmp_path, {"type": "alertmanager", "url": server.url, "token_env": "CVPIPE_T_AM"}, logs)
    if problem is None:
        assert "HTTP 401" in errors["alertmanager"] and "invalid bearer token ***" in errors["alertmanager"]
    else:
        assert problem in errors["alertmanager"]
        assert server.received() == []
    _assert_hidden(SECRET, seen)


def test_alertmanager_token_with_trailing_newline_is_stripped(tmp_path, logs, monkeypatch, server):
    server.default("/api/v2/alerts", Reply(200))
    monkeypatch.setenv("CVPIPE_T_AM", f"am-{SECRET}\n")
    errors, seen = _dispatch(tmp_path, {"type": "alertmanager", "url": server.url, "token_env": "CVPIPE_T_AM"}, logs)
    assert errors == {}
    assert server.received()[0].headers["authorization"] == f"Bearer am-{SECRET}"
    _assert_hidden(SECRET, seen)


def test_alertmanager_url_credentials_are_not_shown(tmp_path, logs, server):
    url = server.url.replace("http://", f"http://admin:{SECRET}@")
    server.default("/api/v2/alerts", Reply(403, "forbidden"))
    errors, seen = _dispatch(tmp_path, {"type": "alertmanager", "url": url}, logs)
    assert f"HTTP 403 from {server.url.replace('http://', 'http://admin@')}/api/v2/alerts" in errors["alertmanager"]
    _assert_hidden(SECRET, seen)


# --------------------------------------------------------------------------- PagerDuty


def test_pagerduty_routing_key_echoed_by_the_server_is_hidden(tmp_path, logs, monkeypatch, server):
    server.default("/v2/enqueue", Reply(400, {"status": "invalid event", "errors": [f"routing_key {SECRET} is unknown"]}))
    monkeypatch.setenv("CVPIPE_T_PD", f" {SECRET}\n")
    errors, seen = _dispatch(tmp_path, {"type": "pagerduty", "url": server.url + "/v2/enqueue", "routing_key_env": "CVPIPE_T_PD"}, logs)
    assert server.received()[0].json["routing_key"] == SECRET  # stripped
    assert "routing_key *** is unknown" in errors["pagerduty"]
    _assert_hidden(SECRET, seen)


def test_pagerduty_key_with_a_line_break_is_refused_by_name(tmp_path, logs, monkeypatch, server):
    monkeypatch.setenv("CVPIPE_T_PD", f"{SECRET}\n{SECRET}")
    errors, seen = _dispatch(tmp_path, {"type": "pagerduty", "url": server.url + "/v2/enqueue", "routing_key_env": "CVPIPE_T_PD"}, logs)
    assert "environment variable CVPIPE_T_PD holds control characters" in errors["pagerduty"]
    assert server.received() == []
    _assert_hidden(SECRET, seen)


# --------------------------------------------------------------------------- a plain webhook


@pytest.mark.parametrize(
    "url",
    [f"example.invalid/hooks/{SECRET}", f"http://[example.invalid/hooks/{SECRET}", f"ftp://example.invalid/hooks/{SECRET}"],
)
def test_webhook_post_with_a_malformed_url_raises_alert_error_only(logs, url):
    with pytest.raises(AlertError) as e:
        post_json("webhook", url, {"a": 1}, RetryConfig(**RETRY), target="the webhook in $HOOK")
    assert str(e.value).startswith("webhook: cannot send to the webhook in $HOOK: ")
    assert e.value.__context__ is None and e.value.__cause__ is None
    _assert_hidden(SECRET, _chain(e.value), *logs.lines)


def test_webhook_header_secret_hidden(logs):
    with pytest.raises(AlertError) as e:
        post_json("webhook", "http://127.0.0.1:9/x", {}, RetryConfig(**RETRY), headers={"Authorization": f"Bearer {SECRET}\r\nX: y"})
    assert "InvalidHeader" in str(e.value)
    _assert_hidden(SECRET, _chain(e.value), *logs.lines)


# --------------------------------------------------------------------------- Label Studio


def test_label_studio_token_with_trailing_newline_works(monkeypatch, logs):
    monkeypatch.setenv("CVPIPE_T_LS", f"{SECRET}\n")
    with FakeLabelStudio(token=SECRET) as ls:
        pid = LabelStudioClient(ls.url, token_env="CVPIPE_T_LS", max_wait=0.01).create_project("cvpipe m", "<View/>")
        assert pid >= 1 and ls.requests[-1].headers["authorization"] == f"Token {SECRET}"
    _assert_hidden(SECRET, *logs.lines)


@pytest.mark.parametrize(
    ("token", "url", "problem"),
    [
        (f"{SECRET}\nX-Injected: 1", None, "Label Studio API token in environment variable CVPIPE_T_LS holds control characters"),
        (f"{SECRET}-€", None, "UnicodeEncodeError: a URL or header holds characters HTTP cannot carry"),
        (SECRET, "127.0.0.1:{port}", "InvalidSchema: the URL's scheme is not http or https"),  # "127.0.0.1" taken as the scheme
        (SECRET, "labelstudio.invalid/{port}", "MissingSchema: the URL has no scheme"),
        (SECRET, "http://labeller:" + SECRET + "@127.0.0.1:{port}", "HTTP 401"),
    ],
)
def test_label_studio_malformed_secrets_never_shown(monkeypatch, logs, token, url, problem):
    monkeypatch.setenv("CVPIPE_T_LS", token)
    with FakeLabelStudio(token="another-token") as ls, pytest.raises(LabellingError) as e:
        port = ls.url.rsplit(":", 1)[1]
        base = (url or ls.url).replace("{port}", port)
        LabelStudioClient(base, token_env="CVPIPE_T_LS", attempts=2, max_wait=0.01).create_project("cvpipe m", "<View/>")
    assert problem in str(e.value)
    assert e.value.__context__ is None or SECRET not in _chain(e.value)
    _assert_hidden(SECRET, _chain(e.value), *logs.lines)


# --------------------------------------------------------------------------- the retraining trigger's Kubeflow token


def test_kubeflow_retraining_token_is_stripped_and_a_broken_one_refused_by_name(tmp_path, monkeypatch, logs):
    from fakes.kfp_server import FakeKfpServer

    from components.core.errors import PipelineRunError
    from components.core.spec import parse_spec
    from pipelines.runners import kubeflow_runner

    with FakeKfpServer(token=SECRET) as server:
        data = {"name": "shapes", "task": "detection", "data": {"source": str(tmp_path / "a.json")}}
        data["monitoring"] = {"retrain": {"target": "kubeflow", "host": server.url, "token_env": "CVPIPE_T_KFP"}}
        spec = parse_spec(data)
        monkeypatch.setenv("CVPIPE_T_KFP", f"{SECRET}\n")  # as read from a mounted file
        run = kubeflow_runner(spec).submit(spec, until="ingest", run_name="shapes-retrain-1")
        assert run.run_id
        monkeypatch.setenv("CVPIPE_T_KFP", f"{SECRET}\nX-Injected: 1")
        with pytest.raises(PipelineRunError) as e:
            kubeflow_runner(spec)
    assert "Kubeflow token: environment variable CVPIPE_T_KFP holds control characters" in str(e.value)
    _assert_hidden(SECRET, _chain(e.value), *logs.lines)


def test_kubeflow_runner_never_quotes_its_token(tmp_path, logs):
    """`cvpipe submit/runs/schedule --token` (or $CVPIPE_KFP_TOKEN) with a line break: the client's error is reported by kind."""
    from fakes.kfp_server import FakeKfpServer

    from components.core.errors import PipelineRunError
    from components.core.spec import parse_spec
    from pipelines.runners.kubeflow import submit_kubeflow

    spec = parse_spec({"name": "shapes", "task": "detection", "data": {"source": str(tmp_path / "a.json")}})
    with FakeKfpServer(token=SECRET) as server, pytest.raises(PipelineRunError) as e:
        submit_kubeflow(spec, server.url, token=f"{SECRET}\n", until="ingest")
    assert "ValueError: the request could not be sent" in str(e.value)
    _assert_hidden(SECRET, _chain(e.value), *logs.lines)
    with FakeKfpServer(token="t") as server:  # credentials in the host URL are not shown
        shown = server.url.replace("http://", "http://admin@")
        with pytest.raises(PipelineRunError) as e:
            submit_kubeflow(spec, server.url.replace("http://", f"http://admin:{SECRET}@"), token="wrong", until="ingest")
    assert shown in str(e.value)
    _assert_hidden(SECRET, _chain(e.value), *logs.lines)


# --------------------------------------------------------------------------- the helpers


def test_redact_url_and_scrub():
    assert redact_url("mysql://cvpipe:pw@db:3306/mlmd") == "mysql://cvpipe@db:3306/mlmd"
    assert redact_url("https://:pw@h/x") == "https://h/x"
    assert redact_url("https://h/x?token=abc&page=2") == "https://h/x?token=***&page=2"
    assert redact_url("sqlite:///runs/mlmd.sqlite") == "sqlite:///runs/mlmd.sqlite"
    assert scrub("key abcd and abcdef", ["abcdef", "abcd", None, "ab"]) == "key *** and ***"


def test_clean_and_read_secret(tmp_path, monkeypatch):
    assert clean_secret(" tok\n", "x") == "tok"
    with pytest.raises(ValueError, match=r"^file f holds control characters") as e:
        clean_secret(f"{SECRET}\n{SECRET}", "file f")
    assert SECRET not in str(e.value)
    f = tmp_path / "pw"
    f.write_text(f"{SECRET}\n")
    monkeypatch.setenv("CVPIPE_T_PW", "from-env")
    assert read_secret("CVPIPE_T_PW", f) == SECRET  # the file wins
    assert read_secret("CVPIPE_T_PW") == "from-env"
    monkeypatch.delenv("CVPIPE_T_PW")
    assert read_secret("CVPIPE_T_PW") is None
    with pytest.raises(ValueError, match=r"secret file .*missing cannot be read"):
        read_secret(file=tmp_path / "missing")
