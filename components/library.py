"""cvpipe's reusable KFP components, by name, and their compiled component YAML files.

Every component is usable on its own in any KFP v2 pipeline (its parameters:
:mod:`components.core.params`). In Python, import it (``cvpipe.components``
re-exports them); outside Python, load its compiled YAML, which ships in the
package beside the component::

    from kfp import components
    ingest = components.load_component_from_file(component_file("ingest"))

``make components`` (``python -m components.library``) rewrites the files;
``python -m components.library --check`` (and ``tests/compile``) fails when
one is not what the code compiles to.
"""

from __future__ import annotations

import argparse
import copy
import importlib
import sys
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["COMPONENTS", "component_file", "component_yaml", "load", "write_component_files"]

_HERE = Path(__file__).resolve().parent

COMPONENTS: dict[str, tuple[str, str]] = {
    "ingest": ("components.ingest.component", "ingest/component.yaml"),
    "validate": ("components.validate.component", "validate/component.yaml"),
    "transform": ("components.transform.component", "transform/component.yaml"),
    "train": ("components.train.component", "train/component.yaml"),
    "evaluate": ("components.evaluate.component", "evaluate/component.yaml"),
    "push": ("components.push.component", "push/component.yaml"),
    "predict_batch": ("components.predict.component", "predict/component.yaml"),
    "read_window": ("components.monitor.component", "monitor/read_window.yaml"),
    "sample": ("components.monitor.component", "sample/component.yaml"),
    "import_labels": ("components.monitor.component", "monitor/import_labels.yaml"),
    "live_metrics": ("components.live_metrics.component", "live_metrics/component.yaml"),
    "drift": ("components.drift.component", "drift/component.yaml"),
    "alert": ("components.alert.component", "alert/component.yaml"),
    "trigger": ("components.trigger.component", "trigger/component.yaml"),
}
"""Component name -> (module of its KFP wrapper, its YAML file under ``components/``)."""


def _check(name: str) -> None:
    if name not in COMPONENTS:
        raise KeyError(f"no cvpipe component {name!r}; components are {', '.join(COMPONENTS)}")


def load(name: str) -> Any:
    """A component's KFP wrapper (a ``kfp.dsl`` component; imports kfp).

    Args:
        name: the component name (a key of :data:`COMPONENTS`).

    Returns:
        The component.

    Raises:
        KeyError: no such component.
    """
    _check(name)
    return getattr(importlib.import_module(COMPONENTS[name][0]), name)


def component_file(name: str) -> Path:
    """The compiled YAML file of a component (``kfp.components.load_component_from_file`` loads it).

    Args:
        name: the component name.

    Returns:
        The file's path in the installed package.

    Raises:
        KeyError: no such component.
    """
    _check(name)
    return _HERE / COMPONENTS[name][1]


def component_yaml(name: str) -> str:
    """A component compiled to KFP v2 YAML, naming the default image (``cvpipe:0.1.0``, whatever ``$CVPIPE_IMAGE`` says).

    Args:
        name: the component name.

    Returns:
        The YAML text.
    """
    from kfp import compiler

    from components.core.kfp_support import DEFAULT_IMAGE

    comp = copy.deepcopy(load(name))
    container = comp.component_spec.implementation.container
    if container is not None:
        container.image = DEFAULT_IMAGE
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / f"{name}.yaml"
        compiler.Compiler().compile(comp, str(path))
        return path.read_text(encoding="utf-8")


def write_component_files(check: bool = False) -> list[Path]:
    """Writes every component's YAML file, or lists those that are not current.

    Args:
        check: only compare, write nothing.

    Returns:
        The files written (or, with ``check``, those out of date or missing).
    """
    from components.core.io import atomic_write_text

    out: list[Path] = []
    for name in COMPONENTS:
        path, text = component_file(name), component_yaml(name)
        if path.is_file() and path.read_text(encoding="utf-8") == text:
            continue
        if not check:
            atomic_write_text(path, text)
        out.append(path)
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m components.library [--check]``.

    Args:
        argv: the arguments.

    Returns:
        The exit status (1: ``--check`` found files out of date).
    """
    parser = argparse.ArgumentParser(prog="python -m components.library", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="write nothing; fail when a file is not current")
    args = parser.parse_args(argv)
    paths = write_component_files(check=args.check)
    for p in paths:
        print(f"{'out of date' if args.check else 'wrote'}: {p.relative_to(_HERE.parent)}")
    return 1 if args.check and paths else 0


if __name__ == "__main__":
    sys.exit(main())
