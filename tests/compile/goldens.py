"""What the golden compile tests share: compiled YAML compared with its golden file, and loaded for Kubeflow and Vertex.

Imported as ``from goldens import ...`` (pytest puts tests/compile on the path, as it
puts tests/unit there for ``ingest_testdata``). ``make golden`` (pytest
--update-golden) rewrites the golden files; review the diff like code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["assert_matches_golden", "load_for_kubeflow_and_vertex"]


def assert_matches_golden(text: str, golden: Path, update_golden: bool, what: str) -> None:
    """``text`` is exactly the golden file; with ``--update-golden`` it first becomes the golden file.

    Args:
        text: the compiled YAML.
        golden: its golden file under tests/compile/golden.
        update_golden: the ``update_golden`` fixture.
        what: what was compiled, for the message when there is no golden file yet.
    """
    if update_golden:
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(text)
    assert golden.exists(), f"no golden file for {what}; run `make golden`"
    assert text == golden.read_text(), f"{golden} differs from the compiler output; review and run `make golden` if intended"


def load_for_kubeflow_and_vertex(path: Path, name: str) -> dict[str, Any]:
    """Loads a compiled pipeline in kfp and in Vertex AI's ``PipelineJob``, both under the pipeline's ``name``.

    The job is constructed offline, not created.

    Returns:
        The pipeline spec the Vertex client would send.
    """
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import aiplatform
    from kfp import components

    assert components.load_component_from_file(str(path)).name == name
    job = aiplatform.PipelineJob(
        display_name=name,
        template_path=str(path),
        pipeline_root="gs://bucket/pipeline-root",
        credentials=AnonymousCredentials(),
        project="acme-ml",
        location="europe-west4",
        enable_caching=False,
    )
    spec = job.to_dict()["pipelineSpec"]
    assert isinstance(spec, dict)
    return spec
