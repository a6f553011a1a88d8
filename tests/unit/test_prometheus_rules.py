"""The shipped Prometheus alerting rules pass ``promtool check rules`` and their unit tests (``promtool test rules``)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from services.processes import ServiceUnavailable, ensure_binary

RULES = Path(__file__).resolve().parents[2] / "infra" / "prometheus"


@pytest.fixture(scope="module")
def promtool() -> str:
    try:
        return ensure_binary("promtool", "prometheus")
    except ServiceUnavailable as e:
        pytest.skip(str(e))


def test_rules_are_valid(promtool) -> None:
    done = subprocess.run([promtool, "check", "rules", str(RULES / "cvpipe-rules.yml")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 8 rules found" in done.stdout


def test_rule_unit_tests_pass(promtool) -> None:
    done = subprocess.run([promtool, "test", "rules", "cvpipe-rules.test.yml"], cwd=RULES, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_a_broken_expectation_fails(promtool, tmp_path) -> None:
    # the unit tests can fail: expecting the wrong severity makes promtool report it
    broken = (RULES / "cvpipe-rules.test.yml").read_text(encoding="utf-8").replace("severity: error, model", "severity: info, model", 1)
    (tmp_path / "t.yml").write_text(broken.replace("  - cvpipe-rules.yml", f"  - {RULES / 'cvpipe-rules.yml'}"), encoding="utf-8")
    done = subprocess.run([promtool, "test", "rules", "t.yml"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "CvpipeLiveMetricDegraded" in done.stdout + done.stderr


def test_the_kubernetes_prometheus_rule_ships_the_same_groups() -> None:
    import yaml

    shipped = yaml.safe_load((RULES / "cvpipe-rules.yml").read_text(encoding="utf-8"))["groups"]
    k8s = yaml.safe_load((RULES.parent / "k8s" / "monitoring" / "prometheusrule.yaml").read_text(encoding="utf-8"))
    by_name = {g["name"]: g for g in k8s["spec"]["groups"]}
    assert [by_name.get(g["name"]) for g in shipped] == shipped
