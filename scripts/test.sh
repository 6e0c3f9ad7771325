#!/usr/bin/env bash
# Set up and run the test suite.
#  - With DATABASE_URL (PostgreSQL) and REDIS_URL set, the whole suite runs against them,
#    then again on SQLite (the embedded mode), without the PostgreSQL-only tests.
#  - Without DATABASE_URL, only the SQLite run happens.
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[dev]"
WORKERS="${PYTEST_WORKERS:-auto}"
status=0
if [ -n "${DATABASE_URL:-}" ]; then
  echo "== tests on PostgreSQL (${DATABASE_URL%%@*}@…) =="
  .venv/bin/python -m pytest -n "$WORKERS" "$@" || status=$?
fi
echo "== tests on SQLite (embedded mode) =="
env -u DATABASE_URL .venv/bin/python -m pytest -n "$WORKERS" -m "not postgres" "$@" || status=$?
exit $status
