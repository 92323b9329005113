#!/usr/bin/env bash
# A private PostgreSQL cluster for bench/storage.py's cold charts: restarting the shared server
# would cut every other client off, restarting this one touches no one. Same binaries and
# defaults as the system cluster (shared_buffers 128MB, autovacuum off as in CI), max_wal_size
# 4GB for the bulk load; trust auth on 127.0.0.1 only; started under nice.
#   bench/private_postgres.sh init|start|restart|stop|remove   (env: PG_BENCH_DIR, PG_BENCH_PORT)
set -euo pipefail
DIR=${PG_BENCH_DIR:-/work/bench-pg}
PORT=${PG_BENCH_PORT:-5433}
BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
as_postgres() { runuser -u postgres -- "$@"; }
case "${1:-}" in
  init)
    mkdir -p "$DIR" && chown postgres:postgres "$DIR"
    as_postgres "$BIN/initdb" -D "$DIR/data" -A trust -U postgres --locale=C.UTF-8 >/dev/null
    printf "listen_addresses = '127.0.0.1'\nport = %s\nunix_socket_directories = '%s'\nmax_wal_size = 4GB\nautovacuum = off\n" "$PORT" "$DIR" >> "$DIR/data/postgresql.conf"
    as_postgres nice -n 10 "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/log" -w start >/dev/null
    psql -h 127.0.0.1 -p "$PORT" -U postgres -qc "CREATE ROLE root SUPERUSER LOGIN"
    echo "PHM_BENCH_POSTGRES_URL=postgresql://root@127.0.0.1:$PORT/postgres" ;;
  start) as_postgres nice -n 10 "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/log" -w start >/dev/null ;;
  # Output to the log file, never to the caller's pipes (the server would hold them open).
  restart) as_postgres nice -n 10 "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/log" -w -m fast restart >/dev/null ;;
  stop) as_postgres "$BIN/pg_ctl" -D "$DIR/data" -w -m fast stop >/dev/null ;;
  remove) as_postgres "$BIN/pg_ctl" -D "$DIR/data" -w -m fast stop >/dev/null 2>&1 || true; rm -rf "$DIR" ;;
  *) echo "usage: $0 init|start|restart|stop|remove" >&2; exit 2 ;;
esac
