"""A plain KFP pipeline of your own, built from cvpipe components in an order cvpipe's declarative pipeline does not have.

No validation step, and the model is evaluated twice, on two test sets: the
held-out split of its own data and the photos of a second store::

    ingest (store A) ──> transform ──> train ──> evaluate "held-out"   (store A's test split)
                                          │
    ingest (store B) ──> transform ───────┴──> evaluate "store-b"      (all of store B)

Each cvpipe component takes ``context`` (the pipeline name lineage groups
runs by, the task, and where the lineage store, registry and tracking are),
``run_id`` and the spec sections it reads as plain dicts, so nothing here
builds a whole cvpipe spec. Every step still records what it read and wrote
in ML Metadata, so the model's lineage and both evaluations are in the store.

Run it here with ``python run_shelf.py`` (kfp.local); compile it for Kubeflow
or Vertex AI with ``python -m kfp.cli.cli dsl compile --py shelf_pipeline.py
--output shelf.yaml`` or ``kfp.compiler.Compiler().compile(shelf_pipeline, "shelf.yaml")``.
"""

# No `from __future__ import annotations`: KFP reads the parameter annotations as types.

from kfp import dsl

from cvpipe.components import evaluate, ingest, train, transform

CONTEXT = {
    "name": "shelf-plain",
    "task": "detection",
    "runtime": {"root": "runs", "metadata": {"url": "sqlite:///runs/mlmd.sqlite"}},
}
"""The pipeline context every component gets (``cvpipe.components.PipelineContext``)."""

TRAIN = {"epochs": 1, "batch_size": 8, "image_size": [64, 64], "early_stopping_patience": 1}
"""The ``train`` section: a tiny detector, one epoch (it is an example)."""

EVALUATE = {"thresholds": [{"metric": "map_50", "lower": 0.0}]}
"""The ``evaluate`` section: thresholds the blessing checks."""

ALL_TEST = {"split": {"train": 0.0, "validation": 0.0, "test": 1.0}}
"""The ``transform`` section of a dataset used only for testing: every image in the test split."""


@dsl.pipeline(name="shelf-plain", description="cvpipe components in a plain KFP pipeline: two stores, one model, two evaluations")
def shelf_pipeline(
    store_a: dict = {"source": "data/store-a/annotations.json"},  # noqa: B006 (KFP reads the defaults)
    store_b: dict = {"source": "data/store-b/annotations.json"},  # noqa: B006
    context: dict = CONTEXT,
    train_settings: dict = TRAIN,
    evaluate_settings: dict = EVALUATE,
) -> None:
    """Trains on store A and evaluates on store A's held-out split and on store B.

    Args:
        store_a: the ``data`` section of the training data (COCO).
        store_b: the ``data`` section of the second test set.
        context: the pipeline context.
        train_settings: the ``train`` section.
        evaluate_settings: the ``evaluate`` section.
    """
    run_id = dsl.PIPELINE_JOB_NAME_PLACEHOLDER
    ing_a = ingest(context=context, run_id=run_id, data=store_a).set_display_name("ingest-store-a")
    examples_a = transform(
        context=context, run_id=run_id, data=store_a, manifest=ing_a.outputs["manifest"], label_map=ing_a.outputs["label_map"]
    ).set_display_name("transform-store-a")
    trained = train(
        context=context, run_id=run_id, train=train_settings, examples=examples_a.outputs["examples"], label_map=ing_a.outputs["label_map"]
    )
    evaluate(
        context=context, run_id=run_id, evaluate=evaluate_settings, model=trained.outputs["model"], examples=examples_a.outputs["examples"]
    ).set_display_name("evaluate-held-out")

    # store B: ingested after store A, so its label map extends A's (same ids for the same classes)
    ing_b = ingest(context=context, run_id=run_id, data=store_b).set_display_name("ingest-store-b").after(ing_a)
    examples_b = transform(
        context=context,
        run_id=run_id,
        data=store_b,
        transform=ALL_TEST,
        manifest=ing_b.outputs["manifest"],
        label_map=ing_b.outputs["label_map"],
    ).set_display_name("transform-store-b")
    evaluate(
        context=context, run_id=run_id, evaluate=evaluate_settings, model=trained.outputs["model"], examples=examples_b.outputs["examples"]
    ).set_display_name("evaluate-store-b")
