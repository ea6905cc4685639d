#!/usr/bin/env bash
# s3-reads.sh - how two cairn binaries read an S3 repository (issue 10):
# requests, bytes, CPU and memory of restores and of `find` on a mount.
#
# usage: benches/s3-reads.sh A_BIN B_BIN DATA [--delay-ms N] [--work DIR]
#
#   A_BIN, B_BIN  the two cairn binaries (say, before and after a change)
#   DATA          the tree to back up (benches/side-by-side/gen.py volume DIR)
#   --delay-ms N  benches/delay-proxy.py in front of the server, N ms each
#                 way (round trip +2N ms); default 0
#   --work DIR    scratch dir (default /tmp/cairn-s3-reads)
#
# One s3s-fs server on loopback ($S3S_BIN or s3s-fs on PATH). A_BIN backs
# DATA up once; then each binary, in turn: a full restore with the cache
# the backup left and with an empty one, a restore of the `src` subtree and
# of the `*.rs` files (empty cache), each compared with DATA by `diff -r`
# for the full ones; then `cairn mount` with an empty cache and
# `find MOUNT | wc -l`. Prints per step: GETs and bytes received (cairn's
# own count, `--json`), GETs the server logged, CPU seconds (user + sys)
# and peak RSS of cairn (/usr/bin/time -v), wall seconds (noisy on a shared
# machine: compare GETs, bytes and RSS).
set -euo pipefail

A=${1:?usage: s3-reads.sh A_BIN B_BIN DATA [--delay-ms N] [--work DIR]}
B=${2:?usage}
DATA=${3:?usage}
shift 3
DELAY=0 WORK=/tmp/cairn-s3-reads
while [ $# -gt 0 ]; do
  case $1 in
    --delay-ms) DELAY=$2; shift 2 ;;
    --work) WORK=$2; shift 2 ;;
    *) echo "s3-reads.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
ROOT=$(cd "$(dirname "$0")/.." && pwd)
S3S=${S3S_BIN:-$(command -v s3s-fs || true)}
[ -n "$S3S" ] || { echo "no s3s-fs (cargo install s3s-fs --features binary)" >&2; exit 2; }

rm -rf "$WORK"
mkdir -p "$WORK/s3/bench"
freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
SP=$(freeport)
LOG=$WORK/s3s.log
NO_COLOR=1 RUST_LOG=s3s::ops=debug,s3s::ops::signature=info \
  "$S3S" --host 127.0.0.1 --port "$SP" --access-key bench --secret-key benchsecret "$WORK/s3" >"$LOG" 2>&1 &
PIDS=$!
trap 'kill $PIDS 2>/dev/null || true' EXIT
for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$SP/" && break; sleep 0.1; done
PORT=$SP
if [ "$DELAY" != 0 ]; then
  PORT=$(freeport)
  python3 "$ROOT/benches/delay-proxy.py" "$PORT" "$SP" "$DELAY" &
  PIDS="$PIDS $!"
  sleep 0.5
fi
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=benchsecret AWS_REGION=us-east-1
export AWS_ENDPOINT_URL=http://127.0.0.1:$PORT CAIRN_PASSWORD=bench
REPO=s3://bench/cairn

server_gets() { tail -n +"$(($1 + 1))" "$LOG" | grep -c 'resolved route, op: GetObject' || true; }
counted() { # GETs and MB received from cairn's --json summary on stdin
  grep '"message_type":"summary"' | tail -1 | python3 -c 'import json,sys
r=json.loads(sys.stdin.read())["requests"]; print("%d %.1f" % (r["get"], r["bytes_received"]/1e6))'
}
usage() { # CPU seconds and peak RSS MiB from a time -v log
  awk -F': ' '/User time/ {u=$2} /System time/ {s=$2} /Maximum resident/ {m=$2}
    /Elapsed \(wall clock\)/ {n=split($2,t,":"); w=0; for(i=1;i<=n;i++) w=w*60+t[i]}
    END {printf "%.2f %.1f %.2f\n", u+s, m/1024, w}' "$1"
}
printf '%-24s %6s %8s %11s %7s %8s %7s\n' step gets recv_MB server_gets cpu_s rss_mib wall_s
step() { # NAME CMD...
  local name=$1; shift
  local before; before=$(wc -l <"$LOG")
  /usr/bin/time -v "$@" >"$WORK/$name.out" 2>"$WORK/$name.time" || { echo "$name failed; see $WORK/$name.time" >&2; exit 1; }
  read -r gets mb < <(counted <"$WORK/$name.out")
  read -r cpu rss wall < <(usage "$WORK/$name.time")
  printf '%-24s %6s %8s %11s %7s %8s %7s\n' "$name" "$gets" "$mb" "$(server_gets "$before")" "$cpu" "$rss" "$wall"
}
mount_find() { # NAME BIN: mount with an empty cache, find, unmount
  local name=$1 bin=$2 mnt=$WORK/mnt-$1
  mkdir -p "$mnt"
  local before; before=$(wc -l <"$LOG")
  /usr/bin/time -v "$bin" --repo "$REPO" --cache-dir "$WORK/cache-$name" --json mount "$mnt" \
    >"$WORK/$name.out" 2>"$WORK/$name.time" &
  local pid=$!
  for _ in $(seq 300); do [ -d "$mnt/snapshots" ] && break; sleep 0.1; done
  local t0 t1 n; t0=$(date +%s.%N); n=$(find "$mnt" | wc -l); t1=$(date +%s.%N)
  fusermount3 -u "$mnt"
  wait "$pid"
  read -r gets mb < <(counted <"$WORK/$name.out")
  read -r cpu rss _ < <(usage "$WORK/$name.time")
  printf '%-24s %6s %8s %11s %7s %8s %7.2f  (%s entries; wall is find'"'"'s)\n' "$name" "$gets" "$mb" \
    "$(server_gets "$before")" "$cpu" "$rss" "$(echo "$t1 - $t0" | bc)" "$n"
}

"$A" --repo "$REPO" init >/dev/null 2>&1
step backup-A "$A" --repo "$REPO" --cache-dir "$WORK/cache-backup" --json backup "$DATA"
for v in A B; do
  bin=${!v}
  cp -a "$WORK/cache-backup" "$WORK/cache-warm-$v"
  step "restore-warm-$v" "$bin" --repo "$REPO" --cache-dir "$WORK/cache-warm-$v" --json restore latest --target "$WORK/out-warm-$v"
  step "restore-cold-$v" "$bin" --repo "$REPO" --cache-dir "$WORK/cache-cold-$v" --json restore latest --target "$WORK/out-cold-$v"
  step "restore-src-$v" "$bin" --repo "$REPO" --cache-dir "$WORK/cache-src-$v" --json restore latest:/src --target "$WORK/out-src-$v"
  step "restore-rs-$v" "$bin" --repo "$REPO" --cache-dir "$WORK/cache-rs-$v" --json restore latest --include '*.rs' --target "$WORK/out-rs-$v"
  diff -r --no-dereference "$DATA" "$WORK/out-warm-$v" >/dev/null && echo "restore-warm-$v: identical"
  diff -r --no-dereference "$DATA" "$WORK/out-cold-$v" >/dev/null && echo "restore-cold-$v: identical"
  diff -r --no-dereference "$DATA/src" "$WORK/out-src-$v" >/dev/null && echo "restore-src-$v: identical"
  rm -rf "$WORK/out-"*"-$v"
done
for v in A B; do mount_find "mount-find-$v" "${!v}"; done
