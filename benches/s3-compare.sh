#!/usr/bin/env bash
# s3-compare.sh - cairn and restic against one S3 server on loopback, side by side.
#
# usage: benches/s3-compare.sh (--data DIR | --scale F) [--delay-ms N] [--work DIR]
#
#   --data DIR     the tree to back up
#   --scale F      or generate one with $GEN (the bench dataset generator,
#                  `gen_dataset.py`), 1 = ~1 GiB
#   --delay-ms N   put benches/delay-proxy.py between the tools and the server,
#                  delaying each direction by N ms (round trip +2N ms; netem
#                  would do the same where the kernel has sch_netem; default 0)
#   --work DIR     scratch dir (default /tmp/cairn-s3-bench)
#
# The S3 server is s3s-fs (Rust, `cargo install s3s-fs --features binary`;
# $S3S_BIN or `s3s-fs` on PATH), so the server is not the bottleneck the
# Python one would be. cairn: $CAIRN_BIN or ./target/release/cairn.
#
# Steps, each under /usr/bin/time -v: cairn backup1 to local disk and a
# restore from there (the reference), cairn backup1 to S3, restic backup1
# to S3, then a full restore from S3 by each
# (cairn's with the cache its backup left, then again with an empty cache),
# compared with the source by `diff -r`. Prints one table: wall seconds,
# peak RSS, the CPU seconds the server (and the delaying proxy) spent on
# the step, and the requests the server saw during it, by S3 operation
# (from its debug log, so both tools are counted the same way). Runs share
# the machine's cores with the server and the proxy: compare within a run.
set -euo pipefail

SCALE=1 DELAY=0 WORK=/tmp/cairn-s3-bench DATA=
while [ $# -gt 0 ]; do
  case $1 in
    --data) DATA=$2; shift 2 ;;
    --scale) SCALE=$2; shift 2 ;;
    --delay-ms) DELAY=$2; shift 2 ;;
    --work) WORK=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "s3-compare.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CAIRN=${CAIRN_BIN:-$ROOT/target/release/cairn}
S3S=${S3S_BIN:-$(command -v s3s-fs || true)}
[ -x "$CAIRN" ] || { echo "no cairn binary at $CAIRN (cargo build --release -p cairn-cli)" >&2; exit 2; }
[ -n "$S3S" ] || { echo "no s3s-fs (cargo install s3s-fs --features binary)" >&2; exit 2; }
command -v restic >/dev/null || { echo "no restic (apt-get install -y restic)" >&2; exit 2; }

mkdir -p "$WORK"
if [ -z "$DATA" ]; then
  [ -n "${GEN:-}" ] || { echo "give --data DIR, or GEN=path/to/gen_dataset.py with --scale" >&2; exit 2; }
  DATA=$WORK/data-$SCALE
  [ -d "$DATA" ] || python3 "$GEN" gen "$DATA" --scale "$SCALE" --seed 42 >/dev/null
fi

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
rm -rf "$WORK/s3" "$WORK/local" "$WORK/out-"* "$WORK/cache-"*
mkdir -p "$WORK/s3/bench"
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=benchsecret AWS_REGION=us-east-1
SERVER_PORT=$PORT
if [ "$DELAY" != 0 ]; then
  PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
fi
export AWS_ENDPOINT_URL=http://127.0.0.1:$PORT
# One "resolved route, op: NAME" line per request: the request counts.
NO_COLOR=1 RUST_LOG=s3s::ops=debug,s3s::ops::signature=info \
  "$S3S" --host 127.0.0.1 --port "$SERVER_PORT" --access-key "$AWS_ACCESS_KEY_ID" \
  --secret-key "$AWS_SECRET_ACCESS_KEY" "$WORK/s3" \
  >"$WORK/s3s.log" 2>&1 &
S3PID=$!
PROXYPID=
cleanup() {
  kill "$S3PID" $PROXYPID 2>/dev/null || true
}
trap cleanup EXIT
for _ in $(seq 50); do
  curl -s -o /dev/null "http://127.0.0.1:$SERVER_PORT/" && break
  sleep 0.1
done
if [ "$DELAY" != 0 ]; then
  python3 "$ROOT/benches/delay-proxy.py" "$PORT" "$SERVER_PORT" "$DELAY" &
  PROXYPID=$!
  sleep 0.5
fi

export CAIRN_PASSWORD=bench RESTIC_PASSWORD=bench
printf '%-22s %9s %10s %12s %11s %s\n' step wall_s rss_mib server_cpu_s proxy_cpu_s requests
cpu_of() { # CPU seconds process $1 has used so far (0 without one)
  [ -n "$1" ] || { echo 0; return; }
  awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / hz}' "/proc/$1/stat"
}
delta() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", b - a}'; }
requests() { # the requests the server logged after line $1, by operation
  tail -n +"$(($1 + 1))" "$WORK/s3s.log" | grep -o 'resolved route, op: [A-Za-z0-9]*' |
    awk '{n[$4]++} END {for (o in n) printf "%s %d, ", o, n[o]}' | sed 's/, $//'
}
step() { # NAME CMD...: run under time -v, print wall, RSS, CPU and requests
  local name=$1; shift
  local log=$WORK/$name.time out=$WORK/$name.out
  local before server proxy
  before=$(wc -l <"$WORK/s3s.log") server=$(cpu_of "$S3PID") proxy=$(cpu_of "$PROXYPID")
  /usr/bin/time -v "$@" >"$out" 2>"$log" || { echo "$name failed; see $log" >&2; tail -5 "$log" >&2; exit 1; }
  local wall rss
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,t,":"); s=0; for(i=1;i<=n;i++) s=s*60+t[i]; print s}' "$log")
  rss=$(awk -F': ' '/Maximum resident/ {printf "%.1f", $2/1024}' "$log")
  server=$(delta "$server" "$(cpu_of "$S3PID")") proxy=$(delta "$proxy" "$(cpu_of "$PROXYPID")")
  printf '%-22s %9s %10s %12s %11s %s\n' "$name" "$wall" "$rss" "$server" "$proxy" "$(requests "$before")"
}

"$CAIRN" --repo "$WORK/local" init >/dev/null 2>&1
"$CAIRN" --repo "s3://bench/cairn" init >/dev/null 2>&1
step cairn-backup-local "$CAIRN" --repo "$WORK/local" --cache-dir "$WORK/cache-local" --json backup "$DATA"
step cairn-restore-local "$CAIRN" --repo "$WORK/local" --cache-dir "$WORK/cache-local" --json restore latest --target "$WORK/out-local"
step cairn-backup-s3 "$CAIRN" --repo "s3://bench/cairn" --cache-dir "$WORK/cache-s3" --json backup "$DATA"
restic -r "s3:http://127.0.0.1:$PORT/bench/restic" init >/dev/null
step restic-backup-s3 restic -r "s3:http://127.0.0.1:$PORT/bench/restic" backup --no-cache -q "$DATA"
step cairn-restore-s3 "$CAIRN" --repo "s3://bench/cairn" --cache-dir "$WORK/cache-s3" --json restore latest --target "$WORK/out-cairn"
step cairn-restore-s3-cold "$CAIRN" --repo "s3://bench/cairn" --cache-dir "$WORK/cache-cold" --json restore latest --target "$WORK/out-cairn-cold"
step restic-restore-s3 restic -r "s3:http://127.0.0.1:$PORT/bench/restic" restore latest --target "$WORK/out-restic"
diff -r --no-dereference "$DATA" "$WORK/out-local" >/dev/null && echo "cairn local restore: identical"
diff -r --no-dereference "$DATA" "$WORK/out-cairn" >/dev/null && echo "cairn restore: identical"
diff -r --no-dereference "$DATA" "$WORK/out-cairn-cold" >/dev/null && echo "cairn restore (empty cache): identical"
diff -r --no-dereference "$DATA" "$WORK/out-restic$DATA" >/dev/null && echo "restic restore: identical"
echo "stored: cairn $(du -sb "$WORK/s3/bench/cairn" | cut -f1) B, restic $(du -sb "$WORK/s3/bench/restic" | cut -f1) B"
for name in cairn-backup-s3 cairn-restore-s3 cairn-restore-s3-cold; do
  printf 'cairn %s counted: %s\n' "$name" "$(tail -1 "$WORK/$name.out" | python3 -c 'import json,sys
try: print(json.dumps(json.loads(sys.stdin.read()).get("requests", "")))
except Exception: print("")' 2>/dev/null)"
done
