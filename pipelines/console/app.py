"""The console's web application: FastAPI routes over :class:`~pipelines.console.data.ConsoleData`, Jinja2 pages.

Pages are rendered on the server; the only assets are the stylesheet under
``static/`` and SVG drawn by Graphviz, so the console works with no network.
Every response carries a Content-Security-Policy that allows nothing from
elsewhere.

Actions (promote, roll back, archive a version; acknowledge or silence an
incident) change state and are guarded:

* the console must have been started with a token in ``$CVPIPE_CONSOLE_TOKEN``
  (never from the spec); without one it is read-only and every action is
  refused with 403;
* each action is a confirmation page (GET, changes nothing) whose form is
  POSTed with the token typed in, the name of who acts, and a CSRF token
  that must equal the ``cvpipe_csrf`` cookie (double submit, ``SameSite=Strict``);
  a POST whose ``Origin`` is another site is refused;
* what was done is recorded with who did it: alias moves and archiving as a
  ``console_action`` execution in ML Metadata (its input is the version), and
  acknowledgements and silences in the incident log.

Files are served only from artifacts the metadata store knows: the request
names an artifact id and one of the file names listed under that artifact.
"""

from __future__ import annotations

import hmac
import json
import mimetypes
import os
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlparse

from fastapi import FastAPI, Form, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from components.core.errors import CvpipeError, LineageError, RemoteRefused, RemoteUnavailable
from components.core.lineage import ArtifactRef

from .data import ConsoleData, _is_html, when

__all__ = ["TOKEN_ENV", "create_app"]

TOKEN_ENV = "CVPIPE_CONSOLE_TOKEN"
"""Environment variable holding the token that allows actions (unset: the console is read-only)."""

HERE = Path(__file__).parent
BOX_MIN_SCORE = 0.3
"""Predicted boxes drawn on a labelling batch's images (the score the Label Studio pre-annotations keep)."""
CSRF_COOKIE = "cvpipe_csrf"
PAGE_CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'none'; frame-src 'self'; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)
FILE_CSP = "default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; frame-ancestors 'self'; base-uri 'none'"


def _user_default() -> str:
    import getpass

    try:
        return os.environ.get("CVPIPE_USER") or getpass.getuser()
    except (KeyError, OSError):
        return ""


def create_app(data: ConsoleData, token: str | None = None) -> FastAPI:
    """The console application over what ``data`` opened.

    Args:
        data: the stores the console reads.
        token: the token that allows actions (None or "": read-only).

    Returns:
        The FastAPI application.
    """
    app = FastAPI(title="cvpipe console", docs_url=None, redoc_url=None, openapi_url=None)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    templates = Jinja2Templates(directory=HERE / "templates")
    templates.env.globals.update(when=when, read_only=not token, quote=quote)
    templates.env.filters["fmt"] = _fmt
    templates.env.filters["headline"] = _headline

    @app.middleware("http")
    async def headers(request: Request, call_next: Any) -> Response:
        response: Response = await call_next(request)
        response.headers.setdefault("Content-Security-Policy", PAGE_CSP)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "same-origin"
        return response

    def page(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        csrf = request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(24)
        context.setdefault("spec_name", data.spec.name if data.spec else "")
        response = templates.TemplateResponse(
            request, template, {"csrf": csrf, "user": _user_default(), **context}, status_code=status_code
        )
        if request.cookies.get(CSRF_COOKIE) != csrf:
            response.set_cookie(CSRF_COOKIE, csrf, httponly=True, samesite="strict")
        return response

    def not_found(request: Request, message: str) -> HTMLResponse:
        return page(request, "error.html", status_code=404, title="Not found", message=message)

    @app.exception_handler(RemoteUnavailable)
    @app.exception_handler(RemoteRefused)
    async def remote_error(request: Request, exc: RemoteUnavailable | RemoteRefused) -> HTMLResponse:
        # the orchestrator said nothing usable about the run: never "not found"
        if isinstance(exc, RemoteRefused):  # it answered, but not to these credentials: the console may not see the run
            status, template, title = 403, "remote_refused.html", f"{exc.target} refused the console"
        else:  # a gateway error: 504 when no answer came in time (a reload may work), else 502 (refused, unresolvable, 5xx)
            status, template, title = (504 if exc.timeout else 502), "remote_unavailable.html", f"{exc.target} cannot be reached"
        return page(
            request,
            template,
            status_code=status,
            title=title,
            target=exc.target,
            endpoint=exc.endpoint,
            reason=exc.reason,
            message=str(exc),
        )

    @app.exception_handler(CvpipeError)
    async def cvpipe_error(request: Request, exc: CvpipeError) -> HTMLResponse:
        # a GET names something that is not there; a POST asked for what cannot be done (no earlier version...)
        status = 404 if request.method == "GET" else 409
        return page(request, "error.html", status_code=status, title="Not found" if status == 404 else "Not done", message=str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> HTMLResponse:
        titles = {403: "Refused", 404: "Not found", 400: "Not done"}
        return page(request, "error.html", status_code=exc.status_code, title=titles.get(exc.status_code, "Error"), message=str(exc.detail))

    def artifact_link(a: ArtifactRef) -> str:
        return f"/artifacts/{a.id}"

    # ------------------------------------------------------------------ overview
    def artifact_or_404(artifact_id: int) -> ArtifactRef:
        """The artifact a file route serves from, or a 404 naming the id."""
        try:
            return data.store.get(artifact_id)
        except LineageError:
            raise HTTPException(404, f"no artifact {artifact_id}") from None

    @app.get("/", response_class=HTMLResponse)
    async def overview(request: Request) -> HTMLResponse:
        runs = data.runs(limit=40)
        incidents = data.incidents()
        models = []
        for name in data.models():
            versions = data.versions(name)
            newest = versions[-1] if versions else None
            model_runs = [r for r in runs if r["pipeline"] in (name, data.spec.name if data.spec else name)]
            models.append(
                {
                    "name": name,
                    "versions": versions,
                    "aliases": sorted({(a, v.version) for v in versions for a in v.aliases}),
                    "newest": newest,
                    "open": [i for i in incidents if i.status == "firing" and i.alert.model == name and not _is_news(i)],
                    "last_training": next((r for r in model_runs if r["kind"] == "training"), None),
                    "last_ce": next((r for r in model_runs if r["kind"] == "continuous-eval"), None),
                }
            )
        return page(request, "overview.html", title="Overview", models=models, runs=runs[:10], incidents=incidents[:10])

    # ------------------------------------------------------------------ models
    @app.get("/models/{name}", response_class=HTMLResponse)
    async def model(request: Request, name: str) -> HTMLResponse:
        from .graphs import GraphError, fork_tree_svg

        rows = data.version_rows(name)
        if not rows:
            return not_found(request, f"no registered model {name!r}")
        registry = data._registry()
        try:
            tree = fork_tree_svg(
                registry.tree(name),
                lambda n: (
                    f"/models/{quote(n.versions[0].model_name)}/versions/{n.versions[0].version}"
                    if n.versions
                    else f"/artifacts/{n.model.id}"
                ),
            )
            tree_error = ""
        except GraphError as e:
            tree, tree_error = "", str(e)
        refused = data.refused_pushes(name)
        return page(
            request,
            "model.html",
            title=f"Model {name}",
            name=name,
            rows=rows,
            tree=tree,
            tree_error=tree_error,
            history=data.alias_history(name),
            refused=[(a, run_id, _json_list(a.properties.get("reasons"))) for a, run_id in refused],
            aliases=sorted({a for r in rows for a in r.version.aliases} | {e.alias for e, _ in data.alias_history(name)}),
        )

    @app.get("/models/{name}/versions/{version}", response_class=HTMLResponse)
    async def version_page(request: Request, name: str, version: int) -> HTMLResponse:
        registry = data._registry()
        v = registry.get(name, version)
        by_model = {x.artifact_id: x for n in data.models() for x in data.versions(n)}
        row = data.version_row(v, by_model)
        evaluation = data.evaluation_json(row.evaluation)
        report = data.report_file(row.evaluation) if row.evaluation is not None else None
        return page(
            request,
            "version.html",
            title=v.ref,
            name=name,
            row=row,
            v=v,
            candidate=evaluation.get("candidate") or {},
            report=report,
            others=[x.version for x in data.versions(name) if x.version != version],
        )

    @app.get("/models/{name}/compare", response_class=HTMLResponse)
    async def compare(request: Request, name: str, a: int, b: int) -> HTMLResponse:
        registry = data._registry()
        sides = []
        for version in (a, b):
            row = data.version_row(registry.get(name, version))
            sides.append((row, data.evaluation_json(row.evaluation).get("candidate") or {}))
        metrics = sorted(set(sides[0][0].version.metrics) | set(sides[1][0].version.metrics))
        classes = sorted(set(sides[0][1].get("per_class") or {}) | set(sides[1][1].get("per_class") or {}))
        class_metrics = sorted({k for _, c in sides for pc in (c.get("per_class") or {}).values() for k in pc})
        return page(
            request,
            "compare.html",
            title=f"{name}: version {a} vs {b}",
            name=name,
            sides=sides,
            metrics=metrics,
            classes=classes,
            class_metrics=class_metrics,
        )

    @app.get("/models/{name}/monitoring", response_class=HTMLResponse)
    async def monitoring(request: Request, name: str) -> HTMLResponse:
        from .monitoring import monitoring_view

        return page(request, "monitoring.html", title=f"{name}: continuous evaluation", name=name, view=monitoring_view(data, name))

    # ------------------------------------------------------------------ lineage and artifacts
    @app.get("/lineage/{artifact_id}", response_class=HTMLResponse)
    async def lineage(request: Request, artifact_id: int) -> HTMLResponse:
        from .graphs import GraphError, lineage_graph, lineage_svg

        art = data.store.get(artifact_id)
        nodes, edges = lineage_graph(data.store, artifact_id)
        try:
            svg, error = lineage_svg(nodes, edges, artifact_id, artifact_link), ""
        except GraphError as e:
            svg, error = "", str(e)
        return page(request, "lineage.html", title=f"Lineage of {art.kind} #{art.id}", art=art, svg=svg, error=error, nodes=nodes)

    @app.get("/artifacts/{artifact_id}", response_class=HTMLResponse)
    async def artifact(request: Request, artifact_id: int) -> HTMLResponse:
        art = data.store.get(artifact_id)
        files = data.artifact_files(art)
        incident = None
        if art.kind == "Alert" and data.dispatcher is not None and art.properties.get("dedup_key"):
            try:
                incident = data.dispatcher.find(str(art.properties["dedup_key"]))
            except CvpipeError:
                incident = None
        version = None
        if art.kind == "PushedModel" and art.properties.get("pushed"):
            version = (art.properties.get("model_name"), art.properties.get("version"))
        return page(
            request,
            "artifact.html",
            title=f"{art.kind} #{art.id}",
            art=art,
            files=sorted(files)[:200],
            more=max(0, len(files) - 200),
            report=data.report_file(art),
            incident=incident,
            version=version,
            is_manifest=art.kind == "Manifest",
        )

    @app.get("/artifacts/{artifact_id}/files/{name:path}")
    async def artifact_file(artifact_id: int, name: str) -> Response:
        art = artifact_or_404(artifact_id)
        files = data.artifact_files(art)
        key = "" if name == "-" else name
        if key not in files:  # only names listed under a known artifact; the request never becomes a path
            raise HTTPException(404, f"{art.kind} #{art.id} has no file {name!r}")
        path = files[key]
        media = "text/html" if _is_html(path) else (mimetypes.guess_type(path.name)[0] or "text/plain")
        if media.startswith("text/") or media.endswith(("json", "xml")):
            media = (
                "text/html; charset=utf-8"
                if media == "text/html"
                else ("text/plain; charset=utf-8" if media.startswith("text/") else media)
            )
        return FileResponse(path, media_type=media, headers={"Content-Security-Policy": FILE_CSP})

    # ------------------------------------------------------------------ runs
    @app.get("/runs", response_class=HTMLResponse)
    async def runs(request: Request) -> HTMLResponse:
        target, remote, remote_error = data.remote_runs()
        return page(request, "runs.html", title="Runs", runs=data.runs(limit=200), target=target, remote=remote, remote_error=remote_error)

    @app.get("/runs/remote/{target}/{run_id}", response_class=HTMLResponse)
    async def remote_run_page(request: Request, target: str, run_id: str) -> HTMLResponse:
        if not target or target != data.remote_target():
            return not_found(
                request, f"no {target} runs here: the spec's monitoring.retrain names {data.remote_target() or 'no remote target'}"
            )
        run = await run_in_threadpool(data.remote_run, run_id)
        return page(request, "remote_run.html", title=f"{target} run {run.run_id}", run=run)

    @app.get("/runs/{run_id}", response_class=HTMLResponse)
    async def run_page(request: Request, run_id: str) -> HTMLResponse:
        from ..cli.runs import run_overview

        steps = data.run_steps(run_id)
        if not steps:
            return not_found(request, f"no run {run_id!r} in {data.store.url}")
        artifacts = data.store.artifacts_of_run(run_id)
        made = data.outputs_of_run(run_id)
        return page(
            request,
            "run.html",
            title=f"Run {run_id}",
            run=run_overview(data.store, run_id),
            steps=steps,
            artifacts=artifacts,
            made={a.id for a in made},
            reports=data.reports_of(made),
        )

    # ------------------------------------------------------------------ data
    @app.get("/data", response_class=HTMLResponse)
    async def data_page(request: Request, q: str = "") -> HTMLResponse:
        quarantine = data.quarantine(q)
        return page(
            request,
            "data.html",
            title="Data",
            datasets=data.datasets(),
            quarantine=quarantine[:500],
            quarantine_total=len(quarantine),
            q=q,
            label_maps=data.label_maps(),
            manifests=list(reversed(data.store.artifacts("Manifest")))[:30],
        )

    @app.get("/data/manifests/{artifact_id}", response_class=HTMLResponse)
    async def images(request: Request, artifact_id: int, cls: str = "", page_no: int = 0) -> HTMLResponse:
        art = data.store.get(artifact_id)
        manifest = data.manifest(art)
        if manifest is None:
            return not_found(request, f"{art.kind} #{art.id} is not a readable manifest")
        names = manifest.label_map.classes
        chosen = [
            (i, r)
            for i, r in enumerate(manifest.images)
            if not cls or any(names.get(o.class_id) == cls for o in r.objects) or (r.class_id is not None and names.get(r.class_id) == cls)
        ]
        per_page = 48
        shown = chosen[page_no * per_page : (page_no + 1) * per_page]
        return page(
            request,
            "images.html",
            title=f"Images of Manifest #{art.id}",
            art=art,
            manifest=manifest,
            names=names,
            shown=shown,
            total=len(chosen),
            cls=cls,
            page_no=page_no,
            pages=(len(chosen) + per_page - 1) // per_page,
        )

    @app.get("/data/manifests/{artifact_id}/images/{index}")
    async def image(artifact_id: int, index: int) -> Response:
        art = artifact_or_404(artifact_id)
        manifest = data.manifest(art)
        if manifest is None or not 0 <= index < len(manifest.images):
            raise HTTPException(404, f"{art.kind} #{art.id} has no image {index}")
        path = manifest.image_path(manifest.images[index])
        if not path.is_file():
            raise HTTPException(404, f"image {manifest.images[index].image_id} of {art.kind} #{art.id} is missing: {path}")
        return FileResponse(path, media_type=mimetypes.guess_type(path.name)[0] or "application/octet-stream")

    @app.get("/data/batches/{artifact_id}", response_class=HTMLResponse)
    async def batch_page(request: Request, artifact_id: int) -> HTMLResponse:
        art = data.store.get(artifact_id)
        batch = data.labelling_batch(art)
        if batch is None:
            return not_found(request, f"{art.kind} #{art.id} is not a readable labelling batch")
        items = []
        for i, item in enumerate(batch.items):
            try:
                pred = json.loads(item.predictions) if isinstance(item.predictions, str) else dict(item.predictions or {})
            except ValueError:
                pred = {}
            boxes = [
                (box, batch.label_map.classes.get(int(cid), str(cid)), score)
                for box, cid, score in zip(pred.get("boxes") or [], pred.get("class_ids") or [], pred.get("scores") or [], strict=False)
                if score >= BOX_MIN_SCORE
            ]
            items.append((i, item, boxes))
        files = data.artifact_files(art)
        labels = data.labels_imported(art) or 0
        return page(
            request,
            "batch.html",
            title=f"Labelling batch {batch.batch_id}",
            art=art,
            batch=batch,
            items=items,
            min_score=BOX_MIN_SCORE,
            tasks="tasks.json" in files,
            labels=labels,
        )

    @app.get("/data/batches/{artifact_id}/images/{index}")
    async def batch_image(artifact_id: int, index: int) -> Response:
        art = artifact_or_404(artifact_id)
        batch = data.labelling_batch(art)
        if batch is None or not 0 <= index < len(batch.items):
            raise HTTPException(404, f"{art.kind} #{art.id} has no image {index}")
        uri = batch.items[index].image_uri or ""
        path = Path(uri.removeprefix("file://")) if uri and ("://" not in uri or uri.startswith("file://")) else None
        if path is None or not path.is_absolute() or not path.is_file():
            raise HTTPException(404, f"image {index} of batch {batch.batch_id} is not a local file: {uri}")
        return FileResponse(path, media_type=mimetypes.guess_type(path.name)[0] or "application/octet-stream")

    # ------------------------------------------------------------------ incidents
    @app.get("/incidents", response_class=HTMLResponse)
    async def incidents(request: Request, all: int = 0) -> HTMLResponse:
        found = data.incidents()
        shown = found if all else [i for i in found if i.status == "firing"] + [i for i in found if i.status != "firing"][:20]
        return page(request, "incidents.html", title="Incidents", incidents=shown, has_log=data.dispatcher is not None)

    @app.get("/incidents/{ref}", response_class=HTMLResponse)
    async def incident(request: Request, ref: str) -> HTMLResponse:
        view = data.incident(ref)
        alerts = [a for a in data.store.artifacts("Alert", dedup_key=view.incident.key)]
        return page(request, "incident.html", title=f"Incident {view.incident.incident_id}", view=view, alerts=alerts)

    # ------------------------------------------------------------------ actions
    def confirm(request: Request, action: str, target: str, fields: dict[str, str], what: str) -> HTMLResponse:
        if not token:
            return page(request, "error.html", status_code=403, title="Read-only", message=_READ_ONLY)
        return page(request, "confirm.html", title=f"Confirm: {what}", action=action, target=target, fields=fields, what=what)

    def check(request: Request, given_token: str, csrf: str, by: str) -> None:
        if not token:
            raise HTTPException(403, _READ_ONLY)
        origin = request.headers.get("origin")
        if origin and origin != "null" and urlparse(origin).netloc != request.headers.get("host"):
            raise HTTPException(403, f"cross-site request from {origin} refused")
        cookie = request.cookies.get(CSRF_COOKIE, "")
        if not cookie or not hmac.compare_digest(cookie, csrf):
            raise HTTPException(403, "the form's CSRF token does not match this browser's: reload the page and confirm again")
        if not hmac.compare_digest(given_token.encode(), token.encode()):
            raise HTTPException(403, "wrong token: the action was not done")
        if not by.strip():
            raise HTTPException(400, "say who you are (the 'by' field): actions are recorded with who did them")

    def record_version_action(name: str, version: int, action: str, by: str, extra: dict[str, Any]) -> None:
        v = data._registry().get(name, version)
        data.store.record_execution(
            "console_action",
            pipeline=name,
            run_id=f"console-{name}",
            inputs={"version": data.store.get(v.pushed_id)},
            properties={"action": action, "by": by.strip(), "model_name": name, "version": version, **extra},
        )

    def record_alias_move(name: str, move: Any, action: str, by: str) -> None:
        events = data._registry().alias_history(name, move.alias)
        seq = events[-1].seq if events else 0
        target = move.version if move.version is not None else move.previous
        extra = {"alias": move.alias, "alias_seq": seq, "from_version": move.previous or 0, "to_version": move.version or 0}
        record_version_action(name, int(target), action, by, extra)

    @app.get("/models/{name}/rollback", response_class=HTMLResponse)
    async def rollback_confirm(request: Request, name: str, alias: str = "champion") -> HTMLResponse:
        holder = data._registry().holder(name, alias)
        now = f"version {holder.version}" if holder else "no version"
        return confirm(
            request, f"/models/{quote(name)}/rollback", f"{name}@{alias}", {"alias": alias}, f"roll {name}@{alias} back (now {now})"
        )

    @app.post("/models/{name}/rollback")
    async def rollback(
        request: Request, name: str, alias: str = Form(...), token_: str = Form("", alias="token"), csrf: str = Form(""), by: str = Form("")
    ) -> Response:
        check(request, token_, csrf, by)
        move = data._registry().rollback(name, alias)
        record_alias_move(name, move, "rollback", by)
        return RedirectResponse(f"/models/{quote(name)}#alias-history", status_code=303)

    @app.get("/models/{name}/versions/{version}/promote", response_class=HTMLResponse)
    async def promote_confirm(request: Request, name: str, version: int, alias: str = "champion") -> HTMLResponse:
        return confirm(
            request,
            f"/models/{quote(name)}/versions/{version}/promote",
            f"{name}:{version}",
            {"alias": alias},
            f"point {name}@{alias} at version {version}",
        )

    @app.post("/models/{name}/versions/{version}/promote")
    async def promote(
        request: Request,
        name: str,
        version: int,
        alias: str = Form(...),
        token_: str = Form("", alias="token"),
        csrf: str = Form(""),
        by: str = Form(""),
    ) -> Response:
        check(request, token_, csrf, by)
        move = data._registry().set_alias(name, alias, version)
        if move.action != "unchanged":
            record_alias_move(name, move, "promote", by)
        return RedirectResponse(f"/models/{quote(name)}#alias-history", status_code=303)

    @app.get("/models/{name}/versions/{version}/archive", response_class=HTMLResponse)
    async def archive_confirm(request: Request, name: str, version: int, restore: int = 0) -> HTMLResponse:
        verb = "restore" if restore else "archive"
        return confirm(
            request,
            f"/models/{quote(name)}/versions/{version}/archive",
            f"{name}:{version}",
            {"restore": str(restore)},
            f"{verb} {name}:{version}",
        )

    @app.post("/models/{name}/versions/{version}/archive")
    async def archive(
        request: Request,
        name: str,
        version: int,
        restore: int = Form(0),
        token_: str = Form("", alias="token"),
        csrf: str = Form(""),
        by: str = Form(""),
    ) -> Response:
        check(request, token_, csrf, by)
        data._registry().archive(name, version, archived=not restore)
        record_version_action(name, version, "restore" if restore else "archive", by, {})
        return RedirectResponse(f"/models/{quote(name)}", status_code=303)

    @app.get("/incidents/{ref}/ack", response_class=HTMLResponse)
    async def ack_confirm(request: Request, ref: str) -> HTMLResponse:
        inc = data.incident(ref).incident
        return confirm(
            request, f"/incidents/{inc.incident_id}/ack", inc.incident_id, {"comment": ""}, f"acknowledge incident {inc.incident_id}"
        )

    @app.post("/incidents/{ref}/ack")
    async def ack(
        request: Request, ref: str, comment: str = Form(""), token_: str = Form("", alias="token"), csrf: str = Form(""), by: str = Form("")
    ) -> Response:
        check(request, token_, csrf, by)
        assert data.dispatcher is not None  # data.incident raised otherwise
        inc = data.dispatcher.ack(data.incident(ref).incident.incident_id, by.strip(), comment)
        return RedirectResponse(f"/incidents/{inc.incident_id}", status_code=303)

    @app.get("/incidents/{ref}/silence", response_class=HTMLResponse)
    async def silence_confirm(request: Request, ref: str) -> HTMLResponse:
        inc = data.incident(ref).incident
        return confirm(
            request,
            f"/incidents/{inc.incident_id}/silence",
            inc.incident_id,
            {"duration": "2h", "comment": ""},
            f"silence incident {inc.incident_id}",
        )

    @app.post("/incidents/{ref}/silence")
    async def silence(
        request: Request,
        ref: str,
        duration: str = Form("2h"),
        comment: str = Form(""),
        token_: str = Form("", alias="token"),
        csrf: str = Form(""),
        by: str = Form(""),
    ) -> Response:
        from components.alert.silence import Matcher
        from components.core.spec import parse_duration

        check(request, token_, csrf, by)
        if not comment.strip():
            raise HTTPException(400, "a silence needs a comment saying why")
        try:
            seconds = parse_duration(duration).total_seconds()
        except ValueError as e:
            raise HTTPException(400, f"duration: {e}") from None
        inc = data.incident(ref).incident
        assert data.dispatcher is not None
        data.dispatcher.silence([Matcher(name="dedup_key", value=inc.key)], seconds, by.strip(), comment)
        return RedirectResponse(f"/incidents/{inc.incident_id}", status_code=303)

    @app.get("/actions", response_class=HTMLResponse)
    async def actions(request: Request) -> HTMLResponse:
        return page(request, "actions.html", title="Actions", actions=data.console_actions())

    return app


_READ_ONLY = f"this console is read-only: it was started without ${TOKEN_ENV}, so no action can be taken here"


def _is_news(incident: Any) -> bool:
    """An announcement (an alias moved), logged like an incident but nothing to act on."""
    return incident.status == "announced" or incident.alert.cause == "alias" or incident.alert.name == "ModelAliasMoved"


def _json_list(value: Any) -> list[str]:
    if isinstance(value, str):
        try:
            found = json.loads(value)
        except ValueError:
            return [value]
        return [str(x) for x in found] if isinstance(found, list) else [str(found)]
    return []


HEADLINE = ("map_50", "map", "accuracy", "mean_iou", "f1", "precision", "recall")
"""Metrics shown first, in this order, where a table has room for a few."""


def _headline(metrics: dict[str, float], limit: int = 5) -> list[tuple[str, float]]:
    """The headline metrics first, then the rest by name; at most ``limit``."""
    order = sorted(metrics, key=lambda k: (HEADLINE.index(k) if k in HEADLINE else len(HEADLINE), k))
    return [(k, metrics[k]) for k in order[:limit]]


def _fmt(value: Any, digits: int = 4) -> str:
    """A number for a table (``-`` for none)."""
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        return f"{value:.{digits}g}"
    return str(value)
