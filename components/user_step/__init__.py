"""User steps: the user's own ``@cvpipe.step`` functions and KFP components inside cvpipe's training pipeline.

``api`` is what a step function sees (no kfp, no TensorFlow), ``core`` runs one
(import, call, veto, lineage), ``component`` holds the generic KFP tasks that
run a function after each built-in step. docs/steps.md explains the contract.
"""
