#!/usr/bin/env bash
# Start (or stop) a throwaway PostgreSQL cluster on loopback for tierline's tests and benchmarks.
#   bash scripts/postgres.sh start   -> prints the database URL to use as TIERLINE_DATABASE_URL
#   bash scripts/postgres.sh stop
# Installs Debian's postgresql package when it is missing. Runs the server as the postgres user.
set -euo pipefail
PORT="${TIERLINE_PG_PORT:-55432}"
DIR="${TIERLINE_PG_DIR:-/tmp/tierline-pg}"
BIN="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
as_pg() { if [ "$(id -u)" = 0 ]; then su postgres -s /bin/bash -c "$*"; else bash -c "$*"; fi; }

case "${1:-start}" in
  start)
    if [ -z "$BIN" ] || [ ! -x "$BIN/initdb" ]; then
      export DEBIAN_FRONTEND=noninteractive
      apt-get update -qq >/dev/null
      apt-get install -y -qq postgresql >/dev/null
      BIN="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"
    fi
    if ! as_pg "$BIN/pg_isready -h 127.0.0.1 -p $PORT" >/dev/null 2>&1; then
      rm -rf "$DIR"; mkdir -p "$DIR"
      [ "$(id -u)" = 0 ] && chown postgres:postgres "$DIR"
      as_pg "$BIN/initdb -D $DIR/data -U postgres -A trust" >/dev/null
      as_pg "$BIN/pg_ctl -D $DIR/data -l $DIR/log -w -o '-h 127.0.0.1 -p $PORT -k $DIR -c max_connections=200 -c fsync=on' start" >/dev/null
    fi
    as_pg "$BIN/psql -h 127.0.0.1 -p $PORT -U postgres -tAc \"SELECT 1 FROM pg_database WHERE datname='tierline'\"" | grep -q 1 \
      || as_pg "$BIN/createdb -h 127.0.0.1 -p $PORT -U postgres tierline"
    echo "postgresql+psycopg://postgres@127.0.0.1:$PORT/tierline"
    ;;
  stop)
    [ -d "$DIR/data" ] && as_pg "$BIN/pg_ctl -D $DIR/data -m fast stop" >/dev/null || true
    ;;
esac
