"""Registry value types: versions, alias events and moves, registration requests and results, name rules.

Both backends (:mod:`.local`, :mod:`.vertex`), the fork tree (:mod:`.tree`) and
the MLMD-backed base class (:mod:`.base`) share these; they hold no store.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from components.core.errors import RegistryError
from components.core.lineage import ArtifactRef, NewArtifact

__all__ = [
    "AliasAction",
    "AliasEvent",
    "AliasMove",
    "ModelVersion",
    "Recorder",
    "RegisterRequest",
    "RegisterResult",
    "now_ms",
    "parse_ref",
    "validate_alias",
    "validate_model_name",
]

AliasAction = Literal["set", "rollback", "remove"]

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_ALIAS_RE = re.compile(r"^[a-z][a-zA-Z0-9-]{0,126}[a-z0-9-]$|^[a-z]$")
_REF_RE = re.compile(r"^(?P<name>[a-z0-9][a-z0-9_-]*)(?::(?P<version>\d+)|@(?P<alias>[A-Za-z0-9-]+))?$")


def validate_model_name(name: str) -> str:
    """Checks a registry model name (lowercase letters, digits, ``-``, ``_``; at most 63 characters).

    Args:
        name: the name.

    Returns:
        The name.

    Raises:
        RegistryError: the name is not allowed.
    """
    if not _NAME_RE.match(name or ""):
        raise RegistryError(
            f"invalid model name {name!r}: use lowercase letters, digits, '-' and '_' (at most 63, first a letter or digit)"
        )
    return name


def validate_alias(alias: str) -> str:
    """Checks an alias (Vertex AI's rule: ``[a-z][a-zA-Z0-9-]{0,126}[a-z0-9-]``).

    Args:
        alias: the alias.

    Returns:
        The alias.

    Raises:
        RegistryError: the alias is not allowed.
    """
    if not _ALIAS_RE.match(alias or ""):
        raise RegistryError(f"invalid alias {alias!r}: start with a lowercase letter; then letters, digits and '-' (at most 128)")
    return alias


def parse_ref(ref: str) -> tuple[str, int | None, str | None]:
    """Reads a model reference: ``name:version``, ``name@alias`` or ``name``.

    Args:
        ref: the reference.

    Returns:
        ``(model_name, version or None, alias or None)``.

    Raises:
        RegistryError: the reference cannot be read.
    """
    m = _REF_RE.match(ref.strip())
    if not m:
        raise RegistryError(f"cannot read model reference {ref!r}: use NAME:VERSION (demo:3), NAME@ALIAS (demo@champion) or NAME")
    version = m.group("version")
    return m.group("name"), int(version) if version is not None else None, m.group("alias")


@dataclass(frozen=True)
class AliasEvent:
    """One change of an alias.

    Attributes:
        alias: the alias.
        action: ``set``, ``rollback`` or ``remove``.
        version: the version the alias points to afterwards (None after ``remove``).
        previous: the version it pointed to before (None when it pointed nowhere).
        seq: position in the model's alias history.
        at_ms: when, milliseconds since the epoch.
    """

    alias: str
    action: AliasAction
    version: int | None
    previous: int | None
    seq: int
    at_ms: int


@dataclass(frozen=True)
class AliasMove:
    """The result of changing an alias.

    Attributes:
        model_name: the model.
        alias: the alias.
        previous: the version it pointed to before (None when it pointed nowhere).
        version: the version it points to now (None after a removal).
        action: ``set``, ``rollback`` or ``remove``; ``unchanged`` when it already pointed there.
    """

    model_name: str
    alias: str
    previous: int | None
    version: int | None
    action: str


@dataclass(frozen=True)
class ModelVersion:
    """One version of a registered model.

    Attributes:
        model_name: the registry model name.
        version: the version number.
        model_dir: the model's files (``saved_model/``, ``label_map.json``, ...) as a local path.
        uri: where the version lives for its backend (a directory, or ``gs://...`` on Vertex AI).
        artifact_id: the MLMD ``Model`` artifact the version was made from.
        pushed_id: the MLMD ``PushedModel`` artifact of the version.
        aliases: the aliases it holds.
        blessed: whether evaluation blessed it.
        metrics: evaluation metrics.
        archived: archived versions take no aliases and are skipped by :meth:`Registry.latest`.
        digest: sha256 over the model's files.
        created_ms: registration time, milliseconds since the epoch.
        blessing_id: the MLMD ``ModelBlessing`` artifact, if any.
        backend: ``local`` or ``vertex``.
        resource_name: the Vertex AI model version (``projects/.../models/M@3``), if any.
    """

    model_name: str
    version: int
    model_dir: Path
    uri: str
    artifact_id: int
    pushed_id: int
    aliases: tuple[str, ...] = ()
    blessed: bool = False
    metrics: dict[str, float] = field(default_factory=dict)
    archived: bool = False
    digest: str = ""
    created_ms: int = 0
    blessing_id: int | None = None
    backend: str = "local"
    resource_name: str | None = None

    @property
    def ref(self) -> str:
        """``name:version``."""
        return f"{self.model_name}:{self.version}"


@dataclass(frozen=True)
class RegisterRequest:
    """What to register.

    Attributes:
        model_dir: the trained model directory (must hold ``saved_model/saved_model.pb``).
        model_name: registry model name.
        uri: the model artifact's URI (``gs://...`` on Vertex AI); default: ``model_dir``.
        metrics: evaluation metrics to keep with the version.
        blessed: whether evaluation blessed the model.
        source_model_id: the MLMD ``Model`` artifact (looked up by ``uri`` when None).
        blessing_id: the MLMD ``ModelBlessing`` artifact, if any.
        aliases: aliases to point at the new version (moved from other versions).
        description: free text kept with the version.
    """

    model_dir: Path
    model_name: str
    uri: str | None = None
    metrics: Mapping[str, float] = field(default_factory=dict)
    blessed: bool = False
    source_model_id: int | None = None
    blessing_id: int | None = None
    aliases: Sequence[str] = ()
    description: str = ""


@dataclass(frozen=True)
class RegisterResult:
    """What a registration did.

    Attributes:
        version: the version (new, or the existing one holding the same model).
        created: False when the same model (same source artifact or same files) was already registered.
        moves: alias changes made.
    """

    version: ModelVersion
    created: bool
    moves: list[AliasMove] = field(default_factory=list)


class Recorder(Protocol):
    """Records one execution in MLMD; :meth:`components.core.step.StepContext.record` is one."""

    def __call__(
        self,
        inputs: Mapping[str, ArtifactRef | Sequence[ArtifactRef] | None],
        outputs: Mapping[str, NewArtifact | None],
        properties: Mapping[str, Any] | None = None,
    ) -> dict[str, ArtifactRef]: ...


def now_ms() -> int:
    """Milliseconds since the epoch."""
    return int(time.time() * 1000)
