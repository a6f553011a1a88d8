"""``cvpipe ui`` over ML Metadata on MySQL (MariaDB), the store a cluster uses: the same pages as over SQLite.

The store is built by the project's own steps (tests/fakes/console_world.py: two versions of
a model, the second a retraining an incident started) with ``runtime.metadata.url`` on a real
MariaDB started on 127.0.0.1 (the ``mariadb`` fixture of tests/conftest.py, installed when missing).
The console runs as a process given the password the way a deployment gives it
(``$CVPIPE_MLMD_PASSWORD``), once by the spec and once by the metadata URL alone.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator

import pytest
import requests
from fakes.console_world import ConsoleWorld, build_console_world
from fakes.mariadb import MariaDB
from services.processes import Service, ServiceUnavailable, ensure_binary, free_port

from components.core.lineage import MYSQL_PASSWORD_ENV

pytestmark = pytest.mark.mysql


@pytest.fixture(scope="module")
def world(mariadb: MariaDB, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleWorld]:
    try:
        ensure_binary("dot", "graphviz")
    except ServiceUnavailable as e:
        pytest.skip(str(e))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(MYSQL_PASSWORD_ENV, mariadb.password)
        url = mariadb.create_database("console")
        yield build_console_world(tmp_path_factory.mktemp("console-mysql"), f"http://127.0.0.1:{free_port()}", metadata_url=url)


def _serve(world: ConsoleWorld, mariadb: MariaDB, store: list[str], name: str) -> Service:
    port = free_port()
    argv = [sys.executable, "-m", "pipelines.cli", "ui", *store, "--port", str(port)]
    env = {MYSQL_PASSWORD_ENV: mariadb.password, "CVPIPE_CONSOLE_TOKEN": ""}
    return Service(name, argv, f"http://127.0.0.1:{port}/", world.root / f"{name}.log", env=env, deadline_s=180)


def test_the_console_serves_a_mysql_store_by_spec_and_by_metadata_url(world: ConsoleWorld, mariadb: MariaDB) -> None:
    url = world.spec.runtime.metadata.url
    assert url.startswith("mysql://") and mariadb.password not in url
    for store, name in ((["--spec", str(world.spec_path)], "by-spec"), (["--metadata", url], "by-url")):
        with _serve(world, mariadb, store, f"console-mysql-{name}") as service:
            base = service.ready_url.rstrip("/")
            overview = requests.get(f"{base}/", timeout=60)
            assert overview.status_code == 200, overview.text[-2000:]
            assert "/models/shelf" in overview.text
            model = requests.get(f"{base}/models/shelf", timeout=60).text
            table = model.split('id="versions-table"')[1].split("</table>")[0]
            assert table.count("<tr>") == 3, table  # header + both versions
            tree = model.split('id="fork-tree"')[1]
            assert re.search(r"<title>m\d+&#45;&gt;m\d+</title>", tree), "the fork tree draws v2 as v1's child"
            lineage = requests.get(f"{base}/lineage/{world.v2_model}", timeout=60).text.split('id="lineage-graph"')[1]
            for node in (world.v2_model, world.v1_model, world.alert_id, world.batch_id):
                assert f'id="node_{node}"' in lineage, node
            runs = requests.get(f"{base}/runs", timeout=60).text
            assert "shelf-train-2" in runs and "pushed shelf:2" in runs
            incident = requests.get(f"{base}/incidents", timeout=60)
            assert incident.status_code == 200
