#!/usr/bin/env bash
# bigrepo.sh - cairn against a synthetic repository far larger than memory.
#
# usage: benches/bigrepo.sh CHUNKS VOLUME [WORK]
#
#   CHUNKS  distinct chunks in the synthetic repository (10,000 snapshots;
#           the issue's case is 20000000)
#   VOLUME  a directory to back up into it (the bench's scale-1 volume)
#   WORK    scratch dir (default /tmp/cairn-bigrepo)
#
# Makes a plaintext repository with benches/bigrepo.rs (kept in
# WORK/repo-CHUNKS for later runs; delete it when done), then runs, each
# under /usr/bin/time: the first command on a new host (fresh cache dir),
# `snapshots`, `ls latest`, `restore latest:ONE/FILE`, a backup of VOLUME
# into an empty repository and into the big one, `check`, a prune with
# nothing to free, and `forget --keep-last 5000` then prune. Prints wall
# seconds and peak RSS per step and the cache's bytes per chunk.
# cairn: $CAIRN_BIN or ./target/release/cairn. STEP_TIMEOUT (s, default
# 3600) stops a step that takes longer; SKIP_PRUNE=1 leaves out the prunes
# (and the forget), so the repository stays as generated.
set -euo pipefail

CHUNKS=${1:?chunks}
VOLUME=${2:?volume}
WORK=${3:-/tmp/cairn-bigrepo}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CAIRN=${CAIRN_BIN:-$ROOT/target/release/cairn}
LIMIT=${STEP_TIMEOUT:-3600}
[ -x "$CAIRN" ] || { echo "no cairn at $CAIRN" >&2; exit 2; }

REPO=$WORK/repo-$CHUNKS
CACHE=$WORK/cache-$CHUNKS
mkdir -p "$WORK"

step() { # NAME CMD...
  local name=$1; shift
  if ! /usr/bin/time -f "%e %M" -o "$WORK/time" timeout "$LIMIT" "$@" \
      >"$WORK/$name.out" 2>"$WORK/$name.err"; then
    printf '%-22s failed or timed out (%s s): %s\n' "$name" "$LIMIT" \
      "$(tail -1 "$WORK/$name.err")"
    return 0
  fi
  read -r wall rss <"$WORK/time"
  printf '%-22s %9s s %8.1f MiB\n' "$name" "$wall" "$(echo "$rss / 1024" | bc -l)"
}

if [ ! -f "$REPO/config" ]; then
  (cd "$ROOT" && cargo bench --bench bigrepo --no-run 2>/dev/null)
  GEN=$(ls -t "$ROOT"/target/release/deps/bigrepo-* | grep -v '\.d$' | head -1)
  "$CAIRN" --repo "$REPO" init --insecure-no-encryption >/dev/null
  step generate "$GEN" --repo "$REPO" --chunks "$CHUNKS" --snapshots 10000
fi
echo "repository $CHUNKS chunks: $(du -sh "$REPO" | cut -f1) ($(ls "$REPO/index" | wc -l) segments)"

c=("$CAIRN" --repo "$REPO" --cache-dir "$CACHE")
rm -rf "$CACHE" "$WORK/empty" "$WORK/cache-empty" "$WORK/out"
step first-open "${c[@]}" snapshots
cache_bytes=$(du -cb "$CACHE"/cairn/*/index.sqlite* | tail -1 | cut -f1)
printf '%-22s %9s B %8.1f B/chunk\n' cache "$cache_bytes" "$(echo "$cache_bytes / $CHUNKS" | bc -l)"
step snapshots "${c[@]}" snapshots
step ls-latest "${c[@]}" ls latest
LAST=$(grep -o 'd[0-9]\{6\}/f00000' "$WORK/ls-latest.out" | tail -1 || true)
step restore-one-file "${c[@]}" restore "latest:$LAST" --target "$WORK/out"
"$CAIRN" --repo "$WORK/empty" init --insecure-no-encryption >/dev/null
step backup-empty "$CAIRN" --repo "$WORK/empty" --cache-dir "$WORK/cache-empty" \
  backup --host bench "$VOLUME"
step backup-big "${c[@]}" backup --host bench "$VOLUME"
step check "${c[@]}" check
if [ -z "${SKIP_PRUNE:-}" ]; then
  step prune-nothing "${c[@]}" prune
  "${c[@]}" forget --keep-last 5000 >/dev/null
  step prune-half "${c[@]}" prune
fi
rm -rf "$WORK/empty" "$WORK/cache-empty" "$WORK/out"
