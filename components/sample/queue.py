"""Where a labelling batch stands in Label Studio, kept on its ``LabellingBatch`` artifact in ML Metadata.

A batch goes through four states: sampled (the ``sample`` step records the
artifact), sent to a Label Studio project (:func:`mark_sent`, called by
``cvpipe label push --spec``), annotated there (:func:`mark_annotated`, called
by ``cvpipe label pull --spec`` with the export's count) and imported (the
``import-labels`` step records the labels below the batch). The first and the
last are lineage; the two in between are properties of the batch artifact,
so the console's labelling queue and anyone reading the store see them:

=======================  ==================================================
``labelstudio_url``      the Label Studio base URL the tasks went to
``labelstudio_project``  the project id
``sent_tasks``           tasks imported into the project
``sent_at``              when (ISO 8601, UTC)
``annotated``            tasks with an annotation at the last pull
``annotated_at``         when that pull ran
=======================  ==================================================
"""

from __future__ import annotations

import os
from pathlib import Path

from components.core.clock import utc_now
from components.core.errors import LineageError
from components.core.lineage import ArtifactRef, LineageStore

__all__ = ["find_batch", "mark_annotated", "mark_sent"]

KIND = "LabellingBatch"


def find_batch(store: LineageStore, batch_dir: str | os.PathLike[str]) -> ArtifactRef:
    """The ``LabellingBatch`` artifact of a batch directory (the ``sample`` step's output).

    Args:
        store: the lineage store.
        batch_dir: the batch directory, as given or resolved.

    Returns:
        The artifact.

    Raises:
        LineageError: no ``LabellingBatch`` artifact has that directory as its URI.
    """
    for uri in dict.fromkeys((str(batch_dir), str(Path(batch_dir).resolve()))):
        found = store.find_by_uri(uri, KIND)
        if found is not None:
            return found
    raise LineageError(f"no LabellingBatch artifact in the metadata store has the URI {batch_dir} (was it sampled with this spec?)")


def mark_sent(store: LineageStore, batch: ArtifactRef, url: str, project_id: int, tasks: int) -> ArtifactRef:
    """Records that a batch's tasks went to a Label Studio project.

    Args:
        store: the lineage store.
        batch: the batch's artifact (:func:`find_batch`).
        url: the Label Studio base URL.
        project_id: the project.
        tasks: tasks imported.

    Returns:
        The updated artifact.
    """
    props = {"labelstudio_url": url.rstrip("/"), "labelstudio_project": int(project_id), "sent_tasks": int(tasks)}
    return store.update_properties(batch.id, {**props, "sent_at": utc_now().isoformat()})


def mark_annotated(store: LineageStore, url: str, project_id: int, annotated: int) -> ArtifactRef | None:
    """Records how many of a project's tasks people have annotated, on the batch sent there.

    Args:
        store: the lineage store.
        url: the Label Studio base URL.
        project_id: the project.
        annotated: tasks with at least one annotation that was not cancelled.

    Returns:
        The updated artifact; None when no batch of this store was sent to that project
        (the most recently sent one when several were).
    """
    sent = [
        a
        for a in store.artifacts(KIND)
        if a.properties.get("labelstudio_project") == int(project_id) and a.properties.get("labelstudio_url") == url.rstrip("/")
    ]
    if not sent:
        return None
    batch = max(sent, key=lambda a: str(a.properties.get("sent_at", "")))
    return store.update_properties(batch.id, {"annotated": int(annotated), "annotated_at": utc_now().isoformat()})
