"""``make image`` / ``make image-gpu``: build the cvpipe component image here, where no image registry is reachable.

The image is ``infra/docker/Dockerfile``'s ``cpu`` (or ``gpu``) target, built with Podman:

1. Podman, runc and debootstrap are installed with apt-get when missing; Podman runs with the runc
   runtime and a containers.conf of its own (``default_ulimits = []``, ``cgroup_manager = "cgroupfs"``),
   which is what works on this machine's cgroup setup.
2. The base image is ``--python-image`` when given (a normal registry build); otherwise a Debian 12
   ``debootstrap --variant=minbase`` tree (its own Python 3.11) imported as ``localhost/cvpipe-base:bookworm``,
   made once and kept in the local image store.
3. The packages are ``requirements-runtime.lock`` (the lock without the development tools), downloaded on
   the host into a wheelhouse under ``~/.cache/cvpipe/image`` (kept per lock, so rebuilds do not download)
   and installed in the image with ``--no-index`` through the build context ``wheels``.
4. Podman's layer cache makes a rebuild after a code change reinstall cvpipe only.

It prints the tag and the size, and with ``--json`` one JSON line (tag, size_bytes, seconds, containers_conf)
that the image tests read.

Usage: ``python .ci/image.py [--target cpu|gpu] [--python-image IMAGE] [--json]``.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "infra" / "docker" / "Dockerfile"
IGNOREFILE = ROOT / "infra" / "docker" / "Dockerfile.dockerignore"
RUNTIME_LOCK = ROOT / "requirements-runtime.lock"
CACHE = Path(os.environ.get("CVPIPE_IMAGE_CACHE", Path.home() / ".cache" / "cvpipe" / "image"))
BASE_TAG = "localhost/cvpipe-base:bookworm"
DEBIAN_PACKAGES = {"podman": "podman", "runc": "runc", "debootstrap": "debootstrap"}
# What the base needs beyond minbase: Python 3.11 (Debian 12's own), the OpenMP runtime of TensorFlow's
# wheels, TLS roots for GCS and registries, and tzdata for schedules.
BASE_INCLUDE = "python3,python3-venv,libgomp1,ca-certificates,tzdata"
CONTAINERS_CONF = """# Podman settings that work on this machine's cgroup setup (written by .ci/image.py).
[containers]
default_ulimits = []

[engine]
cgroup_manager = "cgroupfs"
runtime = "runc"
"""


class ImageError(RuntimeError):
    """A step of the image build failed; the message says which and why."""


def _log(msg: str) -> None:
    print(f"[image] {msg}", file=sys.stderr, flush=True)


def _run(cmd: list[str], *, env: dict[str, str] | None = None, capture: bool = False, timeout: float | None = None, **kw: object) -> str:
    done = subprocess.run(cmd, env=env, text=True, capture_output=capture, timeout=timeout, check=False, **kw)  # type: ignore[call-overload]
    if done.returncode != 0:
        tail = (done.stderr or "")[-2000:] if capture else ""
        raise ImageError(f"{' '.join(cmd[:4])} ... failed with exit status {done.returncode}\n{tail}")
    return done.stdout if capture else ""


def ensure_debian_packages(tools: dict[str, str] = DEBIAN_PACKAGES) -> None:
    """Install the Debian packages of the missing tools with apt-get (waiting for a dpkg lock others hold)."""
    missing = sorted({pkg for tool, pkg in tools.items() if shutil.which(tool) is None})
    if not missing:
        return
    if shutil.which("apt-get") is None:
        raise ImageError(f"{', '.join(missing)} missing and apt-get is not available: install them first")
    _log(f"apt-get install {' '.join(missing)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    lock_wait = ["-o", "DPkg::Lock::Timeout=600"]
    _run(["apt-get", *lock_wait, "update", "-q"], env=env)
    _run(["apt-get", *lock_wait, "install", "-y", "-q", "--no-install-recommends", *missing], env=env)


def containers_conf() -> Path:
    """The containers.conf Podman runs with (CONTAINERS_CONF), written under the cache when it changed."""
    path = CACHE / "containers.conf"
    if not path.is_file() or path.read_text() != CONTAINERS_CONF:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(CONTAINERS_CONF)
    return path


def podman_env() -> dict[str, str]:
    """The environment Podman commands run with."""
    return {**os.environ, "CONTAINERS_CONF": str(containers_conf())}


def podman(*args: str, capture: bool = True, timeout: float | None = None) -> str:
    """Run ``podman --runtime runc ARGS`` with cvpipe's containers.conf and return its output."""
    return _run(["podman", "--runtime", "runc", *args], env=podman_env(), capture=capture, timeout=timeout)


def image_exists(tag: str) -> bool:
    """Whether the local image store holds ``tag``."""
    return subprocess.run(["podman", "image", "exists", tag], env=podman_env(), check=False).returncode == 0


def _unmount_below(root: Path) -> None:
    mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
    for mount in sorted((m for m in mounts if m.startswith(str(root) + "/")), key=len, reverse=True):
        subprocess.run(["umount", "-l", mount], check=False)


def debian_base() -> str:
    """``localhost/cvpipe-base:bookworm``: Debian 12 minbase from debootstrap, imported once."""
    if image_exists(BASE_TAG):
        return BASE_TAG
    if os.geteuid() != 0:
        raise ImageError("debootstrap needs root to make the Debian base image; run make image as root or pass --python-image")
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE, prefix="rootfs-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        _log(f"debootstrap bookworm (minbase + {BASE_INCLUDE}) ...")
        try:
            _run(["debootstrap", "--variant=minbase", f"--include={BASE_INCLUDE}", "bookworm", str(rootfs)], capture=True, timeout=1800)
        finally:
            _unmount_below(rootfs)  # an interrupted debootstrap leaves /proc and /sys mounted in the tree
        # apt lists and caches are not part of an image
        for junk in ("var/lib/apt/lists", "var/cache/apt/archives"):
            for p in (rootfs / junk).glob("*"):
                if p.is_file():
                    p.unlink()
        tar = subprocess.Popen(["tar", "--one-file-system", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        imported = subprocess.run(
            ["podman", "import", "--change", "CMD=/bin/bash", "-", BASE_TAG],
            stdin=tar.stdout,
            env=podman_env(),
            capture_output=True,
            text=True,
        )
        tar.wait()
        if imported.returncode != 0 or tar.returncode != 0:
            raise ImageError(f"podman import of the Debian base failed: {imported.stderr[-2000:]}")
    return BASE_TAG


def _uv_version() -> str:
    out = _run([str(Path(sys.executable).parent / "uv"), "--version"], capture=True)
    match = re.match(r"uv (\S+)", out)
    if not match:
        raise ImageError(f"cannot read uv's version from {out!r}")
    return match.group(1)


def wheelhouse(target: str) -> Path:
    """Wheels of every package of the runtime lock (plus uv, and the CUDA wheels for gpu), kept per lock."""
    if not RUNTIME_LOCK.is_file():
        raise ImageError(f"{RUNTIME_LOCK.name} is missing: run make lock")
    uv = _uv_version()
    pins = [line for line in RUNTIME_LOCK.read_text().splitlines() if "==" in line and not line.startswith("#")]
    key = hashlib.sha256("\n".join([*pins, f"uv=={uv}", target]).encode()).hexdigest()[:16]
    house = CACHE / f"wheelhouse-{target}-{key}"
    if (house / ".complete").is_file():
        return house
    pip = [sys.executable, "-m", "pip"]
    # earlier wheelhouses (an older lock; the CPU one for a first GPU wheelhouse) supply the wheels that did not change
    previous = [f"--find-links={old}" for old in sorted(CACHE.glob("wheelhouse-*-*")) if (old / ".complete").is_file()]
    if house.exists():
        shutil.rmtree(house)
    tmp = Path(tempfile.mkdtemp(dir=CACHE, prefix="wheelhouse-"))
    _log(f"wheelhouse: {RUNTIME_LOCK.name} -> {house}")
    _run([*pip, "wheel", "-q", "--no-deps", *previous, "-r", str(RUNTIME_LOCK), "-w", str(tmp)], timeout=3600)
    _run([*pip, "download", "-q", "--no-deps", "--only-binary=:all:", f"uv=={uv}", "-d", str(tmp)], timeout=600)
    if target == "gpu":
        tf = re.search(r"^tensorflow==(\S+)$", RUNTIME_LOCK.read_text(), flags=re.M)
        assert tf is not None
        _run(
            [
                *pip,
                "download",
                "-q",
                "--only-binary=:all:",
                *previous,
                "-c",
                str(RUNTIME_LOCK),
                f"tensorflow[and-cuda]=={tf.group(1)}",
                "-d",
                str(tmp),
            ],
            timeout=3600,
        )
    (tmp / ".complete").write_text(RUNTIME_LOCK.name + "\n")
    tmp.rename(house)
    for old in CACHE.glob(f"wheelhouse-{target}-*"):
        if old != house:
            shutil.rmtree(old, ignore_errors=True)
    return house


def version() -> str:
    """cvpipe's version, from pyproject.toml."""
    match = re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), flags=re.M)
    if not match:
        raise ImageError("no version in pyproject.toml")
    return match.group(1)


def default_tag(target: str) -> str:
    """``localhost/cvpipe:VERSION`` (cpu) or ``localhost/cvpipe-gpu:VERSION``."""
    return f"localhost/cvpipe{'' if target == 'cpu' else '-' + target}:{version()}"


def _image_id(tag: str) -> str | None:
    found = subprocess.run(
        ["podman", "image", "inspect", "--format", "{{.Id}}", tag], env=podman_env(), capture_output=True, text=True, check=False
    )
    return found.stdout.strip() or None if found.returncode == 0 else None


def image_size(tag: str) -> int:
    """Size of the image in bytes, as Podman reports it."""
    return int(podman("image", "inspect", "--format", "{{.Size}}", tag).strip())


def build(target: str = "cpu", python_image: str | None = None, tag: str | None = None) -> dict[str, object]:
    """Build the image and return what the tests and ``make image`` report.

    Args:
        target: ``cpu`` or ``gpu`` (the Dockerfile's stages).
        python_image: a Python 3.11 base image to build on; the Debian base made here when None.
        tag: the image's tag; ``localhost/cvpipe[-gpu]:VERSION`` when None.

    Returns:
        tag, size_bytes, seconds and containers_conf.
    """
    start = time.monotonic()
    ensure_debian_packages()
    tag = tag or default_tag(target)
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / ".build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one build at a time on this machine (two test sessions, make image beside them)
        base = python_image or debian_base()
        wheels = wheelhouse(target)
        previous = _image_id(tag)
        _podman_build(target, base, wheels, tag)
        if previous and previous != _image_id(tag):
            # the image this tag named before (its layers shared with the new one stay): not kept, unless in use
            subprocess.run(["podman", "rmi", previous], env=podman_env(), capture_output=True, check=False)
    return {
        "tag": tag,
        "size_bytes": image_size(tag),
        "seconds": round(time.monotonic() - start, 1),
        "containers_conf": str(containers_conf()),
    }


def _podman_build(target: str, base: str, wheels: Path, tag: str) -> None:
    _log(f"podman build --target {target} on {base} -> {tag}")
    podman(
        "build",
        "--network=host",
        "--layers",
        "-f", str(DOCKERFILE),
        "--ignorefile", str(IGNOREFILE),
        "--target", target,
        "--build-arg", f"PYTHON_IMAGE={base}",
        "--build-arg", "DEPS=wheelhouse",
        "--build-context", f"wheels={wheels}",
        "-t", tag,
        str(ROOT),
        capture=False,
    )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """Command line of ``make image``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--target", choices=["cpu", "gpu"], default="cpu")
    parser.add_argument(
        "--python-image", default=os.environ.get("PYTHON_IMAGE") or None, help="base image (default: a Debian 12 base made here)"
    )
    parser.add_argument("--tag")
    parser.add_argument("--json", action="store_true", help="print one JSON line instead of the summary")
    args = parser.parse_args(argv)
    try:
        result = build(args.target, args.python_image, args.tag)
    except (ImageError, subprocess.TimeoutExpired) as exc:
        print(f"make image: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result))
    else:
        size = int(result["size_bytes"])  # type: ignore[call-overload]
        print(f"{result['tag']}: {size / 1e9:.2f} GB ({size} bytes), built in {result['seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
