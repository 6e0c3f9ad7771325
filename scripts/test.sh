#!/usr/bin/env bash
# Set up and run the test suite.
#  - With DATABASE_URL (PostgreSQL) and REDIS_URL set, the whole suite runs against them,
#    then again on SQLite (the embedded mode), without the PostgreSQL-only tests.
#  - Without DATABASE_URL, only the SQLite run happens.
#  - Without REDIS_URL, the tests marked `redis` are deselected in both runs.
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
# Tests marked `redis` need a real Redis: without REDIS_URL they are deselected (CI sets it, so
# there both runs use Redis).
if [ -n "${REDIS_URL:-}" ]; then
  PG_MARKS=()
  SQLITE_MARKS=(-m "not postgres")
else
  echo "REDIS_URL is not set: deselecting the tests that need Redis"
  PG_MARKS=(-m "not redis")
  SQLITE_MARKS=(-m "not postgres and not redis")
fi
status=0
if [ -n "${DATABASE_URL:-}" ]; then
  echo "== tests on PostgreSQL (${DATABASE_URL%%@*}@…) =="
  .venv/bin/python -m pytest -n "$WORKERS" ${PG_MARKS[@]+"${PG_MARKS[@]}"} "$@" || status=$?
fi
echo "== tests on SQLite (embedded mode) =="
env -u DATABASE_URL .venv/bin/python -m pytest -n "$WORKERS" ${SQLITE_MARKS[@]+"${SQLITE_MARKS[@]}"} "$@" || status=$?
exit $status
