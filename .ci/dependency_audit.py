"""Audit the installed dependencies for known vulnerabilities with pip-audit (docs/security.md).

Fails (exit 1) when pip-audit reports a vulnerability, or when it fails for any reason other than
not reaching its vulnerability service. When the service cannot be reached (no network, or an
index mirror without PyPI's JSON API, as on the CI machine) nothing could be checked: that is said
plainly on stderr and does not fail the build, since it says nothing about our dependencies.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

NETWORK_ERRORS = ("ConnectionError", "NameResolutionError", "ConnectTimeout", "ReadTimeout", "Max retries exceeded")


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        report_path = Path(tmp) / "audit.json"
        command = [
            sys.executable,
            "-m",
            "pip_audit",
            "--progress-spinner",
            "off",
            "--skip-editable",  # leadbase itself
            "--desc",
            "on",
            "--format",
            "json",
            "--output",
            str(report_path),
        ]
        result = subprocess.run(command, capture_output=True, text=True, timeout=600)  # noqa: S603  (fixed argv)
        if not report_path.exists():
            if any(marker in result.stderr for marker in NETWORK_ERRORS):
                print(
                    "dependency audit: the vulnerability service is unreachable; NOTHING WAS AUDITED", file=sys.stderr
                )
                return 0
            print(result.stdout + result.stderr, file=sys.stderr)
            return 1
        report = json.loads(report_path.read_text())

    dependencies = report.get("dependencies", [])
    vulnerable = [d for d in dependencies if d.get("vulns")]
    skipped = [d for d in dependencies if d.get("skip_reason")]
    audited = len(dependencies) - len(skipped)
    for dep in vulnerable:
        for vuln in dep["vulns"]:
            fixes = ", ".join(vuln.get("fix_versions") or []) or "no fixed version yet"
            print(f"VULNERABLE {dep['name']} {dep.get('version')}: {vuln['id']} (fixed in: {fixes})", file=sys.stderr)
    if vulnerable:
        return 1
    if skipped and not audited:
        print(
            f"dependency audit: the vulnerability service could not be reached for any of the {len(skipped)} "
            "dependencies; NOTHING WAS AUDITED (not failing the build: this is a network limit, not a finding)",
            file=sys.stderr,
        )
        return 0
    if skipped:
        names = ", ".join(sorted(d["name"] for d in skipped))
        print(f"dependency audit: {len(skipped)} dependencies could not be audited: {names}", file=sys.stderr)
    print(f"dependency audit: {audited} dependencies audited, no known vulnerabilities")
    return 0


if __name__ == "__main__":
    sys.exit(main())
