"""The typed parameters of cvpipe's components: the pipeline context, one dict per spec section, the run id."""

from __future__ import annotations

import pytest

from components.core.errors import SpecError
from components.core.params import (
    PipelineContext,
    context_parameter,
    section_from_parameter,
    section_parameter,
    spec_from_parameter,
    spec_parameter,
    step_spec,
)
from components.core.spec import PipelineSpec, parse_spec

SPEC = {
    "name": "shelf-detector",
    "task": "detection",
    "data": {"source": "data/annotations.json", "max_quarantine_fraction": 0.5},
    "train": {"epochs": 3, "image_size": [96, 96]},
    "evaluate": {"thresholds": [{"metric": "map_50", "lower": 0.5}]},
    "registry": {"model_name": "shelf", "alias": "prod"},
    "runtime": {"root": "/runs", "metadata": {"url": "sqlite:////runs/mlmd.sqlite"}},
    "monitoring": {"window": "6h", "live_metrics": [{"metric": "map_50", "max_drop": 0.1}]},
}


def _as_kfp_struct(value: object) -> object:
    """What a dict parameter looks like after KFP carried it: every number a float."""
    if isinstance(value, dict):
        return {k: _as_kfp_struct(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_kfp_struct(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def test_sections_survive_the_kfp_struct_round_trip() -> None:
    spec = parse_spec(SPEC)
    for section in ("data", "validation", "transform", "train", "evaluate", "monitoring"):
        value = section_parameter(spec, section)
        assert None not in value.values()  # a protobuf Struct holds no None
        back = section_from_parameter(section, _as_kfp_struct(value))
        assert back.model_dump(mode="json") == getattr(spec, section).model_dump(mode="json"), section
    context = section_from_parameter("context", _as_kfp_struct(context_parameter(spec)))
    assert context == PipelineContext.of(spec) and context.registry.alias == "prod"
    assert spec_from_parameter(_as_kfp_struct(spec_parameter(spec))).model_dump(mode="json") == spec.model_dump(mode="json")
    assert section_from_parameter("train", {"epochs": 12.0}).epochs == 12  # a whole float is an int again


def test_step_spec_holds_the_given_sections_and_refuses_the_others() -> None:
    spec = parse_spec(SPEC)
    built = step_spec("evaluate", context_parameter(spec), evaluate=section_parameter(spec, "evaluate"))
    assert (built.name, built.task, built.model_name, built.registry.alias) == ("shelf-detector", "detection", "shelf", "prod")
    assert built.evaluate == spec.evaluate and built.runtime.metadata.url == "sqlite:////runs/mlmd.sqlite"
    with pytest.raises(SpecError, match=r"the evaluate component read train\.epochs, but it does not take the train section"):
        _ = built.train.epochs
    optional = step_spec("push", context_parameter(spec), monitoring=None)
    assert optional.monitoring is None


def test_invalid_parameters_name_the_section_and_key() -> None:
    spec = parse_spec(SPEC)
    with pytest.raises(SpecError) as e:
        step_spec("train", context_parameter(spec), train={"epochs": 0, "bogus": 1})
    assert ("train.epochs", "must be >= 1") in e.value.problems and ("train.bogus", "unknown key") in e.value.problems
    with pytest.raises(SpecError, match="unknown detection metric 'accuracy'"):
        step_spec("evaluate", context_parameter(spec), evaluate={"thresholds": [{"metric": "accuracy", "lower": 0.5}]})
    with pytest.raises(SpecError, match=r"context\.task"):
        step_spec("ingest", {"name": "x"}, data={"source": "a.json"})
    with pytest.raises(SpecError, match="must be a mapping"):
        section_from_parameter("data", "a.json")  # type: ignore[arg-type]


def test_keys_set_to_none_are_left_out() -> None:
    spec = PipelineSpec.model_validate(SPEC)
    assert context_parameter(spec)["registry"] == {"backend": "local", "model_name": "shelf", "root": "registry", "alias": "prod"}


def test_cvpipe_components_exports_each_component_lazily() -> None:
    import subprocess
    import sys

    code = "import sys, cvpipe.components as c; print('kfp' in sys.modules, len(c.NAMES))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "14"]  # importing the module loads no kfp
    import cvpipe.components as c

    for name in c.NAMES:
        assert getattr(c, name).name == name.replace("_", "-")
        assert c.component_file(name).is_file()
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        _ = c.nothing  # type: ignore[attr-defined]
