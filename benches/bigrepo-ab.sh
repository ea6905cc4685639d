#!/usr/bin/env bash
# bigrepo-ab.sh - the everyday read-only commands on a big repository, two
# cairn binaries interleaved: `snapshots`, `ls latest` and the restore of
# one file of the latest snapshot.
#
# usage: benches/bigrepo-ab.sh A_BIN B_BIN REPO [RUNS] [WORK]
#
#   A_BIN, B_BIN  the two cairn binaries (e.g. built from two commits)
#   REPO          a plaintext repository, e.g. one made by benches/bigrepo.rs
#                 (cargo bench --bench bigrepo -- --repo REPO --chunks N)
#   RUNS          rounds (default 5); each round runs every step with A, then B
#   WORK          scratch dir (default /tmp/cairn-bigrepo-ab)
#
# Each binary has its own cache directory, synced by an untimed `snapshots`
# first (A's index cache is copied for B, which then runs `snapshots` once
# too, writing its snapshot cache if it keeps one): the figures are those
# of a host that has used the repository before.
# Prints medians of wall seconds, CPU seconds (user + sys) and peak RSS,
# and B/A.
set -euo pipefail

A=${1:?usage: bigrepo-ab.sh A_BIN B_BIN REPO [RUNS] [WORK]}
B=${2:?usage: bigrepo-ab.sh A_BIN B_BIN REPO [RUNS] [WORK]}
REPO=${3:?usage: bigrepo-ab.sh A_BIN B_BIN REPO [RUNS] [WORK]}
RUNS=${4:-5}
WORK=${5:-/tmp/cairn-bigrepo-ab}
for bin in "$A" "$B"; do [ -x "$bin" ] || { echo "not executable: $bin" >&2; exit 2; }; done
[ -f "$REPO/config" ] || { echo "no repository at $REPO" >&2; exit 2; }

mkdir -p "$WORK"
rm -rf "$WORK/out-A" "$WORK/out-B"
RESULTS=$WORK/results.csv
echo "bin,run,step,wall_s,cpu_s,rss_kib" > "$RESULTS"

. "$(dirname "$0")/timed.sh"

unset CAIRN_PASSWORD CAIRN_KEY_FILE CAIRN_PASSWORD_FILE CAIRN_PASSWORD_COMMAND
echo "==> syncing the caches" >&2
rm -rf "$WORK/cache-A" "$WORK/cache-B"
"$A" --repo "$REPO" --cache-dir "$WORK/cache-A" snapshots > /dev/null
cp -a "$WORK/cache-A" "$WORK/cache-B"
"$B" --repo "$REPO" --cache-dir "$WORK/cache-B" snapshots > /dev/null
# One file of the latest snapshot: the last regular file `ls -l` shows.
FILE=$("$A" --repo "$REPO" --cache-dir "$WORK/cache-A" ls -l latest | awk '$1 ~ /^-/ { f = $NF } END { print f }')
[ -n "$FILE" ] || { echo "no file in the latest snapshot" >&2; exit 1; }
echo "==> restoring latest:$FILE" >&2

for run in $(seq 1 "$RUNS"); do
  echo "==> round $run" >&2
  for name in A B; do
    bin=${!name}
    c=("$bin" --repo "$REPO" --cache-dir "$WORK/cache-$name")
    timed "$name" "$run" snapshots "${c[@]}" snapshots
    timed "$name" "$run" ls-latest "${c[@]}" ls latest
    rm -rf "$WORK/out-$name"
    timed "$name" "$run" restore-file "${c[@]}" restore "latest:$FILE" --target "$WORK/out-$name"
  done
done
cmp "$WORK/out-A/$(basename "$FILE")" "$WORK/out-B/$(basename "$FILE")"

python3 - "$RESULTS" <<'EOF'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))
def med(b, step, col):
    return statistics.median(float(r[col]) for r in rows if r["bin"] == b and r["step"] == step)
print(f"{'step':13} {'A wall':>7} {'B wall':>7} {'B/A':>6}   {'A cpu':>7} {'B cpu':>7} {'B/A':>6}   {'A MiB':>6} {'B MiB':>6}")
for step in ("snapshots", "ls-latest", "restore-file"):
    a = [med("A", step, c) for c in ("wall_s", "cpu_s", "rss_kib")]
    b = [med("B", step, c) for c in ("wall_s", "cpu_s", "rss_kib")]
    ratio = lambda x, y: f"{x / y:6.2f}" if y else "     -"
    print(f"{step:13} {a[0]:7.2f} {b[0]:7.2f} {ratio(b[0], a[0])}   {a[1]:7.2f} {b[1]:7.2f} {ratio(b[1], a[1])}   "
          f"{a[2]/1024:6.1f} {b[2]/1024:6.1f}")
EOF
