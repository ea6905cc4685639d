#!/usr/bin/env bash
# ab.sh - two cairn binaries on the same tree, runs interleaved: did a change
# (a refactoring, an optimisation) change speed or memory?
#
# usage: benches/ab.sh A_BIN B_BIN DATA [RUNS] [WORK]
#
#   A_BIN, B_BIN  the two cairn binaries (e.g. built from two commits)
#   DATA          the tree to back up (e.g. the bench volume)
#   RUNS          rounds (default 3); each round runs A then B
#   WORK          scratch dir (default /tmp/cairn-ab)
#
# Steps per binary and round, each into a fresh plaintext repository (both
# binaries must understand `init --insecure-no-encryption`, or be older than
# encryption, when repositories were plaintext): backup1, a no-change backup,
# a full restore (compared with DATA by `diff -r --no-dereference`). Prints
# medians of wall seconds, CPU seconds (user + sys: less disturbed than wall
# time by other load on a shared machine) and peak RSS, and B/A for each.
set -euo pipefail

A=${1:?usage: ab.sh A_BIN B_BIN DATA [RUNS] [WORK]}
B=${2:?usage: ab.sh A_BIN B_BIN DATA [RUNS] [WORK]}
DATA=${3:?usage: ab.sh A_BIN B_BIN DATA [RUNS] [WORK]}
RUNS=${4:-3}
WORK=${5:-/tmp/cairn-ab}
for bin in "$A" "$B"; do [ -x "$bin" ] || { echo "not executable: $bin" >&2; exit 2; }; done
[ -d "$DATA" ] || { echo "no directory $DATA" >&2; exit 2; }

rm -rf "$WORK"
mkdir -p "$WORK"
RESULTS=$WORK/results.csv
echo "bin,run,step,wall_s,cpu_s,rss_kib,user_s" > "$RESULTS"

. "$(dirname "$0")/timed.sh"

init_plain() { # older binaries have no encryption and no such flag
  "$1" init --repo "$2" --insecure-no-encryption > /dev/null 2>&1 ||
    "$1" init --repo "$2" > /dev/null 2>&1
}

run_one() { # run_one NAME BIN RUN
  local name=$1 bin=$2 run=$3 repo=$WORK/repo target=$WORK/restore
  rm -rf "$repo" "$target"
  export CAIRN_CACHE_DIR=$WORK/cache-$name
  rm -rf "$CAIRN_CACHE_DIR"
  init_plain "$bin" "$repo"
  timed "$name" "$run" backup1 "$bin" backup "$DATA" --repo "$repo"
  timed "$name" "$run" nochange "$bin" backup "$DATA" --repo "$repo"
  timed "$name" "$run" restore "$bin" restore latest --target "$target" --repo "$repo"
  diff -r --no-dereference "$DATA" "$target" > /dev/null || { echo "$name: restore differs from $DATA" >&2; exit 1; }
  rm -rf "$target" "$repo"
}

unset CAIRN_PASSWORD CAIRN_KEY_FILE CAIRN_PASSWORD_FILE CAIRN_PASSWORD_COMMAND
for run in $(seq 1 "$RUNS"); do
  echo "==> round $run" >&2
  run_one A "$A" "$run"
  run_one B "$B" "$run"
done

python3 - "$RESULTS" <<'EOF'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))
def med(b, step, col):
    return statistics.median(float(r[col]) for r in rows if r["bin"] == b and r["step"] == step)
print(f"{'step':9} {'A wall':>7} {'B wall':>7} {'B/A':>6}   {'A cpu':>7} {'B cpu':>7} {'B/A':>6}   {'A MiB':>6} {'B MiB':>6}")
for step in ("backup1", "nochange", "restore"):
    a = [med("A", step, c) for c in ("wall_s", "cpu_s", "rss_kib")]
    b = [med("B", step, c) for c in ("wall_s", "cpu_s", "rss_kib")]
    ratio = lambda x, y: f"{x / y:6.2f}" if y else "     -"
    print(f"{step:9} {a[0]:7.2f} {b[0]:7.2f} {ratio(b[0], a[0])}   {a[1]:7.2f} {b[1]:7.2f} {ratio(b[1], a[1])}   "
          f"{a[2]/1024:6.1f} {b[2]/1024:6.1f}")
EOF
