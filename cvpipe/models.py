"""Bring your own model: the contracts cvpipe trains, exports and serves with.

- ``train.model: "mypackage.models:build"``: a build function
  ``build(task, num_classes, image_size, hyperparameters) -> keras.Model`` whose
  outputs follow the task's contract (:func:`check_outputs` says what does not fit);
- ``train.run_fn: "mypackage.train:run_fn"``: a training function that receives
  :class:`FnArgs` and writes a SavedModel with cvpipe's serving signature, most
  simply with :func:`export_saved_model`; cvpipe checks it with
  :func:`signature_problems` before anything evaluates it.

See docs/train.md ("Your own model"). Importing this module does not import
TensorFlow; the functions do when called.
"""

from components.core.predictor import signature_problems
from components.train.export import export_saved_model
from components.train.user import FnArgs, check_outputs, load_function

__all__ = ["FnArgs", "check_outputs", "export_saved_model", "load_function", "signature_problems"]
