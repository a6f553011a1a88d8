"""What a component's core needs at run time: the spec, the run, lineage and logs.

A KFP wrapper builds a :class:`StepContext` from its parameters and hands it
to the component's pure core, which reads inputs, writes outputs into the
output artifacts' directories and finally calls :meth:`StepContext.record`
once, so lineage holds only complete steps.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .lineage import ArtifactRef, LineageStore, NewArtifact
from .log import configure_logging, get_logger
from .params import PipelineContext, spec_from_parameter, step_spec
from .spec import PipelineSpec

__all__ = ["ArtifactUris", "StepContext", "output_dir"]


class ArtifactUris(Mapping[str, str]):
    """Where a step's artifacts live, for lineage: artifact name -> URI.

    The one type every step's ``uris`` argument takes: in a KFP task the
    artifacts' ``.uri`` values (``gs://...`` on a cluster), outside KFP nothing
    (each step falls back to its local paths). A plain mapping works as well;
    names given None or an empty URI are left out.

    Args:
        uris: URIs by artifact name.
        **named: more URIs by artifact name (``manifest=..., examples=...``).
    """

    __slots__ = ("_uris",)

    def __init__(self, uris: Mapping[str, str | None] | None = None, /, **named: str | None):
        merged = {**(uris or {}), **named}
        self._uris: dict[str, str] = {k: str(v) for k, v in merged.items() if v}

    @classmethod
    def of(cls, uris: Mapping[str, str | None] | None) -> ArtifactUris:
        """The URIs of a step's ``uris`` argument (an ``ArtifactUris``, a mapping or None).

        Args:
            uris: the argument.

        Returns:
            The URIs.
        """
        return uris if isinstance(uris, ArtifactUris) else cls(uris)

    def uri(self, name: str, default: str | os.PathLike[str]) -> str:
        """An artifact's URI, or the local path lineage records when none was given.

        Args:
            name: the artifact name.
            default: its local path.

        Returns:
            The URI.
        """
        return self._uris.get(name) or os.fspath(default)

    def __getitem__(self, name: str) -> str:
        return self._uris[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._uris)

    def __len__(self) -> int:
        return len(self._uris)

    def __repr__(self) -> str:
        return f"ArtifactUris({self._uris!r})"


def output_dir(path: str | os.PathLike[str]) -> Path:
    """Makes a KFP output artifact's local path a directory and returns it."""
    p = Path(path)
    p.mkdir(parents=True, exist_ok=True)
    return p


@dataclass
class StepContext:
    """Run-time context of one component execution.

    Attributes:
        spec: the pipeline spec.
        run_id: the pipeline run id (KFP job name).
        component: this component's name.
    """

    spec: PipelineSpec
    run_id: str
    component: str
    _store: LineageStore | None = field(default=None, repr=False)
    started: float = field(default_factory=time.monotonic, repr=False)

    @classmethod
    def from_json(cls, spec_json: str, run_id: str, component: str) -> StepContext:
        """Builds the context from a whole spec as JSON, and shows cvpipe's logs on stderr.

        Components take typed parameters now (:meth:`for_component`); this stays
        because pipelines compiled before carry component source that calls it.

        Args:
            spec_json: ``PipelineSpec`` as JSON.
            run_id: the run id.
            component: the component name.

        Returns:
            The context.
        """
        # Only a KFP task's process calls this: that process is the application, so it shows cvpipe's logs.
        configure_logging()
        return cls(spec=PipelineSpec.model_validate_json(spec_json), run_id=run_id, component=component)

    @classmethod
    def for_component(
        cls,
        component: str,
        run_id: str,
        context: Mapping[str, Any] | PipelineContext,
        *,
        steps: Sequence[Mapping[str, Any]] = (),
        **sections: Mapping[str, Any] | None,
    ) -> StepContext:
        """Builds the context from a component's typed parameters, and shows cvpipe's logs on stderr.

        Args:
            component: the component name.
            run_id: the ``run_id`` parameter.
            context: the ``context`` parameter (:class:`~components.core.params.PipelineContext`).
            steps: the user steps it runs or records (``steps`` of the spec), each as a dict.
            **sections: the spec sections the component takes, by their spec key
                (:func:`~components.core.params.step_spec`).

        Returns:
            The context.

        Raises:
            SpecError: a parameter is not a valid section.
        """
        configure_logging()
        return cls(spec=step_spec(component, context, steps=steps, **sections), run_id=run_id, component=component)

    @classmethod
    def for_spec(cls, component: str, run_id: str, spec: Mapping[str, Any] | PipelineSpec) -> StepContext:
        """Builds the context of a component that takes the whole spec (the retraining trigger), and shows cvpipe's logs.

        Args:
            component: the component name.
            run_id: the ``run_id`` parameter.
            spec: the ``spec`` parameter (:func:`~components.core.params.spec_parameter`).

        Returns:
            The context.

        Raises:
            SpecError: the spec is invalid.
        """
        configure_logging()
        return cls(spec=spec_from_parameter(spec), run_id=run_id, component=component)

    @property
    def log(self) -> logging.Logger:
        """This component's logger."""
        return get_logger(self.component)

    @property
    def store(self) -> LineageStore:
        """The lineage store named by ``spec.runtime.metadata.url`` (opened on first use)."""
        if self._store is None:
            self._store = LineageStore.for_spec(self.spec.runtime.metadata, base_dir=self.spec.runtime.root)
        return self._store

    def input_artifact(self, uri: str, kind: str, properties: Mapping[str, Any] | None = None) -> ArtifactRef:
        """The recorded artifact at ``uri``; records it as an external input when unknown.

        Args:
            uri: the artifact's URI.
            kind: its kind.
            properties: properties for a newly recorded external artifact.

        Returns:
            The artifact.
        """
        found = self.store.find_by_uri(uri, kind)
        return found if found is not None else self.store.put_artifact(kind, uri, properties)

    def record(
        self,
        inputs: Mapping[str, ArtifactRef | Sequence[ArtifactRef] | None],
        outputs: Mapping[str, NewArtifact | None],
        properties: Mapping[str, Any] | None = None,
    ) -> dict[str, ArtifactRef]:
        """Records this execution with its inputs and outputs in MLMD.

        Args:
            inputs: event name -> artifacts read.
            outputs: event name -> artifacts written.
            properties: execution properties.

        Returns:
            Event name -> recorded output artifact.
        """
        props = {"duration_s": round(time.monotonic() - self.started, 3), **(properties or {})}
        return self.store.record_execution(
            self.component, pipeline=self.spec.name, run_id=self.run_id, inputs=inputs, outputs=outputs, properties=props
        )
