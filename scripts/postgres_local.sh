#!/usr/bin/env bash
# Start (or stop) a private PostgreSQL cluster on 127.0.0.1 for the Dagster instance.
#   scripts/postgres_local.sh start DIR PORT   initdb DIR if needed, start, create db `dagster`
#   scripts/postgres_local.sh stop DIR
# Installs Debian's PostgreSQL when it is missing. Runs the server as the `postgres` user
# when invoked as root (initdb refuses root).
set -euo pipefail
action=${1:?start|stop}; dir=${2:?data directory}; port=${3:-55432}

bin_dir() {
  local found
  found=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  if [ -z "$found" ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    found=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
  fi
  echo "$found"
}

as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

BIN=$(bin_dir)
case "$action" in
  start)
    mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown postgres "$dir"
    if [ ! -f "$dir/PG_VERSION" ]; then
      as_owner "$BIN/initdb" -D "$dir" -U dagster --auth=trust >/dev/null
    fi
    as_owner "$BIN/pg_ctl" -D "$dir" -l "$dir/server.log" -w \
      -o "-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories=$dir" start >/dev/null
    as_owner "$BIN/psql" -h 127.0.0.1 -p "$port" -U dagster -d postgres -tAc \
      "select 1 from pg_database where datname = 'dagster'" | grep -q 1 \
      || as_owner "$BIN/createdb" -h 127.0.0.1 -p "$port" -U dagster dagster
    echo "postgresql on 127.0.0.1:$port (data $dir)"
    ;;
  stop)
    as_owner "$BIN/pg_ctl" -D "$dir" -m fast stop >/dev/null || true
    ;;
  *) echo "usage: $0 start|stop DIR [PORT]" >&2; exit 2 ;;
esac
