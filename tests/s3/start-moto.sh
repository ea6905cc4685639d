#!/usr/bin/env bash
# Start moto's S3 server on 127.0.0.1:PORT in the background, installing
# moto[server] with pip if it is missing; wait until it answers, then print
# its pid (for stop-moto.sh). The cairn-s3 tests start their own moto when
# moto_server is on PATH; this script is for CI and for manual runs.
#
#   tests/s3/start-moto.sh [PORT] [PIDFILE]    (defaults: 5055, /tmp/cairn-moto.pid)
set -euo pipefail
port="${1:-5055}"
pidfile="${2:-/tmp/cairn-moto.pid}"
log="${MOTO_LOG:-/tmp/cairn-moto.log}"

# moto 5.2 answers PutObject's If-None-Match: * with 412, as S3 does; the
# tests check that it still does.
want='moto[server]>=5.2,<6'
if ! command -v moto_server >/dev/null 2>&1 ||
   ! python3 -c 'import moto, sys; sys.exit(tuple(map(int, moto.__version__.split(".")[:2])) < (5, 2))' 2>/dev/null; then
  python3 -m pip install --quiet --disable-pip-version-check "$want" >&2
  hash -r
fi

moto_server -H 127.0.0.1 -p "$port" >"$log" 2>&1 &
pid=$!
echo "$pid" >"$pidfile"

for _ in $(seq 1 300); do
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "moto_server exited; see $log" >&2
    exit 1
  fi
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "$pid"
    exit 0
  fi
  sleep 0.1
done
echo "moto_server did not answer on 127.0.0.1:$port within 30 s; see $log" >&2
kill "$pid" 2>/dev/null || true
exit 1
