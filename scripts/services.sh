#!/usr/bin/env bash
# Start the local PostgreSQL, Redis and Mosquitto servers if they are installed but down (the
# development and CI machines have them; tests skip with a reason where they are missing).
set -uo pipefail
if command -v pg_ctlcluster >/dev/null && ! pg_isready -h 127.0.0.1 -q 2>/dev/null; then
  echo "==> starting PostgreSQL"; pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
fi
if command -v redis-server >/dev/null && ! redis-cli -h 127.0.0.1 ping >/dev/null 2>&1; then
  echo "==> starting Redis"; redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no || true
fi
if command -v mosquitto >/dev/null && ! (exec 3<>/dev/tcp/127.0.0.1/1883) 2>/dev/null; then
  echo "==> starting Mosquitto"; mosquitto -d -c /etc/mosquitto/mosquitto.conf || true
fi
exit 0
