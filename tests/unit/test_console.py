"""``cvpipe ui``: the console served as a process on 127.0.0.1 over a store the project's own steps produced.

The store (tests/fakes/console_world.py) holds two versions of a model, the
second warm-started from the first by a retraining that an incident started,
with their real evaluations, blessings, lineage and incident log. Two
consoles serve it: one started with ``$CVPIPE_CONSOLE_TOKEN`` and one
without (read-only). The HTTP tests read pages and files with ``requests``;
the browser tests drive Debian's Chromium through Playwright with every
request outside the console aborted, clicking overview -> model -> lineage
-> incident, rolling back an alias, and saving screenshots of the main
pages (under the test's directory, or ``$CVPIPE_CONSOLE_SCREENSHOTS``).
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from fakes.console_world import EVIL, LABEL_STUDIO_URL, ConsoleWorld, build_console_world
from services.processes import Service, ServiceUnavailable, ensure_binary, free_port

from components.core.spec import load_spec
from components.registry.cli_ops import open_registry

TOKEN = "console-test-token-7c1e"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> ConsoleWorld:
    try:
        ensure_binary("dot", "graphviz")
    except ServiceUnavailable as e:
        pytest.skip(str(e))
    return build_console_world(tmp_path_factory.mktemp("console"), f"http://127.0.0.1:{free_port()}")


def _console(world: ConsoleWorld, port: int, token: str | None, name: str, store: list[str]) -> Service:
    env = {"CVPIPE_CONSOLE_TOKEN": token or "", "CVPIPE_USER": "tester"}
    argv = [sys.executable, "-m", "pipelines.cli", "ui", *store, "--port", str(port)]
    return Service(name, argv, f"http://127.0.0.1:{port}/", world.root / f"{name}.log", env=env, deadline_s=180)


@pytest.fixture(scope="module")
def console(world: ConsoleWorld) -> Iterator[str]:
    """The console with a token, on the port the incident log links to."""
    port = int(world.console_url.rsplit(":", 1)[1])
    with _console(world, port, TOKEN, "console", ["--spec", str(world.spec_path)]):
        yield f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def read_only(world: ConsoleWorld) -> Iterator[str]:
    """The same store served without a token, named by its metadata URL alone (the registry is found from its versions)."""
    port = free_port()
    with _console(world, port, None, "console-read-only", ["--metadata", world.spec.runtime.metadata.url]):
        yield f"http://127.0.0.1:{port}"


def _links(html: str) -> list[str]:
    return [h.replace("&amp;", "&") for h in re.findall(r'(?:href|src)="(/[^"#]*)', html)]


def _champion(world: ConsoleWorld) -> int | None:
    registry = open_registry(load_spec(world.spec_path), create=False)
    holder = registry.holder(world.spec.model_name, "champion")
    return holder.version if holder else None


# --------------------------------------------------------------------------- HTTP


def test_every_linked_page_answers_and_nothing_comes_from_elsewhere(console: str) -> None:
    seen: set[str] = set()
    todo = ["/", "/runs", "/data", "/incidents", "/actions"]
    while todo and len(seen) < 120:
        path = todo.pop(0)
        if path in seen:
            continue
        seen.add(path)
        r = requests.get(console + path, timeout=60)
        assert r.status_code == 200, f"{path}: {r.status_code} {r.text[:300]}"
        if "text/html" in r.headers["content-type"] and "/files/" not in path:
            assert "default-src 'self'" in r.headers["content-security-policy"]
            assert not re.search(r'(?:src|href)="(?:https?:)?//', r.text), f"{path} links to another site"
            todo.extend(h for h in _links(r.text) if h not in seen and "/promote" not in h and "/archive" not in h)
    kinds = {p.split("/")[1] for p in seen}
    assert {"models", "lineage", "artifacts", "runs", "incidents", "data", "static"} <= kinds


def test_model_page_has_versions_blessing_fork_tree_and_alias_history(console: str, world: ConsoleWorld) -> None:
    html = requests.get(f"{console}/models/{world.spec.model_name}", timeout=60).text
    table = html.split('id="versions-table"')[1].split("</table>")[0]
    assert table.count("<tr>") == 3  # header + two versions
    assert "map_50 &gt;= 0: pass" in table and "map &gt;= baseline - 1 (= " in table
    tree = html.split('id="fork-tree-graph"')[1]
    assert f'id="fork_{world.v1_model}"' in tree and f'id="fork_{world.v2_model}"' in tree and "warm start" in tree
    assert f"{world.spec.model_name}:2 [champion]" in tree
    history = html.split('id="alias-history-table"')[1].split("</table>")[0]
    assert history.count("<tr>") >= 3  # champion set on 1, then on 2


def test_version_page_shows_the_evaluation_report_and_per_class_figures(console: str, world: ConsoleWorld) -> None:
    html = requests.get(f"{console}/models/{world.spec.model_name}/versions/2", timeout=60).text
    assert 'id="per-class"' in html and "circle" in html
    [src] = re.findall(r'<iframe class="report" title="evaluation report" src="([^"]+)"', html)
    report = requests.get(console + src, timeout=60)
    assert report.status_code == 200 and report.headers["content-type"].startswith("text/html")
    assert "BLESSED" in report.text and "default-src 'none'" in report.headers["content-security-policy"]
    compare = requests.get(f"{console}/models/{world.spec.model_name}/compare?a=1&b=2", timeout=60).text
    assert 'id="compare-classes"' in compare and "square" in compare


def test_the_incident_link_in_the_log_opens_its_timeline(console: str, world: ConsoleWorld) -> None:
    from components.alert.dispatcher import AlertLog

    log = AlertLog(world.spec.monitoring.alert_config(world.spec.runtime.root).log_path)  # type: ignore[union-attr]
    links = {a.console_url for _, a in log.alerts() if a.incident_id == world.incident_id}
    assert links == {f"{console}/incidents/{world.incident_id}"}
    html = requests.get(links.pop(), timeout=60).text  # type: ignore[arg-type]
    timeline = html.split('id="timeline"')[1].split("</table>")[0]
    assert "fired" in timeline and "retraining t1 started" in timeline and "pushed as version 2" in timeline
    assert f'href="/lineage/{world.alert_id}"' in html


def test_lineage_of_the_retrained_model_reaches_the_alert(console: str, world: ConsoleWorld) -> None:
    html = requests.get(f"{console}/lineage/{world.v2_model}", timeout=60).text
    graph = html.split('id="lineage-graph"')[1]
    for node in (world.v2_model, world.v1_model, world.alert_id, world.batch_id):
        assert f'id="node_{node}"' in graph
    assert f'xlink:href="/artifacts/{world.alert_id}"' in graph


def test_runs_page_says_each_runs_kind_and_outcome(console: str) -> None:
    html = requests.get(f"{console}/runs", timeout=60).text
    rows = {m.group(1): m.group(0) for m in re.finditer(r'<tr>\s*<td><a href="/runs/([^"]+)">.*?</tr>', html, re.S)}
    assert "training" in rows["shelf-train-2"] and "pushed shelf:2" in rows["shelf-train-2"]
    # the evaluation run read the production model's push record: that is not a push of its own
    assert "continuous-eval" in rows["shelf-ce-1"] and "pushed" not in rows["shelf-ce-1"]


def test_labelling_queue_shows_the_batch_its_labels_and_images(console: str, world: ConsoleWorld) -> None:
    html = requests.get(f"{console}/models/{world.spec.model_name}/monitoring", timeout=60).text
    queue = html.split('id="batches"')[1].split("</table>")[0]
    assert f'href="/data/batches/{world.batch_id}"' in queue and "waiting for labels" not in queue
    row = queue.split(f'href="/data/batches/{world.batch_id}"')[1].split("</tr>")[0]
    items = int(re.search(r'<td class="num">(\d+)</td>', row).group(1))  # type: ignore[union-attr]
    assert f"project 7 at {LABEL_STUDIO_URL}: {items} tasks" in row  # sent, as `cvpipe label push --spec` records it
    assert re.search(rf'class="num annotated">{items} of {items} ', row), row  # annotated there, at the last pull
    page = requests.get(f"{console}/data/batches/{world.batch_id}", timeout=60).text
    images = re.findall(rf'src="(/data/batches/{world.batch_id}/images/\d+)"', page)
    assert images and "Label Studio tasks written" in page
    for src in images[:3]:
        r = requests.get(console + src, timeout=60)
        assert r.status_code == 200 and r.headers["content-type"].startswith("image/")


def test_monitoring_page_shows_drift_across_runs(console: str, world: ConsoleWorld) -> None:
    html = requests.get(f"{console}/models/{world.spec.model_name}/monitoring", timeout=60).text
    table = html.split('id="drift-table"')[1].split("</table>")[0]
    header = table.split("</tr>")[0]
    assert header.count('<span class="ok">ok</span>') == 1 and header.count('<span class="drift">drift</span>') == 1
    [psi] = [row for row in table.split("<tr>") if "<td>psi</td><td>brightness</td>" in row]
    cells = re.findall(r'<td class="num ([a-z_]*)">', psi)
    assert cells == ["ok", "drift"]  # the same check, below its threshold in the first window and above in the second


@pytest.mark.parametrize(
    "path",
    [
        "/artifacts/{id}/files/../../../../etc/passwd",
        "/artifacts/{id}/files/%2Fetc%2Fpasswd",
        "/artifacts/{id}/files/..%2F..%2Fspec.yaml",
        "/artifacts/999999/files/-",
        "/static/..%2F..%2F..%2Fspec.yaml",
        "/data/manifests/{id}/images/99999",
        "/data/batches/{id}/images/0",
    ],
)
def test_files_outside_the_known_artifacts_are_refused(console: str, world: ConsoleWorld, path: str) -> None:
    r = requests.get(console + path.format(id=world.v2_model), timeout=60, allow_redirects=False)
    assert r.status_code == 404, r.text[:300]
    assert "root:" not in r.text and "monitoring" not in r.text


def test_names_holding_script_are_shown_as_text(console: str) -> None:
    html = requests.get(f"{console}/data", timeout=60).text
    assert EVIL not in html
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in html
    searched = requests.get(f"{console}/data", params={"q": "<script>"}, timeout=60).text
    assert "1 item(s)" in searched and EVIL not in searched


def test_read_only_console_refuses_every_action(read_only: str, world: ConsoleWorld) -> None:
    before = _champion(world)
    name = world.spec.model_name
    page = requests.get(f"{read_only}/models/{name}", timeout=60).text
    assert "/rollback" not in page and "/promote" not in page and "read-only" in page
    assert page.split('id="versions-table"')[1].split("</table>")[0].count("<tr>") == 3  # both versions, from --metadata alone
    assert requests.get(f"{read_only}/models/{name}/rollback", timeout=60).status_code == 403
    s = requests.Session()
    s.get(f"{read_only}/", timeout=60)
    csrf = s.cookies["cvpipe_csrf"]
    for path, form in (
        (f"/models/{name}/rollback", {"alias": "champion"}),
        (f"/models/{name}/versions/1/archive", {}),
        (f"/incidents/{world.incident_id}/ack", {"comment": "x"}),
    ):
        r = s.post(read_only + path, data={**form, "token": TOKEN, "csrf": csrf, "by": "mallory"}, timeout=60, allow_redirects=False)
        assert r.status_code == 403 and "read-only" in r.text
    assert _champion(world) == before


def test_actions_need_the_token_the_csrf_cookie_and_the_same_origin(console: str, world: ConsoleWorld) -> None:
    name = world.spec.model_name
    before = _champion(world)
    s = requests.Session()
    s.get(f"{console}/models/{name}/rollback", timeout=60)
    csrf = s.cookies["cvpipe_csrf"]
    url = f"{console}/models/{name}/rollback"
    good = {"alias": "champion", "token": TOKEN, "csrf": csrf, "by": "tester"}
    for form, headers, why in (
        ({**good, "token": "wrong"}, {}, "wrong token"),
        ({**good, "csrf": "forged"}, {}, "CSRF"),
        (good, {"Origin": "http://evil.example"}, "cross-site"),
    ):
        r = s.post(url, data=form, headers=headers, timeout=60, allow_redirects=False)
        assert r.status_code == 403 and why in r.text, r.text
    fresh = requests.post(url, data=good, timeout=60, allow_redirects=False)  # no cookie: a forged form from elsewhere
    assert fresh.status_code == 403
    assert _champion(world) == before


def test_ack_and_silence_are_recorded_in_the_timeline_with_who(console: str, world: ConsoleWorld) -> None:
    s = requests.Session()
    page = s.get(f"{console}/incidents/{world.incident_id}/ack", timeout=60)
    assert page.status_code == 200 and 'name="token"' in page.text
    csrf = s.cookies["cvpipe_csrf"]
    base = {"token": TOKEN, "csrf": csrf, "by": "oncall-ann"}
    r = s.post(f"{console}/incidents/{world.incident_id}/ack", data={**base, "comment": "looking at the camera"}, timeout=60)
    assert r.status_code == 200 and r.url.endswith(f"/incidents/{world.incident_id}")
    r = s.post(f"{console}/incidents/{world.incident_id}/silence", data={**base, "duration": "1h", "comment": "camera swap"}, timeout=60)
    timeline = r.text.split('id="timeline"')[1].split("</table>")[0]
    assert re.search(r"<td>acknowledged</td><td>looking at the camera</td><td>oncall-ann</td>", timeline)
    assert re.search(r"<td>silenced</td><td>until [^<]*: camera swap</td><td>oncall-ann</td>", timeline)
    from components.alert.dispatcher import AlertDispatcher

    found = AlertDispatcher(world.spec.monitoring.alert_config(world.spec.runtime.root)).find(world.incident_id)  # type: ignore[union-attr]
    assert found.state.get("acked_by") == "oncall-ann" and found.silenced_by is not None


def test_runs_page_lists_remote_runs_through_the_runner(tmp_path: Path) -> None:
    """A spec whose retraining runs on Kubeflow: the runs page lists that orchestrator's runs (a KFP API server on 127.0.0.1)."""
    from fakes.ce_world import spec_data
    from fakes.console_world import serve_console
    from fakes.kfp_server import FakeKfpServer

    from components.core.lineage import LineageStore
    from components.core.spec import parse_spec
    from pipelines.console.data import ConsoleData

    with FakeKfpServer() as kfp:
        run_id = kfp.add_run("shelf-retrain-<b>1</b>", state="FAILED")
        spec = parse_spec(spec_data(tmp_path, retrain={"target": "kubeflow", "host": kfp.url}))
        with serve_console(spec) as base:
            html = requests.get(f"{base}/runs", timeout=60).text
    section = html.split("<h2>kubeflow runs</h2>")[1]
    assert run_id in section and "FAILED" in section and "shelf-retrain-&lt;b&gt;1&lt;/b&gt;" in section
    assert "cannot list" not in section
    assert any(c.path.startswith("/apis/v2beta1/runs") for c in kfp.calls("GET"))

    unreachable = parse_spec(spec_data(tmp_path, retrain={"target": "kubeflow", "host": "http://127.0.0.1:9"}))
    target, runs, error = ConsoleData(LineageStore(spec.runtime.metadata.url), None, unreachable, None).remote_runs()
    assert (target, runs) == ("kubeflow", []) and error  # said on the page, never a crash


def test_remote_run_page_shows_each_step_through_the_runner(tmp_path: Path) -> None:
    """A Kubeflow run's page, reached from the runs list: each step's state, start, duration and a failed step's error, as text."""
    from fakes.ce_world import spec_data
    from fakes.console_world import serve_console
    from fakes.kfp_server import FakeKfpServer

    from components.core.spec import parse_spec

    with FakeKfpServer() as kfp:
        run_id = kfp.add_run("shelf-retrain-7", state="FAILED")
        kfp.script_tasks(run_id, [("ingest", "SUCCEEDED", None), ("validate", "FAILED", "3 images missing: <script>alert(1)</script>")])
        tasks = {t["display_name"]: t for t in kfp.runs[run_id].body["run_details"]["task_details"]}
        spec = parse_spec(spec_data(tmp_path, retrain={"target": "kubeflow", "host": kfp.url}))
        with serve_console(spec) as base:
            listing = requests.get(f"{base}/runs", timeout=60).text
            link = f"/runs/remote/kubeflow/{run_id}"
            assert f'href="{link}"' in listing
            page = requests.get(f"{base}{link}", timeout=60)
            gets_before_missing = len(kfp.calls("GET", f"/runs/{run_id}"))
            missing = requests.get(f"{base}/runs/remote/kubeflow/no-such-run", timeout=60)
            other = requests.get(f"{base}/runs/remote/vertex/{run_id}", timeout=60)
    assert page.status_code == 200 and gets_before_missing >= 1
    table = page.text.split('<table id="steps">')[1].split("</table>")[0]
    rows = [re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", row)).strip() for row in table.split("<tr>")[2:]]
    ingest_start = tasks["ingest"]["start_time"].replace("T", " ").replace("Z", "")
    validate_start = tasks["validate"]["start_time"].replace("T", " ").replace("Z", "")
    assert rows == [
        f"ingest SUCCEEDED {ingest_start} 1 s",
        f"validate FAILED {validate_start} 1 s 3 images missing: &lt;script&gt;alert(1)&lt;/script&gt;",
    ]
    assert "<script>alert" not in page.text  # the error is text, never markup
    assert "shelf-retrain-7-x7k2p" not in table and "driver" not in table and "root" not in table
    assert missing.status_code == 404 and "no-such-run" in missing.text
    assert other.status_code == 404 and "monitoring.retrain names kubeflow" in other.text


def test_ui_needs_a_store(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from pipelines.cli.main import cli

    result = CliRunner().invoke(cli, ["ui"], env={"CVPIPE_METADATA": ""})
    assert result.exit_code == 2 and "--spec SPEC or --metadata URL" in result.output
    both = CliRunner().invoke(cli, ["ui", "--spec", "s.yaml", "--metadata", "sqlite:///x.sqlite"])
    assert both.exit_code == 2 and "not both" in both.output
    spec_wins = CliRunner().invoke(cli, ["ui", "--spec", str(tmp_path / "none.yaml")], env={"CVPIPE_METADATA": "sqlite:///x.sqlite"})
    assert spec_wins.exit_code == 1 and "not both" not in spec_wins.output and "none.yaml" in spec_wins.output
    missing = CliRunner().invoke(cli, ["ui", "--metadata", f"sqlite:///{tmp_path / 'none.sqlite'}"])
    assert missing.exit_code == 1 and "no ML Metadata store" in missing.output
    assert not (tmp_path / "none.sqlite").exists()


# --------------------------------------------------------------------------- browser


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        chromium = ensure_binary("chromium", "chromium")
    except ServiceUnavailable as e:
        pytest.skip(str(e))
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    """Where screenshots go: ``$CVPIPE_CONSOLE_SCREENSHOTS`` (to refresh the README's), else the test's directory."""
    out = Path(os.environ.get("CVPIPE_CONSOLE_SCREENSHOTS") or tmp_path / "screenshots")
    out.mkdir(parents=True, exist_ok=True)
    return out


class Tab:
    """A browser page that records console errors, failed requests and anything sent outside the console."""

    def __init__(self, browser: Any, base: str):
        self.page = browser.new_page(viewport={"width": 1280, "height": 900})
        self.errors: list[str] = []
        self.failed: list[str] = []
        self.outside: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("requestfailed", lambda r: self.failed.append(r.url))
        self.page.on("response", lambda r: self.failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)

        def route(r: Any) -> None:
            if r.request.url.startswith((base, "data:", "about:")):
                r.continue_()
            else:
                self.outside.append(r.request.url)
                r.abort()

        self.page.route("**/*", route)

    def clean(self) -> None:
        assert self.errors == [] and self.failed == [] and self.outside == [], (self.errors, self.failed, self.outside)


def test_click_through_overview_model_lineage_incident(browser: Any, console: str, world: ConsoleWorld, shots: Path) -> None:
    tab = Tab(browser, console)
    page = tab.page
    name = world.spec.model_name
    try:
        page.goto(console + "/", wait_until="load")
        page.screenshot(path=str(shots / "overview.png"), full_page=True)
        page.get_by_role("link", name=name, exact=True).first.click()
        page.wait_for_url(f"{console}/models/{name}")
        assert page.locator("#fork-tree-graph g.node").count() == 2
        assert page.locator("#fork-tree-graph g.edge").count() == 1
        page.screenshot(path=str(shots / "model.png"), full_page=True)
        page.locator(f"#fork_{world.v2_model} a").first.click()  # a node of the tree links to its version
        page.wait_for_url(f"{console}/models/{name}/versions/2")
        assert page.frame_locator("iframe.report").locator("body").inner_text().count("BLESSED") >= 1
        page.get_by_role("link", name="lineage", exact=True).click()
        page.wait_for_url(re.compile(r".*/lineage/\d+$"))
        assert page.locator(f"#lineage-graph #node_{world.alert_id}").count() == 1
        assert page.locator(f"#lineage-graph #node_{world.v1_model}").count() == 1
        page.screenshot(path=str(shots / "lineage.png"), full_page=True)
        page.locator(f"#node_{world.alert_id} a").first.click()
        page.wait_for_url(f"{console}/artifacts/{world.alert_id}")
        page.get_by_role("link", name=f"incident {world.incident_id}").click()
        page.wait_for_url(f"{console}/incidents/{world.incident_id}")
        timeline = page.locator("#timeline").inner_text()
        assert "fired" in timeline and "pushed as version 2" in timeline
        page.screenshot(path=str(shots / "incident.png"), full_page=True)
        page.goto(f"{console}/runs/shelf-train-1", wait_until="load")
        titles = [f.get_attribute("title") for f in page.locator("iframe.report").all()]
        assert titles == ["validate report", "evaluate report"]
        assert "Data validation" in page.frame_locator("iframe.report").first.locator("h1").inner_text()
        for path in (
            "/runs",
            f"/models/{name}/compare?a=1&b=2",
            f"/models/{name}/monitoring",
            f"/data/batches/{world.batch_id}",
            "/incidents",
            "/actions",
            "/data",
        ):
            page.goto(console + path, wait_until="load")
        page.get_by_role("link", name="images").first.click()
        page.wait_for_url(re.compile(r".*/data/manifests/\d+$"))
        assert page.locator("#image-grid figure").count() > 0 and page.locator("#image-grid rect").count() > 0
        page.screenshot(path=str(shots / "images.png"), full_page=True)
        tab.clean()
    finally:
        page.close()


def test_rollback_in_the_browser_moves_the_alias_and_is_recorded(browser: Any, console: str, world: ConsoleWorld) -> None:
    registry = open_registry(load_spec(world.spec_path), create=False)
    name = world.spec.model_name
    registry.set_alias(name, "champion", 2)  # whatever ran before: champion is on 2, and 1 held it before
    tab = Tab(browser, console)
    page = tab.page
    try:
        page.goto(f"{console}/models/{name}", wait_until="load")
        page.locator("p.actions a", has_text="champion").click()
        page.wait_for_url(re.compile(r".*/rollback\?alias=champion$"))
        page.fill("#f-by", "pw-tester")
        page.fill("#f-token", TOKEN)
        page.click("#confirm")
        page.wait_for_url(f"{console}/models/{name}#alias-history")
        first = page.locator("#alias-history-table tr").nth(1).inner_text()
        assert "rollback" in first and "pw-tester" in first
        assert _champion(world) == 1
        tab.clean()
    finally:
        page.close()
        registry.set_alias(name, "champion", 2)


def test_rollback_without_a_token_is_refused_in_the_browser(browser: Any, read_only: str, world: ConsoleWorld) -> None:
    before = _champion(world)
    page = browser.new_page()
    try:
        response = page.goto(f"{read_only}/models/{world.spec.model_name}/rollback?alias=champion", wait_until="load")
        assert response.status == 403 and "read-only" in page.inner_text("main")
        assert page.locator("#f-token").count() == 0
        assert _champion(world) == before
    finally:
        page.close()


def test_script_in_a_class_name_does_not_run(browser: Any, console: str) -> None:
    tab = Tab(browser, console)
    try:
        tab.page.goto(f"{console}/data", wait_until="load")
        assert tab.page.evaluate("window.__pwned") is None
        assert "window.__pwned=1" in tab.page.locator("#label-maps").inner_text()
        tab.clean()
    finally:
        tab.page.close()
