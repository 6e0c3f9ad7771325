"""The CI dependency audit (.ci/dependency_audit.py, docs/security.md): a known vulnerability fails the
build, an unreachable vulnerability service does not, and anything else that breaks pip-audit does.

pip-audit itself is replaced by a stand-in module on PYTHONPATH that writes the report (or fails) the
way the real one does, so these run without a network."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / ".ci" / "dependency_audit.py"

FAKE_PIP_AUDIT = """
import json, sys
args = sys.argv[1:]
output = args[args.index("--output") + 1]
mode = {mode!r}
if mode == "network":
    sys.stderr.write("requests.exceptions.ConnectionError: HTTPSConnectionPool(host='pypi.org', port=443): "
                     "Max retries exceeded with url: /pypi/django/5.2/json\\n")
    sys.exit(1)
if mode == "crash":
    sys.stderr.write("ValueError: invalid requirement\\n")
    sys.exit(1)
open(output, "w").write(json.dumps({report}))
sys.exit(1 if mode == "vulnerable" else 0)
"""

SKIP = "Dependency not found on PyPI and could not be audited: {0} (1.0)"


def run_audit(tmp_path: Path, mode: str, report: dict | None = None) -> subprocess.CompletedProcess:
    package = tmp_path / "pip_audit"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "__main__.py").write_text(FAKE_PIP_AUDIT.format(mode=mode, report=json.dumps(report or {})))
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    return subprocess.run(  # noqa: S603  (our own script)
        [sys.executable, str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60
    )


def test_a_known_vulnerability_fails_the_build_and_names_it(tmp_path):
    report = {
        "dependencies": [
            {"name": "django", "version": "5.2.0", "vulns": [{"id": "PYSEC-2099-1", "fix_versions": ["5.2.99"]}]},
            {"name": "celery", "version": "5.4.0", "vulns": []},
        ]
    }
    result = run_audit(tmp_path, "vulnerable", report)
    assert result.returncode == 1
    assert "VULNERABLE django 5.2.0: PYSEC-2099-1 (fixed in: 5.2.99)" in result.stderr


def test_a_clean_audit_passes_and_says_how_many_were_audited(tmp_path):
    report = {"dependencies": [{"name": "django", "version": "5.2.0", "vulns": []}]}
    result = run_audit(tmp_path, "clean", report)
    assert result.returncode == 0
    assert "1 dependencies audited, no known vulnerabilities" in result.stdout


@pytest.mark.parametrize("mode", ["network", "all-skipped"])
def test_an_unreachable_vulnerability_service_is_reported_plainly_and_does_not_fail(tmp_path, mode):
    report = {"dependencies": [{"name": n, "skip_reason": SKIP.format(n)} for n in ("django", "celery")]}
    result = run_audit(tmp_path, mode, report)
    assert result.returncode == 0
    assert "NOTHING WAS AUDITED" in result.stderr


def test_a_vulnerability_still_fails_when_other_dependencies_could_not_be_checked(tmp_path):
    report = {
        "dependencies": [
            {"name": "django", "version": "5.2.0", "vulns": [{"id": "GHSA-xxxx", "fix_versions": []}]},
            {"name": "celery", "skip_reason": SKIP.format("celery")},
        ]
    }
    result = run_audit(tmp_path, "vulnerable", report)
    assert result.returncode == 1
    assert "GHSA-xxxx (fixed in: no fixed version yet)" in result.stderr


def test_any_other_pip_audit_failure_fails_the_build(tmp_path):
    result = run_audit(tmp_path, "crash")
    assert result.returncode == 1
    assert "invalid requirement" in result.stderr
