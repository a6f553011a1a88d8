"""The console's pictures of graphs: the model fork tree and lineage, laid out by Graphviz (``dot``) as SVG.

Graphviz does the layout (no layout code here) and writes the SVG on the
server, so the page needs no script and no network. Every label and tooltip
goes through :func:`graphviz.escape` (no DOT or HTML-like label can be
smuggled in through a model, class or file name) and Graphviz escapes text
for XML when it writes the SVG. Each node links to its console page.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from components.core.lineage import ArtifactRef, LineageStore

if TYPE_CHECKING:
    from components.registry.tree import ForkNode

__all__ = ["Edge", "GraphError", "fork_tree_svg", "lineage_graph", "lineage_svg", "node_label"]

_FILL = {
    "Model": "#dbeafe",
    "PushedModel": "#bfdbfe",
    "ModelBlessing": "#dcfce7",
    "ModelEvaluation": "#dcfce7",
    "Alert": "#fee2e2",
    "DriftReport": "#ffedd5",
    "LabellingBatch": "#fef9c3",
    "RawDataset": "#f3e8ff",
    "LabelMap": "#f3e8ff",
    "Manifest": "#ede9fe",
    "Examples": "#ede9fe",
}


class GraphError(RuntimeError):
    """Graphviz could not draw the graph (``dot`` missing or failing); the message says which."""


@dataclass(frozen=True)
class Edge:
    """An edge ``source -> target`` labelled with the input name it was read as."""

    source: int
    target: int
    label: str = ""


def _short(value: Any, limit: int = 40) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def node_label(a: ArtifactRef) -> str:
    """A node's text: kind and id, then what identifies it (version, images, status...)."""
    p = a.properties
    lines = [f"{a.kind} #{a.id}"]
    if a.kind == "PushedModel" and p.get("model_name"):
        lines.append(f"{p['model_name']}:{p.get('version')}" if p.get("pushed") else f"{p['model_name']} (not pushed)")
    for key in ("model_name", "images", "version", "batch_id", "cause", "status", "blessed", "run_id"):
        if key in p and p[key] not in ("", None) and not (a.kind == "PushedModel" and key in ("model_name", "version")):
            lines.append(f"{key}: {_short(p[key])}")
        if len(lines) >= 4:
            break
    return "\n".join(lines)


def _render(graph: Any) -> str:
    import graphviz

    try:
        svg = graph.pipe(format="svg", encoding="utf-8")
    except graphviz.ExecutableNotFound as e:
        raise GraphError(f"Graphviz's `dot` is not installed (apt-get install graphviz): {e}") from None
    except graphviz.CalledProcessError as e:
        raise GraphError(f"Graphviz failed: {e}") from None
    return str(svg[svg.index("<svg") :])


def _digraph(rankdir: str) -> Any:
    import graphviz

    g = graphviz.Digraph(graph_attr={"rankdir": rankdir, "bgcolor": "transparent", "fontname": "sans-serif"})
    g.attr("node", shape="box", style="rounded,filled", fontname="sans-serif", fontsize="10", fillcolor="#f1f5f9")
    g.attr("edge", fontname="sans-serif", fontsize="9", color="#64748b")
    return g


def lineage_svg(nodes: Iterable[ArtifactRef], edges: Sequence[Edge], focus: int, link: Any) -> str:
    """Draws a lineage graph: artifacts as boxes, an edge from each input to what was made from it.

    Args:
        nodes: the artifacts.
        edges: ``source -> target`` edges.
        focus: the artifact asked about (drawn bold).
        link: ``artifact -> URL`` of the node's page.

    Returns:
        The SVG element.

    Raises:
        GraphError: Graphviz is missing or failed.
    """
    import graphviz

    g = _digraph("LR")
    for a in nodes:
        g.node(
            f"a{a.id}",
            label=graphviz.escape(node_label(a)),
            href=link(a),
            tooltip=graphviz.escape(_short(a.uri, 200)),
            fillcolor=_FILL.get(a.kind, "#f1f5f9"),
            penwidth="2.5" if a.id == focus else "1",
            id=f"node_{a.id}",
        )
    for e in edges:
        g.edge(f"a{e.source}", f"a{e.target}", label=graphviz.escape(e.label))
    return _render(g)


def fork_tree_svg(roots: Sequence[ForkNode], link: Any) -> str:
    """Draws the fork tree: each trained model under the model it was warm-started from.

    Args:
        roots: :meth:`Registry.tree` roots.
        link: ``ForkNode -> URL`` of the node's page.

    Returns:
        The SVG element.

    Raises:
        GraphError: Graphviz is missing or failed.
    """
    import graphviz

    g = _digraph("TB")

    def add(node: ForkNode) -> None:
        if node.versions:
            lines = []
            for v in node.versions:
                state = "archived" if v.archived else ("blessed" if v.blessed else "not blessed")
                lines.append(f"{v.ref}" + (f" [{', '.join(v.aliases)}]" if v.aliases else "") + f" {state}")
            fill = "#bfdbfe" if any(v.aliases for v in node.versions) else "#e0f2fe"
        else:
            lines = [f"Model #{node.model.id} (not registered)"]
            fill = "#f1f5f9"
        if node.dataset is not None:
            lines.append(f"data: {node.dataset.describe()}")
        if node.run_id:
            lines.append(f"run {_short(node.run_id, 36)}")
        g.node(f"m{node.model.id}", label=graphviz.escape("\n".join(lines)), href=link(node), fillcolor=fill, id=f"fork_{node.model.id}")
        for child in node.children:
            add(child)
            g.edge(f"m{node.model.id}", f"m{child.model.id}", label="warm start")

    for r in roots:
        add(r)
    return _render(g)


def lineage_graph(store: LineageStore, artifact_id: int, max_nodes: int = 80) -> tuple[list[ArtifactRef], list[Edge]]:
    """The upstream and downstream neighbourhood of an artifact, as nodes and edges.

    Upstream comes from :meth:`LineageStore.upstream`; downstream from
    :meth:`LineageStore.downstream_ids`, each downstream artifact joined to its
    inputs by its own producing execution.

    Args:
        store: the lineage store.
        artifact_id: the artifact.
        max_nodes: stop adding downstream artifacts after this many nodes.

    Returns:
        ``(nodes, edges)``.
    """
    graph = store.upstream(artifact_id)
    nodes: dict[int, ArtifactRef] = {}
    edges: set[Edge] = set()
    stack = [graph.root]
    seen: set[int] = set()
    while stack:
        n = stack.pop()
        if n.artifact.id in seen:
            continue
        seen.add(n.artifact.id)
        nodes[n.artifact.id] = n.artifact
        for key, child in n.inputs:
            edges.add(Edge(child.artifact.id, n.artifact.id, key))
            stack.append(child)
    below = []
    for did in store.downstream_ids(artifact_id, limit=max_nodes):
        if len(nodes) >= max_nodes:
            break
        up = store.upstream(did, max_depth=1).root
        nodes[did] = up.artifact
        below.append(up)
    for up in below:  # edges once every node is known, so none is lost to the walk's order
        for key, child in up.inputs:
            if child.artifact.id in nodes:
                edges.add(Edge(child.artifact.id, up.artifact.id, key))
    return list(nodes.values()), sorted(edges, key=lambda e: (e.source, e.target, e.label))
