#!/usr/bin/env bash
# One command for a fresh machine: install, migrate, create the demo plant with history, and run
# the web server, a Celery worker, Celery beat and the live simulator (Ctrl-C stops them all).
# The first run also trains the demo root-cause diagnoser (phm_diagnose --train-demo).
# Embedded defaults: SQLite under var/, the filesystem Celery broker under var/broker (no server).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install.sh
PY=.venv/bin/python
export PORT="${PORT:-8000}"
$PY manage.py migrate --noinput -v 0
$PY manage.py collectstatic --noinput -v 0
$PY manage.py phm_demo --hours "${PHM_DEMO_HOURS:-24}"
$PY manage.py phm_diagnose --train-demo  # first run only (about 10 min on 2 CPU cores); later runs see the stored model
$PY manage.py phm_bootstrap --url "http://127.0.0.1:${PORT}/"
exec .venv/bin/honcho -f Procfile start
