"""The Label Studio round trip against a real Label Studio 1.23 server (PyPI ``label-studio``, its own environment).

A labelling batch goes to a real project as tasks with the model's
pre-annotations, is annotated through Label Studio's API (as a person's
annotations arrive), and comes back through its JSON export into cvpipe's
ground truth. The same calls against tests/fakes/label_studio_server.py must
answer in the same shapes: that is what the fake's answers are checked against.
The server starts once per session (tests/conftest.py, about 30 s idle).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import requests
from fakes.label_studio_server import FakeLabelStudio
from predict_testdata import make_images

from components.core.errors import LabellingError
from components.core.labelmap import LabelMap
from components.sample.core import LabellingBatch, SampledItem, SamplingConfig
from components.sample.labelstudio import LabelStudioClient, import_export, label_config, to_tasks
from components.sample.simulate import simulate_labels

LABELS = LabelMap.from_names(["circle", "square", "star"])
T0 = datetime(2026, 12, 1, tzinfo=UTC)


@pytest.fixture
def batch_and_truth(tmp_path):
    truth = make_images(tmp_path / "images", 6, LABELS, "detection", seed=4)
    items = []
    for n, rec in enumerate(truth.images):
        pred = {"task": "detection", "width": rec.width, "height": rec.height, "class_ids": [1], "scores": [0.8], "boxes": [[2, 2, 12, 10]]}
        items.append(
            SampledItem(
                stratum=("random", "class", "uncertain")[n % 3],
                request_id=f"req{n}",
                image_sha256=rec.sha256,
                image_uri=str(truth.image_path(rec)),
                width=rec.width,
                height=rec.height,
                model_name="detector",
                model_version=3,
                event_timestamp=T0,
                predicted_class=1,
                predicted_class_name="square",
                top_score=0.8,
                predictions=json.dumps(pred),
            )
        )
    batch = LabellingBatch(
        batch_id="lb-real",
        created=T0,
        model_name="detector",
        task="detection",
        label_map=LABELS,
        window_start=T0 - timedelta(days=1),
        window_end=T0,
        config=SamplingConfig(),
        items=items,
    )
    return batch, truth


def _annotate_through_the_api(url: str, token: str, pid: int, answers: dict[str, list], only: str | None = None) -> int:
    """What a person's annotations look like to Label Studio: ``POST /api/tasks/{id}/annotations`` per task."""
    h = {"Authorization": f"Token {token}"}
    listed = requests.get(f"{url}/api/tasks", params={"project": pid, "page_size": 100}, headers=h, timeout=30)
    listed.raise_for_status()
    tasks = [t for t in listed.json()["tasks"] if only is None or t["data"]["image_sha256"] == only]
    for t in tasks:
        result = answers[t["data"]["image_sha256"]]
        r = requests.post(f"{url}/api/tasks/{t['id']}/annotations", json={"result": result}, headers=h, timeout=30)
        assert r.status_code == 201, r.text
    return len(tasks)


def test_a_labelling_batch_round_trips_through_a_real_label_studio(label_studio_server, batch_and_truth, monkeypatch) -> None:
    url, token = label_studio_server
    batch, truth = batch_and_truth
    monkeypatch.setenv("CVPIPE_TEST_LS_TOKEN", token)
    client = LabelStudioClient(url, token_env="CVPIPE_TEST_LS_TOKEN")
    pid = client.create_project("cvpipe detector lb-real", label_config("detection", LABELS))
    tasks = to_tasks(batch)
    answer = client.import_tasks(pid, tasks)
    assert (answer["task_count"], answer["prediction_count"], answer["annotation_count"]) == (6, 6, 0)

    # people answer with the true boxes (drawn in Label Studio's own result format)
    people = simulate_labels(batch, truth, completed_at=T0 + timedelta(hours=2))
    answers = {t["data"]["image_sha256"]: t["annotations"][0]["result"] for t in people}
    assert _annotate_through_the_api(url, token, pid, answers) == 6

    exported = client.export(pid)
    assert len(exported) == 6
    # the model's pre-annotations travelled with the tasks
    sent = {t["data"]["image_sha256"]: t["predictions"][0]["result"] for t in tasks}
    for t in exported:
        pre = t["annotations"][0]["prediction"]["result"] if t["annotations"][0].get("prediction") else None
        stored = pre or (t.get("predictions") or [{}])[0].get("result")
        if stored is not None:
            assert [r["value"] for r in stored] == [r["value"] for r in sent[t["data"]["image_sha256"]]]
    result = import_export(exported, "detection", LABELS, batch=batch)
    assert len(result.labels) == 6 and len(result.quarantine) == 0 and result.unlabelled == []
    # cvpipe's ground truth is the truth: same classes, boxes within a pixel (percent round trip)
    truth_by_sha = {r.sha256: r for r in truth.images}
    for rec in result.manifest.images:
        want = truth_by_sha[rec.sha256]
        assert sorted(o.class_id for o in rec.objects) == sorted(o.class_id for o in want.objects)
        for got, exp in zip(sorted(rec.objects, key=lambda o: o.bbox), sorted(want.objects, key=lambda o: o.bbox), strict=True):
            assert got.bbox == pytest.approx(exp.bbox, abs=1.0)
    assert {row.labelling_batch_id for row in result.labels} == {"lb-real"}


def test_the_fake_answers_in_the_real_servers_shapes(label_studio_server, batch_and_truth, monkeypatch) -> None:
    url, token = label_studio_server
    batch, _ = batch_and_truth
    monkeypatch.setenv("CVPIPE_TEST_LS_TOKEN", token)
    tasks = to_tasks(batch)[:2]
    result = tasks[0]["predictions"][0]["result"]
    answers = {}
    with FakeLabelStudio(token=token) as fake:
        for name, base in (("real", url), ("fake", fake.url)):
            c = LabelStudioClient(base, token_env="CVPIPE_TEST_LS_TOKEN", attempts=1)
            pid = c.create_project("cvpipe shape check", label_config("detection", LABELS))
            answers[name] = {"import": c.import_tasks(pid, tasks)}
            # one of the two tasks is annotated: Label Studio exports only annotated tasks by default
            if name == "real":
                sha = tasks[0]["data"]["image_sha256"]
                _annotate_through_the_api(base, token, pid, {sha: result}, only=sha)
            else:
                fake.annotate(pid, lambda t: [{"id": 1, "result": result}] if t["data"] == tasks[0]["data"] else [])
            answers[name]["export"] = c.export(pid)
            no_token = requests.get(f"{base}/api/projects/{pid}/export", params={"exportType": "JSON"}, timeout=30)
            answers[name]["401"] = (no_token.status_code, no_token.json()["detail"])
    real, fake_ = answers["real"], answers["fake"]
    assert set(fake_["import"]) <= set(real["import"])
    assert {k: fake_["import"][k] for k in fake_["import"]} == {k: real["import"][k] for k in fake_["import"]}
    assert fake_["401"] == real["401"]
    assert [t["data"] for t in fake_["export"]] == [t["data"] for t in real["export"]] == [tasks[0]["data"]]
    assert {"id", "data", "annotations", "predictions"} <= set(real["export"][0]) & set(fake_["export"][0])


def test_a_wrong_token_is_refused_not_retried(label_studio_server, monkeypatch) -> None:
    url, _ = label_studio_server
    monkeypatch.setenv("CVPIPE_TEST_LS_TOKEN", "not-the-token")
    with pytest.raises(LabellingError, match="HTTP 401"):
        LabelStudioClient(url, token_env="CVPIPE_TEST_LS_TOKEN").create_project("cvpipe x", label_config("detection", LABELS))
