"""``cvpipe serve``: the prediction server (uvicorn + Starlette) around :class:`~components.predict.core.ServedModel`.

Endpoints (JSON unless noted):

=====================================  ==============================================================
``POST /v1/predict``                   raw image bytes (any ``Content-Type`` but JSON; ``X-Request-Id``
                                       names the row) or ``{"instances": [{"b64": ...}, ...]}``;
                                       per-instance answers, an undecodable instance gets ``error``
``POST /v1/models/<name>:predict``     TensorFlow Serving REST: ``{"instances": [{"b64": ...} |
                                       {"image_bytes": {"b64": ...}}, ...]}`` -> ``{"predictions": [...]}``
``GET  /v1/models/<name>``             TensorFlow Serving model status
``GET  /v2/health/live``, ``/ready``   KServe / Open Inference Protocol v2 health
``GET  /v2/models/<name>``             v2 model metadata (the version now serving)
``POST /v2/models/<name>/infer``       v2 inference: one ``BYTES`` input of base64 images
``GET  /healthz``, ``GET /v1/model``   liveness with the model version; model description
``GET  /metrics``                      Prometheus text format
=====================================  ==============================================================

How a prediction request goes (each step bounded, see :class:`~components.core.spec.ServingSpec`):

1. admission: at most ``max_queue`` requests are inside the server at once (503 with
   ``Retry-After`` beyond it); uvicorn caps connections (503) and a connection that
   has not sent its headers within ``header_timeout_s`` is closed;
2. the body is read within ``body_timeout_s`` (408) and up to ``max_body_mb`` (413);
3. at most ``max_instances`` images (413); their headers give their pixel counts,
   ``max_request_megapixels`` per request (413) and ``max_inflight_megapixels`` for
   all requests together (503) before anything is decoded;
4. images are decoded in a thread pool (off the event loop) and their bytes kept in
   the content-addressed image store (``<store>/<sha[:2]>/<sha>.<ext>``), whose path
   is the logged ``image_uri``: a client never names a file (``image_uri`` in a
   request is refused);
5. the dynamic batcher gathers images of concurrent requests into one model call
   (``max_batch_size`` or ``max_batch_wait_ms``);
6. the batch's log rows are appended to the write-ahead log and fsynced
   (:mod:`components.predict.wal`) before any of its answers is sent; a log that
   cannot be written answers 503, never an unlogged prediction.

Answers carry the model version that made them; detection boxes under
``score_threshold`` and beyond ``max_detections`` are left out of answers but
logged. A 500 answer names the request id, never the exception. One access-log
line per request (JSON: request id, method, path, status, latency, model version).

``name@alias`` is followed: a new version the alias points to is loaded in the
background and swapped in between two batches, so no request fails during the
switch. SIGTERM stops accepting, answers what is in flight, rolls the write-ahead
log into the prediction log and exits; after SIGKILL the next start replays it.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import io
import json
import os
import socket
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.core.errors import ImageError
from components.core.io import atomic_write_bytes
from components.core.log import get_logger
from components.core.spec import ServingSpec

from .core import DecodedImage, ServedModel
from .logs import PredictionLog, PredictionRow
from .wal import WriteAheadLog

__all__ = ["PredictionService", "build_app", "serve"]

_log = get_logger("serve")
_access = get_logger("serve.access")
_EXT = {"JPEG": ".jpg", "PNG": ".png", "BMP": ".bmp", "GIF": ".gif", "TIFF": ".tif", "WEBP": ".webp"}
_RETRY_AFTER = "1"


class HttpError(Exception):
    """An answer other than 200 (its text is meant for the client).

    Args:
        status: the HTTP status.
        message: what went wrong.
        headers: extra response headers.
    """

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def _busy(what: str) -> HttpError:
    return HttpError(503, f"server busy: {what}; retry later", {"Retry-After": _RETRY_AFTER})


@dataclass
class Instance:
    """One image of a request.

    Attributes:
        data: the encoded bytes.
        request_id: the row's id (the client's, or a fresh one).
    """

    data: bytes
    request_id: str


def _b64(value: Any, where: str) -> bytes:
    if isinstance(value, dict):
        value = value.get("b64")
    if not isinstance(value, str) or not value:
        raise HttpError(400, f"{where} has no base64 image ('b64' string)")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise HttpError(400, f"{where} is not valid base64") from None


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError as e:
        raise HttpError(400, f"body is not valid JSON: {e}") from None


def parse_instances(doc: Any) -> list[Instance]:
    """The images of a ``{"instances": [...]}`` body (``/v1/predict`` and TensorFlow Serving).

    Args:
        doc: the parsed JSON.

    Returns:
        One instance per image.

    Raises:
        HttpError: 400 naming the malformed instance.
    """
    items = doc.get("instances") if isinstance(doc, dict) else None
    if not isinstance(items, list) or not items:
        raise HttpError(400, "JSON body must be {'instances': [{'b64': '<base64 image>'}, ...]} with at least one instance")
    out: list[Instance] = []
    for i, inst in enumerate(items):
        if not isinstance(inst, dict):
            raise HttpError(400, f"instances[{i}] must be an object with 'b64'")
        if "image_uri" in inst:
            raise HttpError(400, f"instances[{i}]: image_uri is not accepted; the server keeps the bytes it receives and logs where")
        data = _b64(inst.get("b64", inst.get("image_bytes")), f"instances[{i}]")
        rid = inst.get("request_id")
        out.append(Instance(data, str(rid) if rid else uuid.uuid4().hex))
    return out


def parse_v2(doc: Any) -> tuple[str, list[Instance]]:
    """The images of an Open Inference Protocol v2 request.

    Args:
        doc: ``{"id"?: str, "inputs": [{"name", "datatype": "BYTES", "shape": [N], "data": [b64, ...]}]}``.

    Returns:
        ``(request id, instances)``; instance ``i``'s row id is ``<id>-<i>``.

    Raises:
        HttpError: 400 naming the problem.
    """
    inputs = doc.get("inputs") if isinstance(doc, dict) else None
    if not isinstance(inputs, list) or len(inputs) != 1 or not isinstance(inputs[0], dict):
        raise HttpError(
            400, "v2 request must have exactly one input: {'name': 'image_bytes', 'datatype': 'BYTES', 'shape': [N], 'data': [...]}"
        )
    inp = inputs[0]
    if inp.get("datatype") != "BYTES":
        raise HttpError(400, f"input {inp.get('name')!r}: datatype must be BYTES (base64 encoded images), not {inp.get('datatype')!r}")
    data = inp.get("data")
    if not isinstance(data, list) or not data:
        raise HttpError(400, f"input {inp.get('name')!r}: data must be a non-empty list of base64 images")
    shape = inp.get("shape")
    if shape is not None and shape != [len(data)]:
        raise HttpError(400, f"input {inp.get('name')!r}: shape {shape} does not match {len(data)} data elements")
    rid = str(doc.get("id") or uuid.uuid4().hex)
    return rid, [Instance(_b64(v, f"inputs[0].data[{i}]"), f"{rid}-{i}") for i, v in enumerate(data)]


# -- metrics ------------------------------------------------------------------------------


class Metrics:
    """The server's Prometheus metrics, in a registry of their own."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("cvpipe_serve_requests", "Requests answered, by endpoint and status.", ["endpoint", "status"], registry=r)
        self.latency = Histogram(
            "cvpipe_serve_request_seconds",
            "Request latency, by endpoint.",
            ["endpoint"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.batch = Histogram("cvpipe_serve_batch_size", "Images per model call.", buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256), registry=r)
        self.queue = Gauge("cvpipe_serve_queue_depth", "Prediction requests inside the server (admitted, not yet answered).", registry=r)
        self.pixels = Gauge("cvpipe_serve_inflight_pixels", "Decoded pixels held by requests in flight.", registry=r)
        self.model = Info("cvpipe_serve_model", "The model version now serving.", registry=r)
        self.classes = Counter("cvpipe_serve_predicted_class", "Predictions by top class.", ["class_name"], registry=r)
        self.top_score = Histogram(
            "cvpipe_serve_top_score", "Top score per prediction.", buckets=tuple(i / 10 for i in range(1, 11)), registry=r
        )
        self.logged = Counter("cvpipe_serve_logged_rows", "Prediction rows made durable in the write-ahead log.", registry=r)
        self.switches = Counter("cvpipe_serve_model_switches", "Times the followed alias moved and the new version took over.", registry=r)


# -- model holder and batcher ---------------------------------------------------------------


class ModelHolder:
    """The model now serving; swapped whole, so a batch always sees one version.

    Args:
        model: the first model.
        metrics: updated with the serving version.
    """

    def __init__(self, model: ServedModel, metrics: Metrics):
        self.current = model
        self._metrics = metrics
        self._publish()

    def _publish(self) -> None:
        m = self.current
        self._metrics.model.info({"name": m.model_name, "version": str(m.model_version), "task": m.predictor.task})

    def swap(self, model: ServedModel) -> None:
        """Makes ``model`` the one that answers the next batch.

        Args:
            model: the new model.
        """
        old = self.current
        self.current = model
        self._publish()
        self._metrics.switches.inc()
        _log.info("now serving %s (was %s)", model.ref, old.ref)


@dataclass
class _Item:
    image: DecodedImage
    request_id: str
    uri: str
    future: asyncio.Future[PredictionRow]


class Batcher:
    """Gathers images of concurrent requests into model calls and logs each batch before answering.

    Args:
        holder: the model.
        wal: the write-ahead log (None: not logged).
        max_batch: images per model call at most.
        max_wait_s: how long the first image waits for more.
        metrics: the server's metrics.
    """

    def __init__(self, holder: ModelHolder, wal: WriteAheadLog | None, max_batch: int, max_wait_s: float, metrics: Metrics):
        self.holder = holder
        self.wal = wal
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.metrics = metrics
        self._queue: asyncio.Queue[_Item] = asyncio.Queue()
        self._model_pool = ThreadPoolExecutor(1, thread_name_prefix="cvpipe-model")
        self._log_pool = ThreadPoolExecutor(1, thread_name_prefix="cvpipe-wal")
        self._worker: asyncio.Task[None] | None = None
        self._logging: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        """Starts the batching task on the running loop."""
        self._worker = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Finishes the batches in hand and stops."""
        while not self._queue.empty() or self._logging:
            await asyncio.sleep(0.01)
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        self._model_pool.shutdown(wait=True)
        self._log_pool.shutdown(wait=True)

    def submit(self, images: list[tuple[DecodedImage, str, str]]) -> list[asyncio.Future[PredictionRow]]:
        """Queues images for prediction.

        Args:
            images: ``(decoded image, request id, image uri)`` each.

        Returns:
            One future per image: its logged row.
        """
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[PredictionRow]] = []
        for image, rid, uri in images:
            fut: asyncio.Future[PredictionRow] = loop.create_future()
            self._queue.put_nowait(_Item(image, rid, uri, fut))
            futures.append(fut)
        return futures

    async def _gather(self) -> list[_Item]:
        batch = [await self._queue.get()]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_wait_s
        while len(batch) < self.max_batch:
            if not self._queue.empty():
                batch.append(self._queue.get_nowait())
                continue
            left = deadline - loop.time()
            if left <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(self._queue.get(), left))
            except TimeoutError:
                break
        return batch

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._gather()
            model = self.holder.current
            try:
                rows = await loop.run_in_executor(
                    self._model_pool,
                    model.predict_decoded,
                    [it.image for it in batch],
                    [it.request_id for it in batch],
                    [it.uri for it in batch],
                )
            except Exception as e:  # answered as 500 per request; the server goes on
                _log.exception("model call on a batch of %d failed", len(batch))
                for it in batch:
                    if not it.future.done():
                        it.future.set_exception(e)
                continue
            self.metrics.batch.observe(len(batch))
            task = loop.create_task(self._log_and_answer(batch, rows))
            self._logging.add(task)
            task.add_done_callback(self._logging.discard)

    async def _log_and_answer(self, batch: list[_Item], rows: list[PredictionRow]) -> None:
        if self.wal is not None:
            try:
                await asyncio.get_running_loop().run_in_executor(self._log_pool, self.wal.append, rows)
            except Exception:
                _log.exception("could not write %d prediction rows to the write-ahead log", len(rows))
                for it in batch:
                    if not it.future.done():
                        it.future.set_exception(_busy("the prediction log cannot be written"))
                return
            self.metrics.logged.inc(len(rows))
        for it, row in zip(batch, rows, strict=True):
            self.metrics.classes.labels(row.predicted_class_name or "(none)").inc()
            self.metrics.top_score.observe(row.top_score)
            if not it.future.done():
                it.future.set_result(row)


# -- the service ------------------------------------------------------------------------------


class PredictionService:
    """Everything the HTTP layer calls: admission, decoding, batching, logging, answers.

    Args:
        model: the model to serve first.
        config: batching, answer and limit settings.
        log: the prediction log (None: predictions are not logged).
        image_store: where request images are kept (default: ``<log data dir>/images``;
            None without a log: not kept).
        registry: the registry ``model_ref`` resolves in (needed to follow an alias).
        model_ref: what was asked for; ``name@alias`` is followed.
    """

    def __init__(
        self,
        model: ServedModel,
        config: ServingSpec | None = None,
        log: PredictionLog | None = None,
        image_store: Path | None = None,
        registry: Any = None,
        model_ref: str | None = None,
    ):
        self.config = config or ServingSpec()
        self.log = log
        self.image_store = image_store if image_store is not None else (log.data_dir / "images" if log is not None else None)
        self.registry = registry
        self.model_ref = model_ref or model.ref
        self.metrics = Metrics()
        self.holder = ModelHolder(model, self.metrics)
        c = self.config
        self.wal = WriteAheadLog(log, c.log_roll_rows, c.log_roll_seconds) if log is not None else None
        self.batcher = Batcher(self.holder, self.wal, c.max_batch_size, c.max_batch_wait_ms / 1000.0, self.metrics)
        self._decode_pool = ThreadPoolExecutor(max(2, os.cpu_count() or 2), thread_name_prefix="cvpipe-decode")
        self._admitted = 0
        self._pixels = 0
        self.max_pixels = int(c.max_request_megapixels * 1_000_000)
        self.max_inflight = int(c.max_inflight_megapixels * 1_000_000)
        self.ready = False
        self._tasks: list[asyncio.Task[None]] = []
        self.on_ready: Callable[[], None] | None = None

    @property
    def model(self) -> ServedModel:
        """The model now serving."""
        return self.holder.current

    # -- life cycle --------------------------------------------------------------------
    async def startup(self) -> None:
        """Replays the write-ahead log and starts batching, rolling and alias following."""
        loop = asyncio.get_running_loop()
        if self.wal is not None:
            await loop.run_in_executor(None, self.wal.open)
            self._tasks.append(loop.create_task(self._roll_loop()))
        if self.registry is not None and "@" in self.model_ref:
            self._tasks.append(loop.create_task(self._follow_loop()))
        self.batcher.start()
        self.ready = True
        if self.on_ready is not None:
            self.on_ready()

    async def shutdown(self) -> None:
        """Answers what is in hand, rolls the write-ahead log into the prediction log and stops."""
        self.ready = False
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        await self.batcher.stop()
        if self.wal is not None:
            part = await asyncio.get_running_loop().run_in_executor(None, self.wal.close)
            _log.info("prediction log flushed%s", f" to {part}" if part else "")
        self._decode_pool.shutdown(wait=True)

    async def _roll_loop(self) -> None:
        assert self.wal is not None
        every = min(1.0, self.config.log_roll_seconds / 4)
        while True:
            await asyncio.sleep(every)
            try:
                await asyncio.get_running_loop().run_in_executor(self.batcher._log_pool, self.wal.maybe_roll)
            except Exception:
                _log.exception("could not roll the write-ahead log into a part file (kept; retried)")

    async def _follow_loop(self) -> None:
        pool = ThreadPoolExecutor(1, thread_name_prefix="cvpipe-follow")
        loop = asyncio.get_running_loop()
        try:
            while True:
                await asyncio.sleep(self.config.follow_seconds)
                try:
                    version = await loop.run_in_executor(pool, self.registry.resolve, self.model_ref)
                    if int(version.version) == self.model.model_version:
                        continue
                    _log.info("%s moved to version %s: loading it", self.model_ref, version.version)
                    model = await loop.run_in_executor(pool, ServedModel.load, f"{version.model_name}:{version.version}", self.registry)
                    self.holder.swap(model)
                except Exception as e:  # keep serving the current version; try again next time
                    _log.warning("could not follow %s: %s", self.model_ref, e)
        finally:
            pool.shutdown(wait=False)

    # -- a prediction request -------------------------------------------------------------
    @contextlib.contextmanager
    def admitted(self) -> Any:
        """Admits a request or refuses it with 503 (``max_queue`` requests already inside)."""
        if self._admitted >= self.config.max_queue:
            raise _busy(f"{self._admitted} requests in progress (limit {self.config.max_queue})")
        self._admitted += 1
        self.metrics.queue.set(self._admitted)
        try:
            yield
        finally:
            self._admitted -= 1
            self.metrics.queue.set(self._admitted)

    def _size(self, data: bytes) -> int:
        from PIL import Image

        try:
            with Image.open(io.BytesIO(data)) as im:
                w, h = im.size
                return int(w) * int(h)
        except Exception:  # not an image: decoding reports it
            return 0

    def _decode(self, inst: Instance) -> tuple[DecodedImage, str] | str:
        try:
            image = DecodedImage.decode(inst.data, max_pixels=self.max_pixels)
        except ImageError as e:
            return e.problem
        return image, self._keep(image)

    def _keep(self, image: DecodedImage) -> str:
        """Keeps the bytes content-addressed and returns the path logged as ``image_uri``."""
        if self.image_store is None:
            return ""
        from PIL import Image

        try:
            with Image.open(io.BytesIO(image.data)) as im:
                ext = _EXT.get(im.format or "", ".img")
        except Exception:
            ext = ".img"
        path = self.image_store / image.sha256[:2] / f"{image.sha256}{ext}"
        if not path.exists():
            atomic_write_bytes(path, image.data)
        return str(path.resolve())

    async def predict(self, instances: list[Instance], strict: bool) -> list[dict[str, Any]]:
        """Decodes, predicts, logs and answers a request's images.

        Args:
            instances: the images.
            strict: refuse the whole request (400) when one image cannot be decoded
                (the TensorFlow Serving and v2 protocols); otherwise that image's answer
                holds ``error`` and the others are predicted.

        Returns:
            One answer per image.

        Raises:
            HttpError: 400/413/503 as described in the module docstring.
        """
        c = self.config
        if len(instances) > c.max_instances:
            raise HttpError(413, f"{len(instances)} images in one request; the limit is {c.max_instances}")
        loop = asyncio.get_running_loop()
        sizes = await asyncio.gather(*(loop.run_in_executor(self._decode_pool, self._size, i.data) for i in instances))
        total = sum(sizes)
        if total > self.max_pixels:
            raise HttpError(413, f"the request's images hold {total} pixels; the limit is {self.max_pixels} per request")
        if self._pixels + total > self.max_inflight:
            raise _busy(f"{self._pixels} decoded pixels in flight (limit {self.max_inflight})")
        self._pixels += total
        self.metrics.pixels.set(self._pixels)
        try:
            decoded = await asyncio.gather(*(loop.run_in_executor(self._decode_pool, self._decode, i) for i in instances))
            bad = [(i, d) for i, d in enumerate(decoded) if isinstance(d, str)]
            for i, problem in bad:
                _log.warning("request %s: image not predicted: %s", instances[i].request_id, problem)
            if bad and (strict or len(bad) == len(instances)):
                raise HttpError(400, "; ".join(f"image {i}: cannot decode: {p}" for i, p in bad))
            good = [(d[0], instances[i].request_id, d[1]) for i, d in enumerate(decoded) if not isinstance(d, str)]
            rows = iter(await asyncio.gather(*self.batcher.submit(good)))
        finally:
            self._pixels -= total
            self.metrics.pixels.set(self._pixels)
        answers: list[dict[str, Any]] = []
        for inst, d in zip(instances, decoded, strict=True):
            if isinstance(d, str):
                answers.append({"request_id": inst.request_id, "error": f"cannot decode image: {d}"})
            else:
                answers.append(self.answer(next(rows)))
        return answers

    def answer(self, row: PredictionRow) -> dict[str, Any]:
        """A row as the client sees it: boxes under the threshold and beyond the maximum left out.

        Args:
            row: the logged row.

        Returns:
            ``request_id``, ``model_version``, ``image_sha256``, ``predicted_class``,
            ``predicted_class_name``, ``top_score``, ``num_detections`` (all of them),
            ``class_ids``, ``scores``, ``boxes`` (those kept), ``width``, ``height``.
        """
        pred = row.prediction()
        if pred.get("task") == "detection":
            keep = [i for i, s in enumerate(pred["scores"]) if s >= self.config.score_threshold]
            keep = sorted(keep, key=lambda i: -pred["scores"][i])[: self.config.max_detections]
            for k in ("class_ids", "scores", "boxes"):
                pred[k] = [pred[k][i] for i in keep]
        pred.pop("task", None)
        return {
            "request_id": row.request_id,
            "model_version": row.model_version,
            "image_sha256": row.image_sha256,
            "predicted_class": row.predicted_class,
            "predicted_class_name": row.predicted_class_name,
            "top_score": round(row.top_score, 5),
            "num_detections": row.num_detections,
            **pred,
        }


# -- HTTP -----------------------------------------------------------------------------------


async def _read_body(request: Any, config: ServingSpec) -> bytes:
    limit = int(config.max_body_mb * 1024 * 1024)
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            n = int(declared)
        except ValueError:
            raise HttpError(400, "invalid Content-Length") from None
        if n > limit:
            raise HttpError(413, f"body of {n} bytes is over the limit of {limit}", {"Connection": "close"})
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(config.body_timeout_s):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise HttpError(413, f"body is over the limit of {limit} bytes", {"Connection": "close"})
                chunks.append(chunk)
    except TimeoutError:
        raise HttpError(408, f"the body did not arrive within {config.body_timeout_s:g} s", {"Connection": "close"}) from None
    return b"".join(chunks)


def build_app(service: PredictionService) -> Any:
    """The Starlette application of a service.

    Args:
        service: the prediction service.

    Returns:
        The ASGI application (its lifespan starts and stops the service).
    """
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    def _name_ok(name: str) -> None:
        if name != service.model.model_name:
            raise HttpError(404, f"no model {name!r} here; this server serves {service.model.model_name!r}")

    def handler(endpoint: str, fn: Callable[[Request], Awaitable[Any]]) -> Callable[[Request], Awaitable[Response]]:
        async def route(request: Request) -> Response:
            start = time.perf_counter()
            rid = request.headers.get("x-request-id") or uuid.uuid4().hex
            status, headers = 200, {}
            request.state.request_id = rid
            try:
                result = await fn(request)
                response = result if isinstance(result, Response) else JSONResponse(result)
            except HttpError as e:
                status, headers = e.status, e.headers
                response = JSONResponse({"error": e.message}, status_code=e.status, headers=e.headers)
            except Exception:
                _log.exception("request %s on %s failed", rid, endpoint)
                status = 500
                response = JSONResponse({"error": "internal error; see the server log", "request_id": rid}, status_code=500)
            status = response.status_code if status == 200 else status
            elapsed = time.perf_counter() - start
            response.headers["X-Request-Id"] = rid
            response.headers["X-Model-Version"] = str(service.model.model_version)
            service.metrics.requests.labels(endpoint, str(status)).inc()
            service.metrics.latency.labels(endpoint).observe(elapsed)
            if endpoint != "metrics":
                _access.info(
                    json.dumps(
                        {
                            "request_id": rid,
                            "method": request.method,
                            "path": request.url.path,
                            "status": status,
                            "latency_ms": round(elapsed * 1000, 2),
                            "model_version": service.model.model_version,
                            **({"retry_after": headers["Retry-After"]} if "Retry-After" in headers else {}),
                        }
                    )
                )
            return response

        return route

    async def raw_predict(request: Request) -> Any:
        with service.admitted():
            body = await _read_body(request, service.config)
            ctype = (request.headers.get("content-type") or "").lower()
            if ctype.startswith("application/json"):
                instances = parse_instances(_json(body))
            else:
                if not body:
                    raise HttpError(400, "empty body: send the image bytes, or JSON {'instances': [{'b64': ...}]}")
                instances = [Instance(body, request.state.request_id)]
            answers = await service.predict(instances, strict=False)
        return {"model": service.model.ref, "model_version": service.model.model_version, "predictions": answers}

    async def tfs_predict(request: Request) -> Any:
        target = request.path_params["target"]
        if not target.endswith(":predict"):
            raise HttpError(404, f"no route POST {request.url.path}")
        _name_ok(target[: -len(":predict")])
        with service.admitted():
            body = await _read_body(request, service.config)
            answers = await service.predict(parse_instances(_json(body)), strict=True)
        return {"predictions": answers, "model_version": str(service.model.model_version)}

    async def tfs_status(request: Request) -> Any:
        _name_ok(request.path_params["target"])
        return {
            "model_version_status": [
                {"version": str(service.model.model_version), "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
            ]
        }

    async def v2_infer(request: Request) -> Any:
        _name_ok(request.path_params["name"])
        with service.admitted():
            body = await _read_body(request, service.config)
            rid, instances = parse_v2(_json(body))
            answers = await service.predict(instances, strict=True)
        versions = {a["model_version"] for a in answers}
        n = len(answers)
        return {
            "model_name": service.model.model_name,
            "model_version": str(versions.pop() if len(versions) == 1 else service.model.model_version),
            "id": rid,
            "outputs": [
                {"name": "predictions", "datatype": "BYTES", "shape": [n], "data": [json.dumps(a, separators=(",", ":")) for a in answers]},
                {"name": "predicted_class", "datatype": "INT64", "shape": [n], "data": [a["predicted_class"] for a in answers]},
                {"name": "top_score", "datatype": "FP32", "shape": [n], "data": [a["top_score"] for a in answers]},
            ],
        }

    async def v2_model(request: Request) -> Any:
        _name_ok(request.path_params["name"])
        m = service.model
        return {
            "name": m.model_name,
            "versions": [str(m.model_version)],
            "platform": "tensorflow_savedmodel",
            "inputs": [{"name": "image_bytes", "datatype": "BYTES", "shape": [-1]}],
            "outputs": [
                {"name": "predictions", "datatype": "BYTES", "shape": [-1]},
                {"name": "predicted_class", "datatype": "INT64", "shape": [-1]},
                {"name": "top_score", "datatype": "FP32", "shape": [-1]},
            ],
        }

    async def v2_model_ready(request: Request) -> Any:
        _name_ok(request.path_params["name"])
        if not service.ready:
            raise HttpError(503, "not ready")
        return {"name": service.model.model_name, "ready": True}

    async def live(request: Request) -> Any:
        return {"live": True}

    async def ready(request: Request) -> Any:
        if not service.ready:
            raise HttpError(503, "not ready")
        return {"ready": True}

    async def healthz(request: Request) -> Any:
        m = service.model
        return {"status": "ok", "model": m.ref, "task": m.predictor.task}

    async def model_info(request: Request) -> Any:
        m = service.model
        p = m.predictor
        return {
            "model_name": m.model_name,
            "model_version": m.model_version,
            "task": p.task,
            "image_size": list(p.image_size),
            "label_map": {str(k): v for k, v in sorted(p.label_map.classes.items())},
        }

    async def metrics(request: Request) -> Any:
        return Response(generate_latest(service.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    async def not_found(request: Request) -> Any:
        raise HttpError(404, f"no route {request.method} {request.url.path}")

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        await service.startup()
        try:
            yield
        finally:
            await service.shutdown()

    routes = [
        Route("/v1/predict", handler("v1_predict", raw_predict), methods=["POST"]),
        Route("/v1/models/{target}", handler("tfs_predict", tfs_predict), methods=["POST"]),
        Route("/v1/models/{target}", handler("tfs_status", tfs_status), methods=["GET"]),
        Route("/v1/model", handler("model", model_info), methods=["GET"]),
        Route("/v2/health/live", handler("v2_live", live), methods=["GET"]),
        Route("/v2/health/ready", handler("v2_ready", ready), methods=["GET"]),
        Route("/v2/models/{name}", handler("v2_model", v2_model), methods=["GET"]),
        Route("/v2/models/{name}/ready", handler("v2_model_ready", v2_model_ready), methods=["GET"]),
        Route("/v2/models/{name}/infer", handler("v2_infer", v2_infer), methods=["POST"]),
        Route("/healthz", handler("healthz", healthz), methods=["GET"]),
        Route("/metrics", handler("metrics", metrics), methods=["GET"]),
        Route("/{path:path}", handler("unknown", not_found), methods=["GET", "POST", "PUT", "DELETE"]),
    ]
    return Starlette(routes=routes, lifespan=lifespan)


def bounded_h11(header_timeout_s: float) -> type:
    """uvicorn's h11 protocol with a header deadline: a connection that has not sent a
    whole request head within ``header_timeout_s`` (after connecting or after its last
    answer) is closed. uvicorn's keep-alive timer is reset by every byte, so a client
    trickling header bytes would otherwise hold its connection for ever.

    Args:
        header_timeout_s: seconds a request head may take.

    Returns:
        The protocol class, for ``uvicorn.Config(http=...)``.
    """
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class BoundedH11(H11Protocol):
        _header_timer: asyncio.TimerHandle | None = None

        def _arm(self) -> None:
            self._disarm()
            self._header_timer = self.loop.call_later(header_timeout_s, self._expired)

        def _disarm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _expired(self) -> None:
            self._header_timer = None
            if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
                _log.info("closing a connection from %s that sent no request head within %g s", self.client, header_timeout_s)
                self.transport.close()

        def connection_made(self, transport: Any) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self.conn.their_state is not h11.IDLE:
                self._disarm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

    return BoundedH11


def serve(
    model_ref: str,
    host: str = "127.0.0.1",
    port: int = 8080,
    log: PredictionLog | None = None,
    *,
    registry: Any,
    image_store: Path | None = None,
    config: ServingSpec | None = None,
    ready: Callable[[str], None] | None = None,
) -> None:
    """Loads a registry model and serves it until SIGTERM or SIGINT (then drains and flushes).

    Args:
        model_ref: ``name@alias`` (followed) or ``name:version``.
        host: interface to bind.
        port: TCP port (0: any free port).
        log: the prediction log (None: predictions are not logged).
        registry: the registry to resolve ``model_ref`` in.
        image_store: keep request images here (default: ``<log data dir>/images``).
        config: the spec's ``serving`` settings (default: :class:`ServingSpec`'s).
        ready: called with the URL once the server answers (default: print
            ``cvpipe serve: ready on URL`` to stdout).
    """
    import uvicorn

    cfg = config or ServingSpec()
    model = ServedModel.load(model_ref, registry)
    service = PredictionService(model, cfg, log, image_store, registry, model_ref)
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    url = f"http://{host}:{sock.getsockname()[1]}"
    uconfig = uvicorn.Config(
        build_app(service),
        http=bounded_h11(cfg.header_timeout_s),
        limit_concurrency=cfg.max_connections,
        timeout_keep_alive=int(min(5, cfg.header_timeout_s)) or 1,
        timeout_graceful_shutdown=int(cfg.drain_timeout_s),
        log_config=None,
        access_log=False,
        lifespan="on",
        server_header=False,
    )
    server = uvicorn.Server(uconfig)
    service.on_ready = lambda: (ready or (lambda u: print(f"cvpipe serve: ready on {u}", flush=True)))(url)
    _log.info("serving %s (%s; %s) on %s", model.ref, model.predictor.task, model_ref, url)
    server.run(sockets=[sock])
    _log.info("stopped serving %s", service.model.ref)
    sys.stdout.flush()
