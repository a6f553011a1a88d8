"""Runners: local (kfp.local, the embedded default), Kubeflow and Vertex AI."""
