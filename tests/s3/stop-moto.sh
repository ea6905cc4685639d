#!/usr/bin/env bash
# Stop the moto server started by start-moto.sh.
#
#   tests/s3/stop-moto.sh [PIDFILE]    (default: /tmp/cairn-moto.pid)
set -euo pipefail
pidfile="${1:-/tmp/cairn-moto.pid}"
[ -f "$pidfile" ] || exit 0
pid="$(cat "$pidfile")"
if kill -0 "$pid" 2>/dev/null; then
  kill "$pid"
  for _ in $(seq 1 50); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -9 "$pid" 2>/dev/null || true
fi
rm -f "$pidfile"
