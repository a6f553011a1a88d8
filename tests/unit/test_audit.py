"""``make audit`` (.ci/audit.py): an honest verdict from pip-audit, and the security document's known findings."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("cvpipe_ci_audit", ROOT / ".ci" / "audit.py")
assert _spec is not None and _spec.loader is not None
audit = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(audit)

PYARROW_FINDING = {
    "name": "pyarrow",
    "version": "10.0.1",
    "vulns": [{"id": "PYSEC-2023-238", "fix_versions": ["14.0.1"], "aliases": ["CVE-2023-47248", "GHSA-5wvp-7f3h-6wmm"]}],
}


def test_nothing_audited_is_said_plainly():
    """What pip-audit reports where PyPI's JSON API answers 'not found' for every package (it exits 0)."""
    report = {
        "dependencies": [
            {"name": "absl-py", "skip_reason": "Dependency not found on PyPI and could not be audited: absl-py (1.4.0)"},
            {"name": "pyarrow", "skip_reason": "Dependency not found on PyPI and could not be audited: pyarrow (10.0.1)"},
        ],
        "fixes": [],
    }
    status, lines = audit.verdict(report, audit.known_ids())
    assert status == 2
    assert lines[-1].startswith("NOT AUDITED: pip-audit could not check any of the 2 pinned packages")
    assert "does not reach a vulnerability database" in lines[-1] and "docs/security.md" in lines[-1]


def test_known_findings_pass_and_new_ones_fail():
    clean = {"name": "requests", "version": "2.34.2", "vulns": []}
    status, lines = audit.verdict({"dependencies": [PYARROW_FINDING, clean]}, audit.known_ids())
    assert status == 0, lines
    assert lines[0].startswith("known   pyarrow==10.0.1: PYSEC-2023-238 (fix: 14.0.1)")
    new = {"name": "foo", "version": "1.0", "vulns": [{"id": "PYSEC-2099-1", "fix_versions": ["1.1"], "aliases": []}]}
    status, lines = audit.verdict({"dependencies": [PYARROW_FINDING, new]}, audit.known_ids())
    assert status == 1 and any(line.startswith("NEW     foo==1.0: PYSEC-2099-1") for line in lines)
    partly = {"dependencies": [clean, {"name": "x", "skip_reason": "Dependency not found on PyPI and could not be audited: x (1)"}]}
    status, lines = audit.verdict(partly, audit.known_ids())
    assert status == 2 and lines[-1].startswith("PARTLY AUDITED: 1 of 2 packages could not be checked")


def test_security_document_lists_the_pinned_findings():
    known = audit.known_ids()
    assert {"PYSEC-2023-238", "CVE-2023-47248", "CVE-2026-23528"} <= known


@pytest.mark.parametrize("service", [[], ["--vulnerability-service", "osv"]], ids=["pypi", "osv"])
def test_unreachable_service_is_not_audited_rather_than_a_traceback(tmp_path, service):
    """A real pip-audit run whose HTTPS goes to a closed port: a plain 'NOT AUDITED', exit 2."""
    lock = tmp_path / "requirements.lock"
    lock.write_text("pyarrow==10.0.1\n")
    env = {**os.environ, "HTTPS_PROXY": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9", "NO_PROXY": "", "no_proxy": ""}
    done = subprocess.run(
        [sys.executable, str(ROOT / ".ci" / "audit.py"), "--lock", str(lock), "--cache-dir", str(tmp_path / "cache"), *service],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stdout.startswith("NOT AUDITED: the vulnerability service cannot be reached from this machine")
    assert "Traceback" not in done.stdout
