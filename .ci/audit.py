"""``make audit``: pip-audit over the lock, with an honest verdict.

pip-audit asks a vulnerability service (PyPI's JSON API by default, or OSV)
about each pinned package. Where that service cannot be reached, pip-audit
either crashes with a connection traceback or, when PyPI answers "not found"
for every package (as on machines that see a package mirror but not PyPI's
JSON API), skips them all and still prints "No known vulnerabilities found"
with exit status 0. This wrapper says what really happened:

* exit 0: every package was audited, and every finding is one docs/security.md
  lists with its fix or mitigation;
* exit 1: a finding docs/security.md does not list (a new advisory: fix it or
  document the mitigation);
* exit 2: nothing, or not everything, could be audited (no vulnerability
  database reachable); the known findings are in docs/security.md.

Usage: ``python .ci/audit.py [--lock requirements.lock] [pip-audit options...]``
(``make audit`` runs it; ``make audit AUDIT_ARGS="--vulnerability-service osv"``).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SECURITY_DOC = ROOT / "docs" / "security.md"
_UNREACHABLE = re.compile(
    r"(ConnectionError|ProxyError|NameResolutionError|Max retries exceeded|Failed to resolve|Connection refused|timed out|SSLError)"
)


def known_ids(doc: Path = SECURITY_DOC) -> set[str]:
    """Advisory ids (PYSEC-, GHSA-, CVE-) listed in the security document.

    Args:
        doc: the document.

    Returns:
        The ids, upper-cased.
    """
    if not doc.is_file():
        return set()
    return {m.upper() for m in re.findall(r"\b(?:PYSEC-\d{4}-\d+|GHSA(?:-[0-9a-z]{4}){3}|CVE-\d{4}-\d+)\b", doc.read_text(), re.I)}


def verdict(report: dict[str, Any], known: set[str]) -> tuple[int, list[str]]:
    """The exit status and the lines to print for one pip-audit JSON report.

    Args:
        report: pip-audit's ``-f json`` output.
        known: advisory ids docs/security.md lists with a fix or mitigation.

    Returns:
        ``(status, lines)``: 0 all audited and every finding known, 1 an unlisted finding,
        2 some or all packages could not be audited.
    """
    deps = report.get("dependencies", [])
    skipped = [d for d in deps if d.get("skip_reason")]
    audited = [d for d in deps if not d.get("skip_reason")]
    lines: list[str] = []
    new = 0
    for d in audited:
        for v in d.get("vulns", []):
            ids = {v.get("id", "").upper(), *(a.upper() for a in v.get("aliases", []))}
            fix = ", ".join(v.get("fix_versions", [])) or "no fixed version"
            if ids & known:
                lines.append(f"known   {d['name']}=={d['version']}: {v.get('id')} (fix: {fix}); mitigation in docs/security.md")
            else:
                new += 1
                lines.append(f"NEW     {d['name']}=={d['version']}: {v.get('id')} (fix: {fix}): fix it or document it in docs/security.md")
    if skipped:
        reasons = sorted({re.sub(r":\s.*$", "", str(d["skip_reason"])) for d in skipped})
        if not audited:
            lines.append(
                f"NOT AUDITED: pip-audit could not check any of the {len(deps)} pinned packages ({'; '.join(reasons)}). "
                "This machine does not reach a vulnerability database (PyPI's JSON API or OSV), so "
                "'No known vulnerabilities found' would mean nothing. Known findings for the pinned versions, "
                "each with its fix or mitigation: docs/security.md."
            )
            return 2, lines
        lines.append(
            f"PARTLY AUDITED: {len(skipped)} of {len(deps)} packages could not be checked ({'; '.join(reasons)}): "
            + ", ".join(f"{d['name']}" for d in skipped[:20])
            + (" ..." if len(skipped) > 20 else "")
        )
    if new:
        lines.append(f"{new} finding(s) not in docs/security.md")
        return 1, lines
    if skipped:
        return 2, lines
    lines.append(f"audited {len(audited)} packages: no finding beyond those docs/security.md lists")
    return 0, lines


def main(argv: Sequence[str] | None = None) -> int:
    """Runs pip-audit over the lock and prints the verdict.

    Args:
        argv: ``[--lock FILE] [pip-audit options]``.

    Returns:
        The exit status (see the module docstring).
    """
    parser = argparse.ArgumentParser(prog="make audit")
    parser.add_argument("--lock", default=str(ROOT / "requirements.lock"))
    args, extra = parser.parse_known_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "audit.json"
        cmd = [
            sys.executable,
            "-m",
            "pip_audit",
            "-r",
            args.lock,
            "--no-deps",  # the lock pins every package: no resolution
            "--disable-pip",
            "--progress-spinner",
            "off",
            "-f",
            "json",
            "-o",
            str(out),
            *extra,
        ]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
        except subprocess.TimeoutExpired:
            print("NOT AUDITED: pip-audit did not finish in 30 minutes (is the vulnerability service reachable?)")
            return 2
        if not out.is_file() or not out.read_text().strip():
            tail = done.stderr.strip().splitlines()[-1:] or ["(no output)"]
            if _UNREACHABLE.search(done.stderr):
                print(
                    "NOT AUDITED: the vulnerability service cannot be reached from this machine "
                    f"({tail[0][:200]}). Known findings for the pinned versions: docs/security.md."
                )
                return 2
            print(f"NOT AUDITED: pip-audit failed (exit {done.returncode}): {tail[0][:300]}")
            return 2
        report = json.loads(out.read_text())
    status, lines = verdict(report, known_ids())
    print("\n".join(lines))
    return status


if __name__ == "__main__":
    sys.exit(main())
