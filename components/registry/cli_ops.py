"""What ``cvpipe models list | show | promote | rollback | archive | tree`` print.

Each function takes a :class:`~components.registry.base.Registry` (see
:func:`open_registry`), does the operation and returns plain text (rich
tables and trees rendered without colour), so the CLI only prints it and
tests compare strings. Failures raise :class:`~components.core.errors.RegistryError`
with a message meant for the user.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime
from typing import Any

from components.core.errors import RegistryError
from components.core.lineage import LineageStore
from components.core.spec import PipelineSpec

from .base import AliasMove, ModelVersion, Registry, parse_ref
from .tree import ForkNode, training_inputs

__all__ = ["archive_text", "list_text", "open_registry", "promote_text", "rollback_text", "show_text", "tree_text"]

DEFAULT_WIDTH = 120


def open_registry(spec: PipelineSpec, vertex: Any = None, *, create: bool = True) -> Registry:
    """The registry and lineage store a pipeline spec names.

    Args:
        spec: the pipeline spec (``registry`` and ``runtime.metadata``).
        vertex: :class:`~components.registry.vertex.VertexOptions` for the Vertex AI backend.
        create: create a SQLite store that does not exist (False for read-only commands:
            :class:`~components.core.lineage.MissingStoreError` instead).

    Returns:
        The registry.
    """
    from . import get_registry

    store = LineageStore.for_spec(spec.runtime.metadata, base_dir=spec.runtime.root, create=create)
    return get_registry(spec.registry, store, vertex)


def _render(*items: Any, width: int = DEFAULT_WIDTH) -> str:
    from rich.console import Console

    buf = io.StringIO()
    console = Console(
        file=buf, width=width, color_system=None, force_terminal=False, highlight=False, markup=False, emoji=False, soft_wrap=False
    )
    for item in items:
        console.print(item)
    return "\n".join(line.rstrip() for line in buf.getvalue().rstrip().splitlines())


def _when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M") if ms else ""


def _metrics(m: dict[str, float], limit: int | None = 4) -> str:
    items = sorted(m.items())
    shown = items if limit is None else items[:limit]
    text = ", ".join(f"{k}={v:.4g}" for k, v in shown)
    return text + (f", +{len(items) - len(shown)}" if len(items) > len(shown) else "")


def _state(v: ModelVersion) -> str:
    return "archived" if v.archived else ("blessed" if v.blessed else "not blessed")


def list_text(registry: Registry, model_name: str | None = None, include_archived: bool = False, width: int = DEFAULT_WIDTH) -> str:
    """``cvpipe models list``: a table of versions.

    Args:
        registry: the registry.
        model_name: one model; None for every model.
        include_archived: show archived versions too.
        width: text width.

    Returns:
        The table, or a line saying there is nothing.
    """
    from rich.table import Table

    names = [model_name] if model_name else registry.models()
    rows = [v for n in names for v in registry.versions(n, include_archived=include_archived)]
    if not rows:
        where = f"model {model_name!r}" if model_name else "any model"
        return f"no versions of {where} in {registry.location}"
    table = Table(title=f"models in {registry.location}", title_justify="left")
    for col in ("model", "version", "aliases", "state", "metrics", "created (UTC)", "source"):
        table.add_column(col, overflow="fold")
    for v in rows:
        table.add_row(
            v.model_name,
            str(v.version),
            ", ".join(v.aliases),
            _state(v),
            _metrics(v.metrics),
            _when(v.created_ms),
            f"Model #{v.artifact_id}",
        )
    return _render(table, width=width)


def show_text(registry: Registry, ref: str, width: int = DEFAULT_WIDTH) -> str:
    """``cvpipe models show REF``: one version with its metrics, lineage and alias history.

    Args:
        registry: the registry.
        ref: ``name:version``, ``name@alias`` or ``name``.
        width: text width.

    Returns:
        The details.
    """
    from rich.table import Table

    v = registry.resolve(ref)
    parent, dataset, run_id = training_inputs(registry.store, v.artifact_id)
    parents = [
        p for n in registry.models() for p in registry.versions(n, include_archived=True) if parent is not None and p.artifact_id == parent
    ]
    info = Table.grid(padding=(0, 2))
    info.add_column(style="bold")
    info.add_column(overflow="fold")
    info.add_row("version", v.ref)
    info.add_row("aliases", ", ".join(v.aliases) or "-")
    info.add_row("state", _state(v))
    info.add_row("metrics", _metrics(v.metrics, limit=None) or "-")
    info.add_row("files", str(v.model_dir))
    if v.resource_name:
        info.add_row("vertex ai", v.resource_name)
    info.add_row("digest", v.digest or "-")
    info.add_row("registered", _when(v.created_ms) + " UTC")
    info.add_row(
        "lineage", f"PushedModel #{v.pushed_id} <- Model #{v.artifact_id}" + (f" (blessing #{v.blessing_id})" if v.blessing_id else "")
    )
    info.add_row("trained by run", run_id or "-")
    info.add_row("dataset", dataset.describe() if dataset else "-")
    if parent is not None:
        info.add_row("warm-started from", ", ".join(p.ref for p in parents) or f"Model #{parent} (not registered)")
    items: list[Any] = [info]
    history = [e for e in registry.alias_history(v.model_name) if v.version in (e.version, e.previous)]
    if history:
        table = Table(title="alias history", title_justify="left")
        for col in ("#", "when (UTC)", "alias", "action", "from", "to"):
            table.add_column(col)
        for e in history:
            table.add_row(
                str(e.seq), _when(e.at_ms), e.alias, e.action, str(e.previous) if e.previous else "-", str(e.version) if e.version else "-"
            )
        items.append(table)
    return _render(*items, width=width)


def _move_line(m: AliasMove) -> str:
    if m.action == "unchanged":
        return f"{m.model_name}@{m.alias} already points to version {m.version}"
    if m.version is None:
        return f"{m.model_name}@{m.alias} removed (was version {m.previous})"
    was = f" (was version {m.previous})" if m.previous is not None else ""
    verb = "rolled back to" if m.action == "rollback" else "->"
    return f"{m.model_name}@{m.alias} {verb} version {m.version}{was}"


def promote_text(registry: Registry, ref: str, alias: str = "champion") -> str:
    """``cvpipe models promote REF [--alias A]``: points an alias at a version.

    Args:
        registry: the registry.
        ref: the version (``name:version``, or ``name@other-alias`` to copy another alias).
        alias: the alias to move (one per consuming application).

    Returns:
        One line saying what changed.
    """
    v = registry.resolve(ref)
    return _move_line(registry.set_alias(v.model_name, alias, v.version))


def rollback_text(registry: Registry, ref: str, alias: str = "champion") -> str:
    """``cvpipe models rollback NAME[@ALIAS]``: moves an alias back to its previous version.

    Args:
        registry: the registry.
        ref: ``name@alias``, or ``name`` with ``alias``.
        alias: the alias when ``ref`` names none.

    Returns:
        One line saying what changed.
    """
    name, version, named = parse_ref(ref)
    if version is not None:
        raise RegistryError(f"rollback moves an alias: use NAME@ALIAS (for example {name}@{alias}), not a version")
    return _move_line(registry.rollback(name, named or alias))


def archive_text(registry: Registry, ref: str, restore: bool = False) -> str:
    """``cvpipe models archive REF [--restore]``.

    Args:
        registry: the registry.
        ref: the version.
        restore: un-archive instead.

    Returns:
        One line saying what changed.
    """
    v = registry.resolve(ref)
    done = registry.archive(v.model_name, v.version, archived=not restore)
    return f"{done.ref} {'archived' if done.archived else 'restored'}"


def _label(node: ForkNode) -> str:
    if node.versions:
        parts = []
        for v in node.versions:
            tags = f" [{', '.join(v.aliases)}]" if v.aliases else ""
            parts.append(f"{v.ref}{tags} {_state(v)}" + (f" {_metrics(v.metrics, limit=2)}" if v.metrics else ""))
        head = "; ".join(parts)
    else:
        name = node.model.properties.get("model_name", "")
        head = f"Model #{node.model.id}" + (f" ({name})" if name else "") + " not registered"
    tail = []
    if node.dataset is not None:
        tail.append(f"data: {node.dataset.describe()}")
    if node.run_id:
        tail.append(f"run {node.run_id}")
    return head + (" · " + " · ".join(tail) if tail else "")


def tree_text(registry: Registry, model_name: str | None = None, width: int = DEFAULT_WIDTH) -> str:
    """``cvpipe models tree [NAME]``: models under the models they were warm-started from.

    Args:
        registry: the registry.
        model_name: only trees containing this model.
        width: text width.

    Returns:
        The tree.
    """
    from rich.tree import Tree

    roots = registry.tree(model_name)
    if not roots:
        return f"no registered models{f' named {model_name!r}' if model_name else ''} in {registry.location}"
    top = Tree(f"model forks in {registry.location}")

    def add(parent: Tree, node: ForkNode) -> None:
        branch = parent.add(_label(node))
        for child in node.children:
            add(branch, child)

    for r in roots:
        add(top, r)
    return _render(top, width=width)
