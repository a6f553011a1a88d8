"""``cvpipe ui``: the console for both loops, in a browser, served by cvpipe itself.

Pages (server-rendered with Jinja2, graphs laid out by Graphviz, no script,
nothing fetched from elsewhere): overview, models (versions, blessing,
fork tree, alias history, evaluation reports, comparison), continuous
evaluation, lineage of any artifact, runs, data, incidents, and the actions
(promote, roll back, archive, acknowledge, silence) that a token allows.

* :mod:`.data` reads the stores (:class:`~.data.ConsoleData`);
* :mod:`.graphs` draws the fork tree and lineage;
* :mod:`.monitoring` gathers the continuous-evaluation history;
* :mod:`.app` is the FastAPI application (:func:`~.app.create_app`) and its guards;
* :func:`serve` runs it with uvicorn.

See docs/console.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .data import ConsoleData

__all__ = ["serve"]


def serve(data: ConsoleData, host: str = "127.0.0.1", port: int = 8050, token: str | None = None) -> None:
    """Serves the console until interrupted.

    Args:
        data: what the console reads.
        host: interface to bind (127.0.0.1 unless told otherwise).
        port: TCP port.
        token: the token that allows actions (None: read-only).
    """
    import uvicorn

    from .app import create_app

    uvicorn.run(create_app(data, token), host=host, port=port, log_level="warning")
