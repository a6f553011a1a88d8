"""A small HTTP prediction server that logs every prediction.

Endpoints (JSON answers):

``GET /healthz``
    ``{"status": "ok", "model": "name:version", "task": ...}``.
``GET /v1/model``
    the model's name, version, task, label map and input size.
``POST /v1/predict``
    either the raw bytes of one image (any ``Content-Type`` but JSON; an
    ``X-Request-Id`` header becomes the logged request id), or JSON
    ``{"instances": [{"b64": "...", "request_id"?: "...", "image_uri"?: "..."}, ...]}``
    (``{"image_bytes": {"b64": ...}}`` instances, TensorFlow Serving's form, too).
    Answers ``{"model": "name:version", "predictions": [...]}`` with one entry per
    instance: ``request_id``, ``image_sha256``, ``predicted_class``,
    ``predicted_class_name``, ``top_score``, ``num_detections`` and the prediction
    JSON's fields (``class_ids``, ``scores``, ``boxes``...), or ``{"error": ...}`` for
    an instance that could not be decoded. A request whose every instance failed
    answers 400; a body over the size limit 413.

Every predicted instance is appended to the :class:`~components.predict.logs.PredictionLog`
(one part file per request), the same rows batch prediction logs. With an image
store, the request's image bytes are kept content-addressed
(``<store>/<sha[:2]>/<sha>.<ext>``) and logged as ``image_uri``, so the image
can be sent for labelling later. A failure to log is reported in the server's
log and the ``X-Cvpipe-Logged: false`` header; the prediction is still answered.

It runs on the standard library's :class:`~http.server.ThreadingHTTPServer`:
the embedded default for demos and tests. In production the same
:class:`~components.predict.core.ServedModel` goes behind a real serving stack
(or Vertex AI endpoints, whose request logging feeds the same Feast tables).
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from components.core.io import atomic_write_bytes, sha256_bytes
from components.core.log import get_logger
from components.core.quarantine import QuarantineReport

from .core import ServedModel
from .logs import PredictionLog, PredictionRow

__all__ = ["MAX_BODY_BYTES", "PredictionServer", "serve"]

MAX_BODY_BYTES = 32 * 1024 * 1024
"""Largest request body accepted (413 above it)."""

_log = get_logger("serve")
_EXT = {"JPEG": ".jpg", "PNG": ".png", "BMP": ".bmp", "GIF": ".gif", "TIFF": ".tif", "WEBP": ".webp"}


class _BadRequest(Exception):
    def __init__(self, status: HTTPStatus, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def _instances(body: bytes, content_type: str, header_id: str | None) -> list[tuple[bytes, str | None, str]]:
    """``(image bytes, request id, image uri)`` of each instance of a request body."""
    if not content_type.startswith("application/json"):
        if not body:
            raise _BadRequest(HTTPStatus.BAD_REQUEST, "empty body: send the image bytes, or JSON {'instances': [{'b64': ...}]}")
        return [(body, header_id, "")]
    try:
        doc = json.loads(body)
    except ValueError as e:
        raise _BadRequest(HTTPStatus.BAD_REQUEST, f"body is not valid JSON: {e}") from None
    items = doc.get("instances") if isinstance(doc, dict) else None
    if not isinstance(items, list) or not items:
        raise _BadRequest(
            HTTPStatus.BAD_REQUEST, "JSON body must be {'instances': [{'b64': '<base64 image>'}, ...]} with at least one instance"
        )
    out: list[tuple[bytes, str | None, str]] = []
    for i, inst in enumerate(items):
        if not isinstance(inst, dict):
            raise _BadRequest(HTTPStatus.BAD_REQUEST, f"instances[{i}] must be an object with 'b64'")
        b64 = inst.get("b64")
        if b64 is None and isinstance(inst.get("image_bytes"), dict):
            b64 = inst["image_bytes"].get("b64")
        if not isinstance(b64, str) or not b64:
            raise _BadRequest(HTTPStatus.BAD_REQUEST, f"instances[{i}] has no 'b64' string")
        try:
            data = base64.b64decode(b64, validate=True)
        except (binascii.Error, ValueError):
            raise _BadRequest(HTTPStatus.BAD_REQUEST, f"instances[{i}].b64 is not valid base64") from None
        rid = inst.get("request_id")
        out.append((data, str(rid) if rid else None, str(inst.get("image_uri") or "")))
    return out


def _answer(row: PredictionRow) -> dict[str, Any]:
    pred = row.prediction()
    return {
        "request_id": row.request_id,
        "image_sha256": row.image_sha256,
        "predicted_class": row.predicted_class,
        "predicted_class_name": row.predicted_class_name,
        "top_score": round(row.top_score, 5),
        "num_detections": row.num_detections,
        **{k: v for k, v in pred.items() if k not in ("width", "height")},
        "width": row.width,
        "height": row.height,
    }


class PredictionServer:
    """A threaded HTTP server answering predictions of one model and logging them.

    Args:
        model: the loaded model.
        host: interface to bind (default loopback only).
        port: TCP port; 0 picks a free one (see :attr:`port`).
        log: where predictions are logged (None: not logged).
        image_store: directory keeping request images for labelling (None: not kept).
        batch_size: images per model call within one request.
        max_body_bytes: largest request body.
    """

    def __init__(
        self,
        model: ServedModel,
        host: str = "127.0.0.1",
        port: int = 8080,
        log: PredictionLog | None = None,
        image_store: Path | None = None,
        batch_size: int = 16,
        max_body_bytes: int = MAX_BODY_BYTES,
    ):
        self.model = model
        self.log = log
        self.image_store = image_store
        self.batch_size = batch_size
        self.max_body_bytes = max_body_bytes
        self._thread: threading.Thread | None = None
        self._httpd = ThreadingHTTPServer((host, port), self._handler())
        self._httpd.daemon_threads = True

    @property
    def host(self) -> str:
        """The bound address."""
        return str(self._httpd.server_address[0])

    @property
    def port(self) -> int:
        """The bound port."""
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """``http://host:port``."""
        return f"http://{self.host}:{self.port}"

    def start(self) -> PredictionServer:
        """Serves in a background thread.

        Returns:
            The server.
        """
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="cvpipe-serve", daemon=True)
        self._thread.start()
        _log.info("serving %s (%s) on %s", self.model.ref, self.model.predictor.task, self.url)
        return self

    def serve_forever(self) -> None:
        """Serves in this thread until interrupted."""
        _log.info("serving %s (%s) on %s", self.model.ref, self.model.predictor.task, self.url)
        try:
            self._httpd.serve_forever()
        finally:
            self._httpd.server_close()

    def stop(self) -> None:
        """Stops serving and closes the socket."""
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> PredictionServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- request handling --------------------------------------------------------------
    def _keep_image(self, data: bytes) -> str:
        from PIL import Image

        assert self.image_store is not None
        try:
            with Image.open(io.BytesIO(data)) as im:
                ext = _EXT.get(im.format or "", ".img")
        except Exception:
            ext = ".img"
        sha = sha256_bytes(data)
        path = self.image_store / sha[:2] / f"{sha}{ext}"
        if not path.exists():
            atomic_write_bytes(path, data)
        return str(path.resolve())

    def predict(self, instances: list[tuple[bytes, str | None, str]]) -> tuple[list[dict[str, Any]], bool]:
        """Predicts and logs a request's instances.

        Args:
            instances: ``(image bytes, request id or None, image uri)`` each.

        Returns:
            ``(one answer per instance, whether the rows were logged)``.
        """
        import uuid

        q = QuarantineReport(stage="serve")
        data = [d for d, _, _ in instances]
        ids = [rid or uuid.uuid4().hex for _, rid, _ in instances]
        uris = [uri for _, _, uri in instances]
        rows = self.model.rows(data, uris, batch_size=self.batch_size, request_ids=ids, quarantine=q)
        if self.image_store is not None:
            for i, row in enumerate(rows):
                if row is not None and not row.image_uri:
                    row.image_uri = self._keep_image(data[i])
        done = [r for r in rows if r is not None]
        logged = True
        if self.log is not None and done:
            try:
                self.log.append(done)
            except Exception as e:  # serving goes on; the failure is visible in the log and a header
                logged = False
                _log.error("could not log %d predictions to %s: %s", len(done), self.log.repo_dir, e)
        reasons = {item.image_id: item.reason for item in q.items}
        answers: list[dict[str, Any]] = []
        for i, row in enumerate(rows):
            if row is None:
                answers.append({"request_id": ids[i], "error": f"cannot decode image: {reasons.get(uris[i] or ids[i], 'unknown error')}"})
            else:
                answers.append(_answer(row))
        return answers, logged

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            server_version = "cvpipe-serve/1"
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                _log.debug("%s %s", self.address_string(), format % args)

            def _send(self, status: HTTPStatus, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
                data = json.dumps(body).encode("utf-8")
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                m = server.model
                if self.path == "/healthz":
                    self._send(HTTPStatus.OK, {"status": "ok", "model": m.ref, "task": m.predictor.task})
                elif self.path == "/v1/model":
                    p = m.predictor
                    self._send(
                        HTTPStatus.OK,
                        {
                            "model_name": m.model_name,
                            "model_version": m.model_version,
                            "task": p.task,
                            "image_size": list(p.image_size),
                            "label_map": {str(k): v for k, v in sorted(p.label_map.classes.items())},
                        },
                    )
                else:
                    self._send(HTTPStatus.NOT_FOUND, {"error": f"no route GET {self.path}"})

            def do_POST(self) -> None:
                if self.path != "/v1/predict":
                    self._send(HTTPStatus.NOT_FOUND, {"error": f"no route POST {self.path}"})
                    return
                try:
                    length = int(self.headers.get("Content-Length") or 0)
                except ValueError:
                    length = -1
                if length < 0:
                    self._send(HTTPStatus.BAD_REQUEST, {"error": "invalid Content-Length"})
                    return
                if length > server.max_body_bytes:
                    self.close_connection = True
                    self._send(
                        HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                        {"error": f"body of {length} bytes is over the limit of {server.max_body_bytes}"},
                    )
                    return
                body = self.rfile.read(length)
                try:
                    instances = _instances(body, (self.headers.get("Content-Type") or "").lower(), self.headers.get("X-Request-Id"))
                    answers, logged = server.predict(instances)
                except _BadRequest as e:
                    self._send(e.status, {"error": e.message})
                    return
                except Exception as e:  # a bug must not kill the server thread silently
                    _log.exception("prediction failed")
                    self._send(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": f"prediction failed: {e}"})
                    return
                ok = any("error" not in a for a in answers)
                status = HTTPStatus.OK if ok else HTTPStatus.BAD_REQUEST
                body_out = {"model": server.model.ref, "predictions": answers}
                if not ok:
                    body_out["error"] = "; ".join(a["error"] for a in answers)
                self._send(status, body_out, {"X-Cvpipe-Logged": "true" if logged and server.log is not None else "false"})

        return Handler


def serve(
    model_ref: str,
    host: str = "127.0.0.1",
    port: int = 8080,
    log: PredictionLog | None = None,
    *,
    registry: Any,
    image_store: Path | None = None,
    batch_size: int = 16,
    block: bool = True,
) -> PredictionServer:
    """Loads a registry model and serves it over HTTP, logging every prediction.

    Args:
        model_ref: ``name@alias`` or ``name:version``.
        host: interface to bind.
        port: TCP port (0: any free port).
        log: the prediction log (None: predictions are not logged).
        registry: the registry to resolve ``model_ref`` in.
        image_store: keep request images here (content-addressed) for labelling.
        batch_size: images per model call within one request.
        block: serve in this thread until interrupted (False: start a background
            thread and return; call :meth:`PredictionServer.stop`).

    Returns:
        The server (after it stopped, when ``block``).
    """
    server = PredictionServer(ServedModel.load(model_ref, registry), host, port, log, image_store, batch_size)
    if block:
        server.serve_forever()
    else:
        server.start()
    return server
