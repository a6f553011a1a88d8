"""The push step: register a blessed model in the registry and point the spec's alias at it.

Promotion is explicit. Push reads the evaluation's ``blessing.json``; when
the model is not blessed it registers nothing and records the refusal, and
the pipeline still succeeds. Like TFX's Pusher, both outcomes produce a
``PushedModel`` artifact: ``pushed=True`` is the registry version itself
(recorded at the version's URI: its directory, or the Vertex AI version
resource), ``pushed=False`` is the refusal, at the step's output URI with
the evaluation's ``reasons``. Registry queries only ever look at
``pushed=True`` records.

The step's output directory gets ``push.json`` describing the outcome either
way. Pushing the same model again (a retried run) finds its existing version
instead of making a second one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from components.core.errors import RegistryError
from components.core.io import atomic_write_json, read_json
from components.core.lineage import ArtifactRef, NewArtifact
from components.core.step import ArtifactUris, StepContext
from components.registry import AliasMove, ModelVersion, RegisterRequest, Registry, get_registry

__all__ = ["BLESSING_FILE", "PUSH_FILE", "Blessing", "PushResult", "read_blessing", "run"]

BLESSING_FILE = "blessing.json"
"""The evaluation's verdict inside the blessing directory."""

PUSH_FILE = "push.json"
"""The outcome inside the push step's output directory."""


@dataclass(frozen=True)
class Blessing:
    """The evaluation's verdict.

    Attributes:
        blessed: whether the model passed its thresholds (and the baseline comparison).
        reasons: why not (or notes when blessed).
        metrics: evaluation metrics.
        baseline_id: the baseline the model was compared with, if any.
    """

    blessed: bool
    reasons: list[str] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    baseline_id: Any = None


@dataclass
class PushResult:
    """What the push step did.

    Attributes:
        pushed: whether the model is in the registry.
        model_name: the registry model name.
        reasons: why it was not pushed (empty when pushed).
        version: the registry version (None when not pushed).
        created: False when the model was already registered (a repeated push).
        moves: alias changes.
        artifacts: recorded output artifacts (``pushed``).
    """

    pushed: bool
    model_name: str
    reasons: list[str] = field(default_factory=list)
    version: ModelVersion | None = None
    created: bool = False
    moves: list[AliasMove] = field(default_factory=list)
    artifacts: dict[str, ArtifactRef] = field(default_factory=dict)


def read_blessing(blessing_dir: Path) -> Blessing:
    """Reads ``blessing.json`` from the evaluation's blessing directory.

    Args:
        blessing_dir: the directory (or the file itself).

    Returns:
        The verdict.

    Raises:
        RegistryError: the file is missing or malformed (a broken pipeline, not a refusal).
    """
    path = blessing_dir if blessing_dir.is_file() else blessing_dir / BLESSING_FILE
    try:
        data = read_json(path)
    except OSError as e:
        raise RegistryError(f"{path}: cannot read the blessing: {e.strerror or e}") from None
    except ValueError as e:
        raise RegistryError(f"{path}: the blessing is not valid JSON: {e}") from None
    if not isinstance(data, dict) or not isinstance(data.get("blessed"), bool):
        raise RegistryError(f"{path}: the blessing must be a JSON object with a boolean 'blessed'")
    metrics = data.get("metrics") or {}
    return Blessing(
        blessed=data["blessed"],
        reasons=[str(r) for r in data.get("reasons") or []],
        metrics={str(k): float(v) for k, v in metrics.items() if isinstance(v, int | float) and not isinstance(v, bool)},
        baseline_id=data.get("baseline_id"),
    )


def run(
    ctx: StepContext,
    model_dir: Path,
    blessing_dir: Path,
    pushed_dir: Path,
    uris: ArtifactUris | Mapping[str, str] | None = None,
    registry: Registry | None = None,
) -> PushResult:
    """The push step: register the model when blessed, record the outcome once.

    Args:
        ctx: the step context.
        model_dir: the trained model directory.
        blessing_dir: the evaluation's blessing directory (``blessing.json``).
        pushed_dir: output directory for ``push.json``.
        uris: artifact URIs by name (``model``, ``blessing``, ``pushed``); a
            missing one means the local directory.
        registry: the registry; default: the one ``ctx.spec.registry`` names.

    Returns:
        The outcome.

    Raises:
        RegistryError: the blessing is unreadable, or registering failed.
    """
    spec = ctx.spec
    u = ArtifactUris.of(uris)
    name = spec.model_name
    blessing = read_blessing(blessing_dir)
    reg = registry if registry is not None else get_registry(spec.registry, ctx.store)
    model_ref = ctx.input_artifact(u.get("model", str(model_dir)), "Model", {"model_name": name, "pipeline": spec.name})
    blessing_ref = ctx.input_artifact(u.get("blessing", str(blessing_dir)), "ModelBlessing", {"blessed": blessing.blessed})
    outcome: dict[str, Any] = {"model_name": name, "registry": reg.location, "backend": reg.backend, "source_model_id": model_ref.id}

    if not blessing.blessed:
        reasons = blessing.reasons or ["the evaluation did not bless the model"]
        ctx.log.info("not pushing %s: %s", name, "; ".join(reasons))
        props = {
            "pushed": False,
            "model_name": name,
            "reasons": json.dumps(reasons),
            "registry": reg.location,
            "backend": reg.backend,
            "source_model_id": model_ref.id,
        }
        recorded = ctx.record(
            inputs={"model": model_ref, "blessing": blessing_ref},
            outputs={"pushed": NewArtifact("PushedModel", u.get("pushed", str(pushed_dir)), props)},
            properties={"model_name": name, "pushed": False},
        )
        atomic_write_json(pushed_dir / PUSH_FILE, {"pushed": False, "reasons": reasons, **outcome})
        return PushResult(pushed=False, model_name=name, reasons=reasons, artifacts=recorded)

    recorded_out: dict[str, ArtifactRef] = {}

    def record(inputs: Any, outputs: Any, properties: Any = None) -> dict[str, ArtifactRef]:
        out = ctx.record(inputs, outputs, properties)
        recorded_out.update(out)
        return out

    request = RegisterRequest(
        model_dir=model_dir,
        model_name=name,
        uri=u.get("model"),
        metrics=blessing.metrics,
        blessed=True,
        source_model_id=model_ref.id,
        blessing_id=blessing_ref.id,
        aliases=[spec.registry.alias],
    )
    result = reg.register(request, recorder=record)
    v = result.version
    ctx.log.info("%s %s (aliases: %s)", "pushed" if result.created else "already registered as", v.ref, ", ".join(v.aliases) or "none")
    atomic_write_json(
        pushed_dir / PUSH_FILE,
        {
            "pushed": True,
            **outcome,
            "version": v.version,
            "ref": v.ref,
            "uri": v.uri,
            "model_dir": str(v.model_dir),
            "aliases": list(v.aliases),
            "created": result.created,
            "pushed_id": v.pushed_id,
            "metrics": v.metrics,
            "moves": [{"alias": m.alias, "from": m.previous, "to": m.version, "action": m.action} for m in result.moves],
        },
    )
    _announce_moves(ctx, v, result.moves)
    return PushResult(pushed=True, model_name=name, version=v, created=result.created, moves=result.moves, artifacts=recorded_out)


def _announce_moves(ctx: StepContext, version: ModelVersion, moves: list[AliasMove]) -> None:
    """Every alias a push moved is announced to on-call (when the spec configures alerting)."""
    mon = ctx.spec.monitoring
    if mon is None:
        return
    from components.alert.announce import announce_alias

    config = mon.alert_config(ctx.spec.runtime.root)
    for m in moves:
        if m.action in ("set", "rollback") and m.version is not None:
            announce_alias(config, m.model_name, m.alias, m.version, m.previous, f"pushed by run {ctx.run_id}", runbook_url=mon.runbook_url)
            ctx.log.info("announced: %s@%s is now version %s (was %s)", m.model_name, m.alias, m.version, m.previous)
