"""Every cvpipe component ships as a compiled component YAML that is current and that KFP loads.

``make components`` (or ``make golden``) rewrites the files after an intended change; review the diff like code.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import docstring_parser
import pytest
import yaml

from components.library import COMPONENTS, component_file, component_yaml, load

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", list(COMPONENTS))
def test_component_file_is_current_and_loads(name: str, update_golden: bool) -> None:
    from kfp import components

    path = component_file(name)
    text = component_yaml(name)
    if update_golden:
        path.write_text(text, encoding="utf-8")
    assert path.is_file(), f"no {path.relative_to(REPO)}; run `make components`"
    assert path.read_text(encoding="utf-8") == text, f"{path.relative_to(REPO)} is not what {name} compiles to; run `make components`"
    loaded = components.load_component_from_file(str(path))
    assert loaded.name == name.replace("_", "-")
    inputs = loaded.component_spec.inputs
    assert "run_id" in inputs and ({"context"} if name != "trigger" else {"spec"}) <= set(inputs)
    # documented inputs and outputs: every argument in the docstring; the inputs' descriptions land in the compiled component
    documented = {p.arg_name for p in docstring_parser.parse(load(name).python_func.__doc__).params}
    assert documented == set(inputs) | set(loaded.component_spec.outputs or {}), name
    [comp] = yaml.safe_load(text)["components"].values()
    for kind in ("artifacts", "parameters"):
        for arg, definition in comp["inputDefinitions"].get(kind, {}).items():
            assert definition.get("description"), f"{name}: {arg} has no description"
    assert loaded.component_spec.implementation.container.image == "cvpipe:0.1.0"


def test_every_component_wrapper_is_listed() -> None:
    from kfp.dsl.base_component import BaseComponent

    found = set()
    for module in sorted(REPO.glob("components/*/component.py")):
        if module.parent.name == "user_step":
            continue  # the tasks that run a spec's @cvpipe.step functions: part of the declarative path, not reused alone
        mod = importlib.import_module(f"components.{module.parent.name}.component")
        found |= {name for name in getattr(mod, "__all__", []) if isinstance(getattr(mod, name), BaseComponent)}
    assert found == set(COMPONENTS)
