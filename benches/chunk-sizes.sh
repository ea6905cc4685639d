#!/usr/bin/env bash
# chunk-sizes.sh - repository size and one day's growth against the average chunk size.
#
# usage: benches/chunk-sizes.sh [SCALE] [WORK]
#
# For each average chunk size (min = avg/4, max = 4*avg): a fresh repository,
# a backup of the bench volume (benches/side-by-side/gen.py, default scale
# 0.25), one day of its changes, a second backup; prints the repository size
# after each, the index segments' bytes, and the tree bytes and chunk count
# of `stats --json`.
# cairn: $CAIRN_BIN or ./target/release/cairn; plaintext repositories, since
# only sizes are compared.
set -euo pipefail

SCALE=${1:-0.25}
WORK=${2:-/tmp/cairn-chunk-sizes}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CAIRN=${CAIRN_BIN:-$ROOT/target/release/cairn}
GEN=$ROOT/benches/side-by-side/gen.py
mkdir -p "$WORK"
[ -d "$WORK/base" ] || python3 "$GEN" volume "$WORK/base" --scale "$SCALE"

printf '%-6s %14s %14s %12s %12s %10s\n' avg repo1_bytes growth_bytes index_bytes tree_bytes chunks
for avg in 16K 32K 64K 128K 256K 1M; do
  rm -rf "$WORK/vol" "$WORK/repo" "$WORK/cache"
  cp -a "$WORK/base" "$WORK/vol"
  c() { "$CAIRN" --repo "$WORK/repo" --cache-dir "$WORK/cache" --quiet "$@"; }
  c init --insecure-no-encryption --chunk-avg "$avg" >/dev/null
  c backup "$WORK/vol" >/dev/null
  repo1=$(du -sb "$WORK/repo" | cut -f1)
  python3 "$GEN" mutate "$WORK/vol" --scale "$SCALE"
  c backup "$WORK/vol" >/dev/null
  repo2=$(du -sb "$WORK/repo" | cut -f1)
  index=$(du -sb "$WORK/repo/index" | cut -f1)
  read -r chunks trees < <(c --json stats | python3 -c 'import json, sys
d = json.loads(sys.stdin.read().splitlines()[-1])
print(d["chunk_count"], d["tree_bytes"])')
  printf '%-6s %14s %14s %12s %12s %10s\n' "$avg" "$repo1" "$((repo2 - repo1))" "$index" "$trees" "$chunks"
done
