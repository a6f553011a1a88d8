"""Benchmark: the prediction server under 32 concurrent HTTP clients against the model's own batched predict.

One run, one machine, the same small exported model (the untrained compact
detector at its input size, exported as training exports it, registered in a
local registry) and the same images:

(a) baseline: ``Predictor.predict_pixels`` in this process on the decoded images,
    in batches of the server's ``max_batch_size`` (no HTTP, no decoding, no logging);
(b) cvpipe: ``cvpipe serve`` as a separate process; 32 client threads post the raw
    encoded images to ``/v1/predict`` on 127.0.0.1 (decoding, dynamic batching, the
    fsync'd write-ahead log and the answer all included).

Prints images/s of both, **b/a** (target >= 0.7), p50 and p99 latency, then, after
SIGTERM, the rows in the prediction log (must equal the 2xx answers) and the parquet
files written (target: at most one per flush interval, not one per request).

Part two sends ``--kill-requests`` requests from 32 clients to a server of the
same detector at 64x64 input (durability, not throughput, is measured), SIGKILLs
it once half are acknowledged, restarts it on the same port and sends the rest
(a request that failed while it was down is sent again); prints acknowledged
(2xx) request ids against logged rows (target: every acknowledged row logged,
none twice).

Both parts share the machine with the client threads; the clients' CPU counts against (b)::

    .venv/bin/python bench/serve.py --seconds 30 --kill-requests 10000
"""

from __future__ import annotations

import argparse
import io
import os
import signal
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "unit"))

import numpy as np
import requests
import yaml

CLIENTS = 32


def _images(n: int, size: tuple[int, int], seed: int = 0) -> list[bytes]:
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        h, w = size
        im = Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
        d = ImageDraw.Draw(im)
        for _ in range(3):
            x, y = int(rng.integers(0, w - 40)), int(rng.integers(0, h - 40))
            d.ellipse([x, y, x + 40, y + 40], fill=tuple(int(v) for v in rng.integers(0, 255, 3)))
        buf = io.BytesIO()
        im.save(buf, format="JPEG", quality=90)
        out.append(buf.getvalue())
    return out


def _setup(root: Path, image_size: int, serving: dict[str, Any]) -> Path:
    from components.core.labelmap import LabelMap
    from components.core.spec import load_spec
    from components.registry import RegisterRequest
    from components.registry.cli_ops import open_registry
    from components.train.export import export_saved_model
    from components.train.models import build_model

    spec = root / "spec.yaml"
    spec.write_text(
        yaml.safe_dump(
            {
                "name": "bench",
                "task": "detection",
                "data": {"source": str(root / "annotations.json")},
                "registry": {"root": str(root / "registry")},
                "runtime": {"root": str(root / "runs"), "metadata": {"url": f"sqlite:///{root / 'mlmd.sqlite'}"}},
                "serving": serving,
            }
        )
    )
    labels = LabelMap.from_names(["circle", "square", "star"])
    registry = open_registry(load_spec(spec))
    for name, side in (("bench", image_size), ("benchsmall", 64)):
        size = (side, side)
        model = build_model("detection", "compact_detector", labels.num_classes, size)
        info = {"task": "detection", "architecture": "compact_detector", "image_size": list(size), "model_name": name}
        export_saved_model(model, "detection", size, labels, root / name, info)
        registry.register(RegisterRequest(model_dir=root / name, model_name=name, blessed=True, aliases=["champion"]))
    return spec


def baseline(model_dir: Path, images: list[bytes], batch: int, seconds: float) -> float:
    """Images/s of the model's batched predict on decoded images, in this process."""
    from components.core.images import decode_rgb
    from components.core.predictor import Predictor

    predictor = Predictor.load(model_dir)
    pixels = [decode_rgb(b) for b in images]
    batches = [pixels[i : i + batch] for i in range(0, len(pixels), batch)]
    predictor.predict_pixels(batches[0])  # trace
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for b in batches:
            predictor.predict_pixels(b)
            done += len(b)
    return done / (time.perf_counter() - start)


def _clients(
    url: str, images: list[bytes], stop: threading.Event, budget: list[int] | None, acked: list[str], lat: list[float], errors: list[str]
) -> list[threading.Thread]:
    lock = threading.Lock()

    def run(k: int) -> None:
        with requests.Session() as s:
            i = k
            while not stop.is_set():
                if budget is not None:
                    with lock:
                        if budget[0] <= 0:
                            return
                        budget[0] -= 1
                rid = uuid.uuid4().hex
                t = time.perf_counter()
                try:
                    r = s.post(
                        f"{url}/v1/predict",
                        data=images[i % len(images)],
                        headers={"Content-Type": "image/jpeg", "X-Request-Id": rid},
                        timeout=120,
                    )
                except requests.RequestException as e:
                    errors.append(type(e).__name__)
                    if budget is not None:  # the server is gone: not acknowledged; sent again once it is back
                        with lock:
                            budget[0] += 1
                        stop.wait(0.05)
                    continue
                finally:
                    i += CLIENTS
                if r.status_code == 200:
                    lat.append(time.perf_counter() - t)
                    acked.append(rid)
                else:
                    errors.append(str(r.status_code))

    return [threading.Thread(target=run, args=(k,), daemon=True) for k in range(CLIENTS)]


def _logged(repo: Path) -> list[str]:
    import pyarrow.parquet as pq

    d = repo / "data" / "predictions"
    return pq.read_table(d).column("request_id").to_pylist() if any(d.glob("*.parquet")) else []


def main() -> None:
    from serve_testdata import ServerProcess

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=30.0, help="Length of each throughput measurement.")
    ap.add_argument("--image-size", type=int, default=224, help="Model input size (divisible by 32).")
    ap.add_argument("--images", type=int, default=64, help="Distinct images (640x480 JPEG).")
    ap.add_argument("--max-batch-size", type=int, default=32)
    ap.add_argument("--flush-seconds", type=float, default=5.0, help="serving.log_roll_seconds.")
    ap.add_argument("--kill-requests", type=int, default=10_000, help="Requests of the SIGKILL part (0: skip it).")
    args = ap.parse_args()
    serving = {
        "max_batch_size": args.max_batch_size,
        "max_batch_wait_ms": 5,
        "max_queue": 256,
        "log_roll_seconds": args.flush_seconds,
        "log_roll_rows": 100_000,
    }
    root = Path(tempfile.mkdtemp(prefix="cvpipe-bench-serve-"))
    spec = _setup(root, args.image_size, serving)
    images = _images(args.images, (480, 640))
    print(f"model: compact_detector {args.image_size}x{args.image_size}, {args.images} JPEG images 640x480, {os.cpu_count()} CPUs")

    a = baseline(root / "bench", images, args.max_batch_size, args.seconds)
    print(f"(a) in-process batched predict:  {a:8.1f} images/s (batches of {args.max_batch_size})")

    repo = root / "log1"
    server = ServerProcess(spec, "bench@champion", root / "server1.log", "--feature-repo", str(repo)).start()
    born = time.perf_counter()
    stop = threading.Event()
    acked: list[str] = []
    lat: list[float] = []
    errors: list[str] = []
    warm = _clients(server.url, images, stop, [CLIENTS * 4], [], [], [])
    for t in warm:
        t.start()
    for t in warm:
        t.join()
    threads = _clients(server.url, images, stop, None, acked, lat, errors)
    start = time.perf_counter()
    for t in threads:
        t.start()
    stop.wait(args.seconds)
    stop.set()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    b = len(acked) / wall
    server.terminate()
    lifetime = time.perf_counter() - born
    logged = _logged(repo)
    files = len(list((repo / "data" / "predictions").glob("*.parquet")))
    q = statistics.quantiles(lat, n=100)
    print(f"(b) HTTP, {CLIENTS} clients:           {b:8.1f} images/s   b/a = {b / a:.2f} (target >= 0.7)")
    print(f"    latency p50 {q[49] * 1000:.1f} ms, p99 {q[98] * 1000:.1f} ms; non-2xx/errors: {len(errors)}")
    warm_rows = CLIENTS * 4
    print(
        f"    logged rows {len(logged) - warm_rows} = 2xx answers {len(acked)}: {len(logged) - warm_rows == len(acked)}; "
        f"parquet files {files} over the server's {lifetime:.0f} s (flush every {args.flush_seconds:g} s: at most "
        f"{int(lifetime // args.flush_seconds) + 1}, one per request would be {len(logged)})"
    )

    if args.kill_requests <= 0:
        return
    repo = root / "log2"
    cmd = ("--feature-repo", str(repo))
    small = _images(64, (120, 160), seed=1)
    server = ServerProcess(spec, "benchsmall@champion", root / "server2.log", *cmd).start()
    acked2: list[str] = []
    errors2: list[str] = []
    budget = [args.kill_requests]
    stop = threading.Event()
    threads = _clients(server.url, small, stop, budget, acked2, [], errors2)
    for t in threads:
        t.start()
    while len(acked2) < args.kill_requests // 2:
        time.sleep(0.01)
    assert server.proc is not None
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait()
    at_kill = len(acked2)
    restarted = ServerProcess(spec, "benchsmall@champion", root / "server3.log", *cmd)
    restarted_port = server.port  # clients keep their URL: restart on the same port
    restarted.cmd[restarted.cmd.index("--port") + 1] = str(restarted_port)
    restarted.start()
    for t in threads:
        t.join()
    restarted.terminate()
    logged2 = _logged(repo)
    missing = set(acked2) - set(logged2)
    extra = set(logged2) - set(acked2)
    print(
        f"SIGKILL part ({CLIENTS} clients, 64x64 compact detector, 160x120 JPEGs): {args.kill_requests} requests, "
        f"SIGKILL after {at_kill} acknowledged, restarted; acknowledged {len(acked2)}, logged {len(logged2)} rows "
        f"({len(logged2) - len(set(logged2))} duplicates); acknowledged but not logged: {len(missing)}; "
        f"logged but never acknowledged (answer lost in the kill): {len(extra)}; client errors while down: {len(errors2)}"
    )


if __name__ == "__main__":
    main()
