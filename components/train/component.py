"""KFP wrapper of the train step (the logic lives in :mod:`components.train.core`)."""

# no ``from __future__ import annotations``: KFP reads the parameter annotations as types
from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Model, Output

from components.core.kfp_support import CVPIPE_IMAGE

__all__ = ["train"]


@dsl.component(base_image=CVPIPE_IMAGE, install_kfp_package=False)
def train(
    context: dict,
    run_id: str,
    examples: Input[Dataset],
    label_map: Input[Artifact],
    model: Output[Model],
    report: Output[HTML],
    hyperparameters: Output[Artifact],
    train: dict = {},
) -> None:
    """Trains the ``train`` section's model on the examples and exports it as a SavedModel.

    Picks the distribution strategy for the machine (TPU, GPUs, several
    workers, CPU), warm-starts from ``train.parent`` when set, optionally
    searches hyperparameters, stops early on validation loss, checkpoints
    every ``train.checkpoint_every_steps`` steps (a restarted task resumes),
    and exports the SavedModel (serving signature on encoded image bytes,
    NMS in the graph for detectors), label map, model info, Keras weights and
    optional TFLite files.

    Args:
        context: the pipeline context (``PipelineContext``: ``name``, ``task``, ``runtime``, ``registry``, ``tracking``).
        run_id: the pipeline run id (groups lineage; ``dsl.PIPELINE_JOB_NAME_PLACEHOLDER`` in a pipeline).
        examples: directory with the TFRecord shards and ``examples.json``.
        label_map: directory with ``label_map.json``.
        model: output directory: ``saved_model/``, ``label_map.json``, ``model_info.json``,
            ``model.weights.h5``, ``training_report.json``, ``loss.png``, optional ``tflite/``.
        report: output directory: ``index.html``, ``loss.png``, ``training_report.json``.
        hyperparameters: output directory: ``hyperparameters.json`` when ``train.tuner.enabled``.
        train: the ``train`` section (:class:`~components.core.spec.TrainSpec`): model, epochs, batch size, accelerator, parent.
    """
    from components.core.step import StepContext, output_dir
    from components.train.core import TrainUris, run

    result = run(
        StepContext.for_component("train", run_id, context, train=train),
        examples_dir=examples.path,
        label_map_path=f"{label_map.path}/label_map.json",
        model_dir=output_dir(model.path),
        report_dir=output_dir(report.path),
        hparams_dir=output_dir(hyperparameters.path),
        uris=TrainUris(
            examples=examples.uri, label_map=label_map.uri, model=model.uri, report=report.uri, hyperparameters=hyperparameters.uri
        ),
    )
    model.metadata.update(
        {
            "task": result.task,
            "architecture": result.architecture,
            "image_size": list(result.image_size),
            "epochs": result.epochs_run,
            "val_loss": result.best_val_loss,
            "stopped_early": result.stopped_early,
            "overfitting": result.overfitting,
        }
    )
    report.metadata["overfitting"] = result.overfitting
    hyperparameters.metadata.update({"tuned": result.tuned, **result.hyperparameters})
