"""A KFP component of this project's own, used as a cvpipe user step: every class needs enough images.

cvpipe takes a user's KFP component as a step when it is compiled to YAML
(``python -m shelf_gates.class_floor`` writes ``class_floor.yaml``). Its inputs
are matched by name: ``manifest`` is ingest's artifact, ``min_per_class`` comes
from the step's ``params`` and ``run_id`` is the pipeline run. Failing the task
stops the run, as a vetoing function step does.
"""

# No `from __future__ import annotations`: kfp reads the annotations at run time.

import sys

from kfp import compiler, dsl
from kfp.dsl import Artifact, Dataset, Input, Output


@dsl.component(base_image="europe-docker.pkg.dev/acme/shelf/gates:0.1.0", install_kfp_package=False)
def class_floor(manifest: Input[Dataset], min_per_class: int, run_id: str, report: Output[Artifact]) -> None:
    """Fails when a class has fewer than ``min_per_class`` images in the ingested manifest.

    Args:
        manifest: directory with cvpipe's ``manifest.json``.
        min_per_class: the fewest images a class may have.
        run_id: the pipeline run id.
        report: output: a JSON file with the images per class.
    """
    import json
    from collections import Counter

    with open(manifest.path + "/manifest.json", encoding="utf-8") as f:
        data = json.load(f)
    names = {int(k): v for k, v in data["label_map"]["classes"].items()}
    counts: Counter = Counter()
    for image in data["images"]:
        for cid in {o["class_id"] for o in image.get("objects", [])} | (
            {image["class_id"]} if image.get("class_id") is not None else set()
        ):
            counts[names.get(cid, str(cid))] += 1
    with open(report.path, "w", encoding="utf-8") as f:
        json.dump({"run_id": run_id, "images_per_class": dict(counts)}, f)
    few = {k: v for k, v in counts.items() if v < min_per_class}
    if few:
        raise SystemExit(f"classes with fewer than {min_per_class} images: {few}")
    print(f"every class has at least {min_per_class} images: {dict(counts)}")


if __name__ == "__main__":
    out = sys.argv[1] if len(sys.argv) > 1 else "class_floor.yaml"
    compiler.Compiler().compile(class_floor, out)
    print(f"wrote {out}")
