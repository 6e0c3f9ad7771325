#!/usr/bin/env bash
# Set everything up and run the demo: embedded mode (SQLite, eager Celery, no services).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e .
.venv/bin/python manage.py migrate --noinput -v0
HOST="${HOST:-127.0.0.1}"
PORT="${PORT:-8000}"
.venv/bin/python manage.py seed_demo --base-url "http://${HOST}:${PORT}"
echo "Serving on http://${HOST}:${PORT}/  (Ctrl-C to stop)"
exec .venv/bin/python manage.py runserver "${HOST}:${PORT}"
