"""Resolve what a user types (an artifact id, ``name:version``, ``name@alias``) to an artifact."""

from __future__ import annotations

import re

from components.core.errors import LineageError
from components.core.lineage import ArtifactRef, LineageStore

__all__ = ["resolve_artifact"]


def resolve_artifact(store: LineageStore, ref: str) -> ArtifactRef:
    """Finds the artifact a reference names.

    Args:
        store: the lineage store.
        ref: an artifact id (``42``), a registry version (``demo:3``) or alias
            (``demo@champion``), or a pipeline's model name (``demo``: its newest Model).

    Returns:
        The artifact; for a registry reference, the pushed model version.

    Raises:
        LineageError: nothing matches.
    """
    if ref.isdigit():
        return store.get(int(ref))
    m = re.fullmatch(r"([^:@]+)(?::(\d+)|@(.+))?", ref)
    if not m:
        raise LineageError(f"cannot read {ref!r}: use an artifact id, NAME:VERSION, NAME@ALIAS or NAME")
    name, version, alias = m.group(1), m.group(2), m.group(3)
    if version is not None:
        found = [a for a in store.artifacts("PushedModel", model_name=name) if str(a.properties.get("version")) == version]
        if found:
            return found[-1]
        raise LineageError(f"no version {version} of model {name!r} in {store.url}")
    if alias is not None:
        for a in reversed(store.artifacts("PushedModel", model_name=name)):
            aliases = a.properties.get("aliases") or "[]"
            if alias in (aliases if isinstance(aliases, list) else re.findall(r'"([^"]+)"', str(aliases))):
                return a
        raise LineageError(f"no version of model {name!r} has alias {alias!r} in {store.url}")
    model = store.latest("Model", model_name=name)
    if model is not None:
        return model
    raise LineageError(f"no model named {name!r} in {store.url}; pass an artifact id (see `cvpipe runs list`)")
