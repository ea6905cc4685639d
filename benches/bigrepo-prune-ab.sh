#!/usr/bin/env bash
# bigrepo-prune-ab.sh - prune and check of two cairn binaries on copies of
# one synthetic repository far larger than memory (issue 13 §3).
#
# usage: benches/bigrepo-prune-ab.sh A_BIN B_BIN CHUNKS [WORK]
#
#   A_BIN, B_BIN  the two cairn binaries (e.g. main and a branch)
#   CHUNKS        distinct chunks of the synthetic repository (10,000
#                 snapshots; benches/bigrepo.rs makes it, kept in
#                 WORK/repo-CHUNKS for later runs)
#   WORK          scratch dir (default /tmp/cairn-bigrepo)
#
# Each binary gets its own copy of the repository and its own cache (filled
# by `snapshots` first, so the prune does not pay a new host's first open),
# then, each under /usr/bin/time: a prune with nothing to free, `forget
# --keep-last 5000` (not timed), a prune that frees half the history, and a
# `check` of the pruned repository. Prints CPU seconds (user + sys: less
# disturbed than wall time on a shared machine), peak RSS and wall time.
set -euo pipefail

A=${1:?usage: bigrepo-prune-ab.sh A_BIN B_BIN CHUNKS [WORK]}
B=${2:?usage: bigrepo-prune-ab.sh A_BIN B_BIN CHUNKS [WORK]}
CHUNKS=${3:?usage: bigrepo-prune-ab.sh A_BIN B_BIN CHUNKS [WORK]}
WORK=${4:-/tmp/cairn-bigrepo}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
for bin in "$A" "$B"; do [ -x "$bin" ] || { echo "not executable: $bin" >&2; exit 2; }; done
REPO=$WORK/repo-$CHUNKS
mkdir -p "$WORK"

if [ ! -f "$REPO/config" ]; then
  (cd "$ROOT" && cargo bench --bench bigrepo --no-run 2>/dev/null)
  GEN=$(ls -t "$ROOT"/target/release/deps/bigrepo-* | grep -v '\.d$' | head -1)
  "$A" --repo "$REPO" init --insecure-no-encryption >/dev/null
  "$GEN" --repo "$REPO" --chunks "$CHUNKS" --snapshots 10000 >/dev/null
fi

timed() { # LABEL CMD...
  local label=$1; shift
  /usr/bin/time -f "%U %S %M %e" -o "$WORK/time" "$@" >"$WORK/out" 2>&1 \
    || { echo "$label failed: $(tail -1 "$WORK/out")"; return 0; }
  read -r user sys rss wall <"$WORK/time"
  printf '%-34s cpu %8.2f s  rss %8.1f MiB  wall %8.2f s\n' "$label" \
    "$(echo "$user + $sys" | bc -l)" "$(echo "$rss / 1024" | bc -l)" "$wall"
}

for side in A B; do
  bin=$A; [ "$side" = B ] && bin=$B
  copy=$WORK/ab-$side-$CHUNKS
  rm -rf "$copy" "$copy.cache"
  cp -a "$REPO" "$copy"
  c=("$bin" --repo "$copy" --cache-dir "$copy.cache")
  "${c[@]}" snapshots >/dev/null
  timed "$side prune (nothing to free)" "${c[@]}" prune
  "${c[@]}" forget --keep-last 5000 >/dev/null 2>&1
  timed "$side forget 5000, prune" "${c[@]}" prune
  timed "$side check" "${c[@]}" check
  echo "$side index after: $(ls "$copy/index" | wc -l) segments"
  rm -rf "$copy" "$copy.cache"
done
