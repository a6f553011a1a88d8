"""What a user step sees: the ``@step`` decorator, its inputs, and how cvpipe finds it.

A user step is a plain Python function::

    import cvpipe

    @cvpipe.step
    def near_duplicates(inputs: cvpipe.StepInputs, max_share: float = 0.1) -> dict:
        manifest = inputs.manifest()                 # the artifacts of the step it follows
        share = ...
        if share > max_share:
            raise cvpipe.Veto(f"{share:.0%} of images are near-duplicates (limit {max_share:.0%})")
        return {"near_duplicate_share": share}       # recorded in lineage, shown by `cvpipe run`

The spec names it (``steps: [{name: near-duplicates, after: ingest, function:
"mypackage.gates:near_duplicates", params: {max_share: 0.2}}]``); ``params``
become its keyword arguments. cvpipe imports it by that path inside the task,
so its package must be importable there: installed in the component image on a
cluster, in the environment of ``cvpipe run`` locally.

This module imports neither kfp nor TensorFlow.
"""

from __future__ import annotations

import importlib
import inspect
import os
import re
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from components.core.manifest import Manifest

__all__ = [
    "ARTIFACTS_AFTER",
    "StepArtifact",
    "StepInputs",
    "check_function_steps",
    "check_params",
    "is_step",
    "load_step_function",
    "step",
    "veto_in_log",
]

F = TypeVar("F", bound=Callable[..., Any])

_MARK = "__cvpipe_step__"

ARTIFACTS_AFTER: dict[str, dict[str, str]] = {
    "ingest": {"manifest": "Manifest", "label_map": "LabelMap", "quarantine": "QuarantineReport"},
    "validate": {
        "manifest": "Manifest",
        "label_map": "LabelMap",
        "statistics": "ExampleStatistics",
        "schema": "Schema",
        "anomalies": "ExampleAnomalies",
    },
    "transform": {"examples": "Examples", "label_map": "LabelMap"},
    "train": {"model": "Model", "examples": "Examples", "label_map": "LabelMap"},
    "evaluate": {"model": "Model", "evaluation": "ModelEvaluation", "blessing": "ModelBlessing", "examples": "Examples"},
}
"""Per built-in step a user step can follow: the artifacts the user step receives (name -> lineage kind).

After ``validate``, ``manifest`` is the validated manifest (quarantined items removed)."""


def step(fn: F | None = None, /, *, name: str | None = None) -> Any:
    """Marks a function as a cvpipe user step (usable bare, ``@step``, or as ``@step(name=...)``).

    The function takes a :class:`StepInputs` first and the spec's ``params`` as
    keyword arguments. It may return a mapping of names to numbers, strings or
    booleans (recorded on the step's lineage execution and shown as its result)
    or None, and raises :class:`~components.core.errors.Veto` to stop the run.
    The function stays an ordinary function: a test calls it directly.

    Args:
        fn: the function.
        name: a display name for messages (default: the function's name).

    Returns:
        The function, marked.
    """

    def mark(f: F) -> F:
        if not callable(f):
            raise TypeError(f"@cvpipe.step decorates a function, not {type(f).__name__}")
        setattr(f, _MARK, {"name": name or getattr(f, "__name__", "step")})
        return f

    return mark(fn) if fn is not None else mark


def is_step(obj: Any) -> bool:
    """Whether ``obj`` was decorated with :func:`step`.

    Args:
        obj: anything.

    Returns:
        True for a marked function.
    """
    return callable(obj) and isinstance(getattr(obj, _MARK, None), dict)


def load_step_function(path: str) -> Callable[..., Any]:
    """Imports a ``"package.module:function"`` and checks that it is a ``@cvpipe.step``.

    Args:
        path: the dotted path.

    Returns:
        The function.

    Raises:
        ValueError: the path is malformed, the module or function is missing, or it is not a cvpipe step;
            the message says which and what to do.
    """
    module_name, sep, attr = path.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f'{path!r} is not "package.module:function"')
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise ValueError(
            f"cannot import {module_name!r} for step function {path!r}: {e}. The package must be importable where "
            "the pipeline runs: installed in the component image on a cluster, in the environment of `cvpipe run` locally"
        ) from None
    fn = getattr(module, attr, None)
    if fn is None:
        raise ValueError(f"module {module_name!r} ({getattr(module, '__file__', '?')}) has no {attr!r}")
    if not is_step(fn):
        raise ValueError(f"{path} is not a cvpipe step: decorate it with @cvpipe.step")
    return fn  # type: ignore[no-any-return]


def check_params(fn: Callable[..., Any], params: Mapping[str, Any]) -> list[str]:
    """Problems binding a step's ``params`` to its function's keyword arguments.

    Args:
        fn: the step function.
        params: the spec's ``params``.

    Returns:
        One message per problem (unknown parameter, missing required one); empty when they bind.
    """
    sig = inspect.signature(fn)
    ps = list(sig.parameters.values())
    if not ps or ps[0].kind not in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD):
        return [f"{fn.__name__} must take the step's inputs (a cvpipe.StepInputs) as its first argument"]
    rest = ps[1:]
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in rest):
        return []
    names = {p.name for p in rest if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)}
    out = [f"unknown parameter {k!r}; {fn.__name__} takes {', '.join(sorted(names)) or 'none'}" for k in params if k not in names]
    for p in rest:
        if p.name in names and p.default is inspect.Parameter.empty and p.name not in params:
            out.append(f"{fn.__name__} needs parameter {p.name!r}; give it in params")
    return out


def check_function_steps(steps: Sequence[Any], search_cwd: bool = True) -> list[tuple[str, str]]:
    """Problems with a spec's function steps found here, before a run: imports and ``params``.

    The tasks of a local run import from the working directory too (``python -m``
    puts it first on ``sys.path``), so this does the same while it imports.

    Args:
        steps: the spec's ``steps`` (:class:`~components.core.spec.UserStepSpec`).
        search_cwd: look in the working directory as a task does.

    Returns:
        ``(key path, problem)`` pairs; empty when every function imports, is a step and takes its params.
    """
    out: list[tuple[str, str]] = []
    added = search_cwd and os.getcwd() not in sys.path
    if added:
        sys.path.insert(0, os.getcwd())
    try:
        for i, s in enumerate(steps):
            if s.function is None:
                continue
            try:
                fn = load_step_function(s.function)
            except ValueError as e:
                out.append((f"steps.{i}.function", str(e)))
                continue
            out.extend((f"steps.{i}.params", p) for p in check_params(fn, s.params))
    finally:
        if added:
            sys.path.remove(os.getcwd())
    return out


@dataclass(frozen=True)
class StepArtifact:
    """One artifact a user step receives.

    Attributes:
        name: its name (``manifest``, ``examples``, ``model``...; see :data:`ARTIFACTS_AFTER`).
        kind: its lineage kind (``Manifest``, ``Examples``, ``Model``...).
        path: where its content is on this machine (a directory for cvpipe's artifacts).
        uri: its URI (``gs://...`` on a cluster).
        metadata: the KFP metadata its producer set (``images``, ``num_classes``...).
    """

    name: str
    kind: str
    path: Path
    uri: str
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def file(self, name: str) -> Path:
        """A file inside the artifact's directory (``inputs["model"].file("model_info.json")``).

        Args:
            name: the file name.

        Returns:
            Its path (it may not exist).
        """
        return self.path / name


@dataclass(frozen=True)
class StepInputs:
    """What a user step function receives first.

    Attributes:
        step: the user step's name.
        after: the built-in step it follows.
        pipeline: the pipeline name.
        run_id: the pipeline run id.
        task: classification, detection or segmentation.
        artifacts: the artifacts it receives, by name (:data:`ARTIFACTS_AFTER`).
        output_dir: a directory of its own for anything it writes (recorded in lineage as its output).
    """

    step: str
    after: str
    pipeline: str
    run_id: str
    task: str
    artifacts: Mapping[str, StepArtifact]
    output_dir: Path

    def __getitem__(self, name: str) -> StepArtifact:
        try:
            return self.artifacts[name]
        except KeyError:
            raise KeyError(f"step {self.step!r} (after {self.after}) receives {', '.join(self.artifacts)}, not {name!r}") from None

    def __contains__(self, name: object) -> bool:
        return name in self.artifacts

    def __iter__(self) -> Iterator[str]:
        return iter(self.artifacts)

    def manifest(self) -> Manifest:
        """The dataset manifest it receives (after ingest or validate): every image, its path and annotations.

        Returns:
            The :class:`~components.core.manifest.Manifest` (``manifest.image_path(record)`` is an image's file).
        """
        from components.core.manifest import Manifest

        return Manifest.load(self["manifest"].file("manifest.json"))

    def label_map(self) -> Any:
        """The label map it receives (every step but ``evaluate``).

        Returns:
            The :class:`~components.core.labelmap.LabelMap`.
        """
        from components.core.labelmap import LabelMap

        return LabelMap.load(self["label_map"].file("label_map.json"))


_VETO_LINE = re.compile(r"\bVeto: (?:step '[^']*' )?vetoed the run: (.*)$")


def veto_in_log(line: str) -> str | None:
    """The reason of a :class:`~components.core.errors.Veto`, from the last line of the traceback it left in a task's log.

    A user step that is a KFP component of the user's own raises ``cvpipe.Veto``
    in its own process; the traceback's last line,
    ``components.core.errors.Veto: vetoed the run: REASON``, is how its reason
    reaches cvpipe (``cvpipe run`` and the local runner read it).

    Args:
        line: one line of a task's log.

    Returns:
        The reason, or None when the line is not a veto's.
    """
    found = _VETO_LINE.search(line.rstrip())
    return found.group(1).strip() if found else None
