"""The GPU target (``make image-gpu``), checked where it has been built: TensorFlow with its own CUDA 12 / cuDNN wheels.

The suite does not build it (its CUDA wheels are 2.7 GB and the image about 3 GB more than the CPU one; docs/cluster.md):
these checks run on the image ``make image-gpu`` left in the local image store and are skipped, saying so, where
there is none. No GPU is needed: TensorFlow loads without a driver and finds no device.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PROBE = r"""
import importlib.metadata as md, json, os
import tensorflow as tf
info = tf.sysconfig.get_build_info()
print(json.dumps({
    "uid": os.getuid(),
    "variant": os.environ.get("CVPIPE_IMAGE_VARIANT"),
    "tensorflow": tf.__version__,
    "cuda": info.get("cuda_version"),
    "cudnn": info.get("cudnn_version"),
    "gpus": len(tf.config.list_physical_devices("GPU")),
    "nvidia": sorted(d.metadata["Name"] for d in md.distributions() if d.metadata["Name"].startswith("nvidia-")),
}))
"""

pytestmark = pytest.mark.image


def test_the_gpu_image_holds_tensorflow_built_for_cuda_and_its_cuda_wheels(image: dict[str, object]) -> None:
    version = re.search(r'^version = "([^"]+)"', (REPO / "pyproject.toml").read_text(), flags=re.M)
    assert version is not None
    tag = f"localhost/cvpipe-gpu:{version.group(1)}"
    env = {**os.environ, "CONTAINERS_CONF": str(image["containers_conf"])}
    if subprocess.run(["podman", "image", "exists", tag], env=env, check=False).returncode != 0:
        pytest.skip(f"{tag} is not built here: `make image-gpu` builds it (about 6.5 GB; the suite does not)")
    cmd = ["podman", "--runtime", "runc", "run", "--rm", "--ulimit", "host", "--network", "none", tag, "python3", "-c", PROBE]
    ran = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env, check=False)
    assert ran.returncode == 0, ran.stderr[-4000:]
    found = json.loads(ran.stdout.strip().splitlines()[-1])
    locked = next(line for line in (REPO / "requirements-runtime.lock").read_text().splitlines() if line.startswith("tensorflow=="))
    assert found["uid"] == 1000 and found["variant"] == "gpu"
    assert found["tensorflow"] == locked.split("==")[1]
    assert str(found["cuda"]).startswith("12.") and str(found["cudnn"]).startswith("8")
    assert {"nvidia-cublas-cu12", "nvidia-cudnn-cu12", "nvidia-cuda-runtime-cu12"} <= set(found["nvidia"])
    assert found["gpus"] == 0  # this machine has no GPU; on a GPU node the same image finds it
