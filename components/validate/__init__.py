"""validate: TFDV statistics, schema and drift plus image checks, with a policy per anomaly kind.

The pure logic is :func:`components.validate.core.run`; the KFP component is
``components.validate.component.validate``. Importing this package does not
import TensorFlow or kfp.
"""

from .core import (
    DATASET_KINDS,
    DEFAULT_POLICIES,
    ITEM_KINDS,
    KINDS,
    Finding,
    ValidateOutputs,
    ValidationResult,
    policy_for,
    run,
)

__all__ = [
    "DATASET_KINDS",
    "DEFAULT_POLICIES",
    "ITEM_KINDS",
    "KINDS",
    "Finding",
    "ValidateOutputs",
    "ValidationResult",
    "policy_for",
    "run",
]
