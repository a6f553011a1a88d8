"""``cvpipe serve`` as a real process on 127.0.0.1: protocols, batching, bounds, alias following, SIGKILL replay, SIGTERM drain.

The model is a tiny real SavedModel (tests/unit/predict_testdata.py) in the
local registry. Clients are ``requests`` and raw sockets that stall on purpose
(slow headers, slow bodies, idle connections). Two server processes: one shared
by the protocol, batching, bounds and alias tests, one killed and restarted.
"""

from __future__ import annotations

import base64
import io
import json
import signal
import socket
import threading
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import requests
import yaml
from PIL import Image
from predict_testdata import make_images, make_tiny_model
from serve_testdata import ServerProcess, open_post, response, wait_for

from components.core.io import sha256_file
from components.core.labelmap import LabelMap
from components.core.spec import load_spec
from components.registry import RegisterRequest
from components.registry.cli_ops import open_registry

LABELS = LabelMap.from_names(["circle", "square", "star"])
SERVING = {
    "max_batch_size": 4,
    "max_batch_wait_ms": 1000,
    "max_queue": 4,
    "max_instances": 4,
    "max_request_megapixels": 0.05,
    "max_connections": 8,
    "header_timeout_s": 2,
    "body_timeout_s": 5,
    "max_body_mb": 0.25,
    "log_roll_seconds": 0.5,
    "score_threshold": 0.5,
    "max_detections": 2,
    "follow_seconds": 0.2,
}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve")
    spec = root / "spec.yaml"
    spec.write_text(
        yaml.safe_dump(
            {
                "name": "shapes",
                "task": "detection",
                "data": {"source": str(root / "annotations.json")},
                "registry": {"root": str(root / "registry")},
                "runtime": {"root": str(root / "runs"), "metadata": {"url": f"sqlite:///{root / 'mlmd.sqlite'}"}},
                "serving": SERVING,
            }
        )
    )
    registry = open_registry(load_spec(spec))
    for seed, aliases in ((0, ["champion"]), (1, [])):
        model = make_tiny_model(root / f"model{seed}", "detection", LABELS, seed=seed)
        registry.register(RegisterRequest(model_dir=model, model_name="shapes", blessed=True, aliases=aliases))
    manifest = make_images(root / "images", 8, LABELS, "detection", seed=1)
    images = [manifest.image_path(r).read_bytes() for r in manifest.images]
    return {"root": root, "spec": spec, "registry": registry, "images": images, "shas": [r.sha256 for r in manifest.images]}


@pytest.fixture(scope="module")
def server(world):
    srv = ServerProcess(world["spec"], "shapes@champion", world["root"] / "server.log").start()
    yield srv
    srv.kill()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _logged(repo: Path) -> dict[str, dict]:
    d = repo / "data" / "predictions"
    if not any(d.glob("*.parquet")):
        return {}
    return {r["request_id"]: r for r in pq.read_table(d).to_pylist()}


def test_protocols_answer_and_log_with_the_server_kept_image(server, world):
    u, img = server.url, world["images"]
    assert requests.get(f"{u}/v2/health/live", timeout=30).json() == {"live": True}
    assert requests.get(f"{u}/v2/health/ready", timeout=30).json() == {"ready": True}
    meta = requests.get(f"{u}/v2/models/shapes", timeout=30)
    version = meta.headers["X-Model-Version"]
    assert meta.json()["versions"] == [version] and meta.json()["inputs"][0]["datatype"] == "BYTES"
    status = requests.get(f"{u}/v1/models/shapes", timeout=30).json()["model_version_status"][0]
    assert status["state"] == "AVAILABLE" and status["version"] == version
    assert requests.get(f"{u}/v2/models/nope", timeout=30).status_code == 404

    raw = requests.post(f"{u}/v1/predict", data=img[0], headers={"Content-Type": "image/png", "X-Request-Id": "proto-raw"}, timeout=60)
    assert raw.status_code == 200, raw.text
    first = raw.json()["predictions"][0]
    assert first["request_id"] == "proto-raw" and first["image_sha256"] == world["shas"][0]
    assert len(first["boxes"]) <= 2 and all(s >= 0.5 for s in first["scores"])  # spec's threshold and max detections
    assert first["num_detections"] >= len(first["boxes"]) and str(first["model_version"]) == raw.headers["X-Model-Version"]

    mixed = requests.post(f"{u}/v1/predict", json={"instances": [{"b64": _b64(img[1])}, {"b64": _b64(b"garbage")}]}, timeout=60)
    assert mixed.status_code == 200
    assert "boxes" in mixed.json()["predictions"][0] and "cannot decode" in mixed.json()["predictions"][1]["error"]

    tfs = requests.post(f"{u}/v1/models/shapes:predict", json={"instances": [{"image_bytes": {"b64": _b64(img[2])}}]}, timeout=60)
    assert tfs.status_code == 200 and tfs.json()["predictions"][0]["image_sha256"] == world["shas"][2]
    bad = requests.post(f"{u}/v1/models/shapes:predict", json={"instances": [{"b64": _b64(img[2])}, {"b64": _b64(b"x")}]}, timeout=60)
    assert bad.status_code == 400 and "image 1" in bad.json()["error"]

    v2 = requests.post(
        f"{u}/v2/models/shapes/infer",
        json={
            "id": "proto-v2",
            "inputs": [{"name": "image_bytes", "datatype": "BYTES", "shape": [2], "data": [_b64(img[3]), _b64(img[4])]}],
        },
        timeout=60,
    )
    assert v2.status_code == 200, v2.text
    outputs = {o["name"]: o for o in v2.json()["outputs"]}
    assert [json.loads(p)["request_id"] for p in outputs["predictions"]["data"]] == ["proto-v2-0", "proto-v2-1"]
    assert outputs["top_score"]["shape"] == [2] and v2.json()["model_version"] == version

    uri = requests.post(f"{u}/v1/predict", json={"instances": [{"b64": _b64(img[5]), "image_uri": "/root/.ssh/id_rsa"}]}, timeout=60)
    assert uri.status_code == 400 and "image_uri is not accepted" in uri.json()["error"]
    assert requests.post(f"{u}/v1/predict", data=b"{nope", headers={"Content-Type": "application/json"}, timeout=30).status_code == 400
    assert requests.get(f"{u}/nowhere", timeout=30).status_code == 404

    repo = world["root"] / "runs" / "prediction_log"
    rows = wait_for(lambda: (lambda r: r if {"proto-raw", "proto-v2-1"} <= set(r) else None)(_logged(repo)), "rows rolled into parquet")
    kept = Path(rows["proto-raw"]["image_uri"])
    assert kept.parent.parent == repo.resolve() / "data" / "images" and sha256_file(kept) == world["shas"][0]
    assert all(Path(r["image_uri"]).parent.parent == kept.parent.parent for r in rows.values())
    assert json.loads(rows["proto-raw"]["predictions"])["scores"] == sorted(
        json.loads(rows["proto-raw"]["predictions"])["scores"], reverse=True
    )
    assert rows["proto-raw"]["num_detections"] == first["num_detections"]  # every box logged, answers trimmed


def test_concurrent_requests_share_model_calls(server, world):
    calls = server.metric("cvpipe_serve_batch_size_count")
    images = server.metric("cvpipe_serve_batch_size_sum")
    barrier = threading.Barrier(4)
    statuses: list[int] = []

    def client(i: int) -> None:
        barrier.wait()
        r = requests.post(f"{server.url}/v1/predict", data=world["images"][i], headers={"Content-Type": "image/png"}, timeout=120)
        statuses.append(r.status_code)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [200] * 4
    assert server.metric("cvpipe_serve_batch_size_sum") - images == 4
    assert server.metric("cvpipe_serve_batch_size_count") - calls < 4  # at least two requests in one model call


def _png(width: int, height: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((height, width, 3), 127, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def test_bounds_hold_against_oversized_and_slow_clients(server, world):
    u, img = server.url, world["images"]
    big = requests.post(f"{u}/v1/predict", data=b"x" * 300_000, headers={"Content-Type": "image/png"}, timeout=30)
    assert big.status_code == 413
    s = socket.create_connection(("127.0.0.1", server.port), timeout=60)
    # a head claiming a 10 MB body is refused before any of it is read
    s.sendall(b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: 10000000\r\n\r\n")
    assert response(s)[0] == 413
    s.close()
    many = requests.post(f"{u}/v1/predict", json={"instances": [{"b64": _b64(img[0])}] * 5}, timeout=30)
    assert many.status_code == 413 and "limit is 4" in many.json()["error"]
    pixels = requests.post(f"{u}/v1/predict", data=_png(300, 300), headers={"Content-Type": "image/png"}, timeout=30)
    assert pixels.status_code == 413 and "pixels" in pixels.json()["error"]

    # a client that never finishes its request head is disconnected
    slow_head = socket.create_connection(("127.0.0.1", server.port), timeout=60)
    slow_head.sendall(b"POST /v1/predict HTTP/1.1\r\nHost: x\r\n")
    assert slow_head.recv(1) == b""
    slow_head.close()
    # a body that stops arriving is answered 408
    slow_body = open_post(server.port, "/v1/predict", b"\0" * 1000, 10)
    assert response(slow_body)[0] == 408
    slow_body.close()

    # requests admitted at once are bounded: the fifth gets 503 with Retry-After, the four finish
    holders = [open_post(server.port, "/v1/predict", img[i], 10) for i in range(4)]
    wait_for(lambda: server.metric("cvpipe_serve_queue_depth") == 4, "four requests admitted")
    busy = requests.post(f"{u}/v1/predict", data=img[4], headers={"Content-Type": "image/png"}, timeout=30)
    assert busy.status_code == 503 and busy.headers["Retry-After"] == "1"
    for i, h in enumerate(holders):
        h.sendall(img[i][10:])
    for h in holders:
        status, _, body = response(h)
        assert status == 200, body
        h.close()

    # connections are bounded: with eight open, the next request is refused
    idle = [socket.create_connection(("127.0.0.1", server.port), timeout=60) for _ in range(8)]
    extra = socket.create_connection(("127.0.0.1", server.port), timeout=60)
    extra.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert response(extra)[0] == 503
    for c in [*idle, extra]:
        c.close()
    assert "Traceback" not in busy.text and server.proc is not None and server.proc.poll() is None


def test_alias_switch_during_traffic_fails_no_request(server, world):
    registry = world["registry"]
    old = registry.resolve("shapes@champion").version
    new = 2 if old == 1 else 1
    stop = threading.Event()
    seen: list[tuple[int, int]] = []

    def client(i: int) -> None:
        with requests.Session() as s:
            while not stop.is_set():
                r = s.post(f"{server.url}/v1/predict", data=world["images"][i], headers={"Content-Type": "image/png"}, timeout=120)
                seen.append((r.status_code, int(r.headers.get("X-Model-Version", 0))))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    try:
        wait_for(lambda: len(seen) >= 3, "traffic before the switch")
        registry.set_alias("shapes", "champion", new)
        wait_for(lambda: sum(1 for _, v in seen if v == new) >= 3, "answers from the new version", timeout=300)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert {status for status, _ in seen} == {200}
    assert {v for _, v in seen} == {old, new}
    assert requests.get(f"{server.url}/v2/models/shapes", timeout=30).json()["versions"] == [str(new)]
    assert server.metric(f'cvpipe_serve_model_info{{name="shapes",task="detection",version="{new}"}}') == 1.0


def test_sigkill_replays_the_write_ahead_log_and_sigterm_drains(world, tmp_path):
    repo = tmp_path / "feast"
    args = ("--feature-repo", str(repo), "--log-roll-seconds", "3600", "--max-batch-wait-ms", "0")
    first = ServerProcess(world["spec"], "shapes:1", tmp_path / "first.log", *args).start()
    acked = []
    for i in range(6):
        r = requests.post(
            f"{first.url}/v1/predict",
            data=world["images"][i],
            headers={"X-Request-Id": f"kill-{i}", "Content-Type": "image/png"},
            timeout=60,
        )
        assert r.status_code == 200
        acked.append(f"kill-{i}")
    segments = list((repo / "data" / "wal").glob("wal-*.jsonl"))
    assert len(segments) == 1 and not _logged(repo)  # durable in the write-ahead log, not rolled yet
    first.kill()
    with open(segments[0], "ab") as f:  # a batch torn mid-write by the kill: never acknowledged
        f.write(b'{"event_timestamp": "2026-')

    second = ServerProcess(world["spec"], "shapes:1", tmp_path / "second.log", *args).start()
    try:
        assert sorted(_logged(repo)) == acked  # replayed before serving, each row once
        assert "1 torn lines dropped" in second.stderr()
        held = open_post(second.port, "/v1/predict", world["images"][7], 10)
        wait_for(lambda: second.metric("cvpipe_serve_queue_depth") == 1, "a request in flight")
        second.proc.send_signal(signal.SIGTERM)
        held.sendall(world["images"][7][10:])
        status, headers, _ = response(held)
        assert status == 200
        drained = headers["x-request-id"]
        assert second.proc.wait(120) in (0, -15)
    finally:
        second.kill()
    rows = _logged(repo)
    assert sorted(rows) == sorted([*acked, drained])
    assert len(pq.read_table(repo / "data" / "predictions").column("request_id")) == 7
    assert not list((repo / "data" / "wal").glob("wal-*.jsonl"))


class _Broken:
    """A predictor whose model call fails with a message that must not reach clients (a protocol edge case)."""

    task = "detection"
    label_map = LABELS
    image_size = (32, 32)

    def predict_pixels(self, pixels):
        raise RuntimeError("cannot open /srv/secret/weights.bin")


def test_a_failed_model_call_answers_500_without_the_exception_text(world):
    import asyncio

    import httpx

    from components.core.spec import ServingSpec
    from components.predict.core import ServedModel
    from components.predict.server import PredictionService, build_app

    async def run() -> httpx.Response:
        service = PredictionService(ServedModel(_Broken(), "shapes", 1), ServingSpec(max_batch_wait_ms=0))  # type: ignore[arg-type]
        await service.startup()
        try:
            transport = httpx.ASGITransport(app=build_app(service))
            async with httpx.AsyncClient(transport=transport, base_url="http://serve") as client:
                return await client.post("/v1/predict", content=world["images"][0], headers={"Content-Type": "image/png"})
        finally:
            await service.shutdown()

    r = asyncio.run(run())
    assert r.status_code == 500 and "secret" not in r.text and "RuntimeError" not in r.text
    assert r.json() == {"error": "internal error; see the server log", "request_id": r.headers["X-Request-Id"]}


class _Gated:
    """A predictor that holds its batch until the test opens the gate (a protocol edge case: pixels in flight)."""

    task = "detection"
    label_map = LABELS
    image_size = (32, 32)

    def __init__(self) -> None:
        self.gate = threading.Event()

    def predict_pixels(self, pixels):
        from components.core.predictor import ImagePrediction

        self.gate.wait(120)
        return [ImagePrediction(width=p.shape[1], height=p.shape[0]) for p in pixels]


def test_decoded_pixels_in_flight_are_bounded(world):
    import asyncio

    import httpx

    from components.core.spec import ServingSpec
    from components.predict.core import ServedModel
    from components.predict.server import PredictionService, build_app

    predictor = _Gated()
    # each test image is 48x40 = 1,920 pixels: one fits in flight, two do not
    config = ServingSpec(max_batch_wait_ms=0, max_request_megapixels=0.002, max_inflight_megapixels=0.003)

    async def run() -> tuple[int, str | None, int]:
        service = PredictionService(ServedModel(predictor, "shapes", 1), config)  # type: ignore[arg-type]
        await service.startup()
        try:
            transport = httpx.ASGITransport(app=build_app(service))
            async with httpx.AsyncClient(transport=transport, base_url="http://serve", timeout=120) as client:
                headers = {"Content-Type": "image/png"}
                first = asyncio.create_task(client.post("/v1/predict", content=world["images"][0], headers=headers))
                while service._pixels == 0:
                    await asyncio.sleep(0.01)
                second = await client.post("/v1/predict", content=world["images"][1], headers=headers)
                predictor.gate.set()
                return second.status_code, second.headers.get("Retry-After"), (await first).status_code
        finally:
            predictor.gate.set()
            await service.shutdown()

    assert asyncio.run(run()) == (503, "1", 200)
