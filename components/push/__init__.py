"""The push component: register a blessed model and move the spec's alias to it; record "not pushed" otherwise.

See :mod:`components.push.core` for the step and :mod:`components.push.component`
for the KFP wrapper. Importing this package does not import kfp.
"""

from .core import BLESSING_FILE, PUSH_FILE, Blessing, PushResult, read_blessing, run

__all__ = ["BLESSING_FILE", "PUSH_FILE", "Blessing", "PushResult", "read_blessing", "run"]
