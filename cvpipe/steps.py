"""The steps of the training pipeline as plain Python functions.

Each step is the same function its KFP component calls: it takes a
:class:`StepContext` (the spec, the run id and the lineage store), reads its
inputs from local paths, writes its outputs and records one MLMD execution.
Use them to run one step by hand, in a notebook or a test, without kfp::

    from cvpipe import load_spec
    from cvpipe.steps import StepContext, ValidateOutputs, validate

    ctx = StepContext(load_spec("pipeline.yaml"), run_id="by-hand", component="validate")
    result = validate(ctx, "in/manifest", "in/label_map", ValidateOutputs.under("out"))

Importing this module imports each step's logic (TensorFlow only where a step
needs it at call time); ``import cvpipe`` alone imports none of it.
"""

from components.core.step import ArtifactUris, StepContext, output_dir
from components.evaluate.core import EvaluationResult
from components.evaluate.core import run as evaluate
from components.ingest.core import IngestResult
from components.ingest.core import run as ingest
from components.push.core import PushResult
from components.push.core import run as push
from components.train.core import TrainResult, resolve_parent
from components.train.core import run as train
from components.transform.core import TransformResult
from components.transform.core import run as transform
from components.validate.core import ValidateOutputs, ValidationResult
from components.validate.core import run as validate

__all__ = [
    "ArtifactUris",
    "EvaluationResult",
    "IngestResult",
    "PushResult",
    "StepContext",
    "TrainResult",
    "TransformResult",
    "ValidateOutputs",
    "ValidationResult",
    "evaluate",
    "ingest",
    "output_dir",
    "push",
    "resolve_parent",
    "train",
    "transform",
    "validate",
]
