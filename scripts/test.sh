#!/usr/bin/env bash
# The test command: installs what is missing, then runs the whole suite (SQLite, and PostgreSQL /
# Redis / Mosquitto on this machine when they are reachable; those parts skip with a reason otherwise).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install.sh
exec .venv/bin/python -m pytest "$@"
