#!/usr/bin/env bash
# smallfiles.sh - cairn and restic on many tiny files, side by side.
#
# usage: benches/smallfiles.sh [FILES] [WORK]
#
#   FILES  how many files of 0-200 random bytes, in directories of 200
#          (default 250000; the issue's case is 1000000)
#   WORK   scratch dir (default /tmp/cairn-smallfiles)
#
# Steps, each under /usr/bin/time: backup1, backup after 1% of the files
# changed, no-change backup, full restore (compared with `diff -r`). Prints
# wall seconds, CPU seconds (user + system: steadier than wall time on a
# busy machine) and peak RSS per step and tool, the repository sizes and the
# bytes of tree metadata each stores (cairn: `stats --json` tree_bytes;
# restic: the stored length of its tree blobs, from its index).
# cairn: $CAIRN_BIN or ./target/release/cairn; both tools use a password.
# CAIRN_BASE=other/cairn runs that binary too, each step right after
# cairn's, into its own repository (before/after comparisons in one run).
set -euo pipefail

FILES=${1:-250000}
WORK=${2:-/tmp/cairn-smallfiles}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CAIRN=${CAIRN_BIN:-$ROOT/target/release/cairn}
[ -x "$CAIRN" ] || { echo "no cairn at $CAIRN" >&2; exit 2; }
command -v restic >/dev/null || { echo "no restic" >&2; exit 2; }

DATA=$WORK/data-$FILES
mkdir -p "$WORK"
if [ ! -d "$DATA" ]; then
  python3 - "$DATA" "$FILES" <<'EOF'
import os, random, sys
root, n = sys.argv[1], int(sys.argv[2])
rng = random.Random(42)
for i in range(n):
    d = os.path.join(root, f"d{i // 200:05d}")
    if i % 200 == 0:
        os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"f{i:07d}"), "wb") as f:
        f.write(rng.randbytes(rng.randrange(0, 201)))
EOF
fi

change() { # rewrite every 100th file
  python3 - "$DATA" "$FILES" "$1" <<'EOF'
import os, random, sys
root, n, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(seed)
for i in range(0, n, 100):
    with open(os.path.join(root, f"d{i // 200:05d}", f"f{i:07d}"), "wb") as f:
        f.write(rng.randbytes(rng.randrange(1, 201)))
EOF
}

export CAIRN_PASSWORD=bench RESTIC_PASSWORD=bench
BASE=${CAIRN_BASE:-}
rm -rf "$WORK/cairn" "$WORK/base" "$WORK/restic" "$WORK/cache-"* "$WORK/out-"*
"$CAIRN" --repo "$WORK/cairn" --cache-dir "$WORK/cache-cairn" init >/dev/null
[ -z "$BASE" ] || "$BASE" --repo "$WORK/base" --cache-dir "$WORK/cache-base" init >/dev/null
restic -r "$WORK/restic" init >/dev/null 2>&1

step() { # NAME CMD...
  local name=$1; shift
  /usr/bin/time -f "%e %M %U %S" -o "$WORK/time" "$@" >/dev/null 2>"$WORK/$name.err" \
    || { echo "$name failed:" >&2; tail -3 "$WORK/$name.err" >&2; exit 1; }
  read -r wall rss user sys <"$WORK/time"
  printf '%-24s %8s s %8.2f cpu-s %8.1f MiB\n' "$name" "$wall" "$(echo "$user + $sys" | bc -l)" \
    "$(echo "$rss / 1024" | bc -l)"
}
cairn() {
  step "cairn-$1" "$CAIRN" --repo "$WORK/cairn" --cache-dir "$WORK/cache-cairn" --quiet "${@:2}"
  [ -n "$BASE" ] || return 0
  local args=("${@:2}")
  step "base-$1" "$BASE" --repo "$WORK/base" --cache-dir "$WORK/cache-base" --quiet \
    "${args[@]//out-cairn/out-base}"
}
restic_() { step "restic-$1" restic -r "$WORK/restic" --cache-dir "$WORK/cache-restic" -q "${@:2}"; }

echo "$FILES files in $DATA"
cairn backup1 backup "$DATA"
restic_ backup1 backup "$DATA"
change 1
cairn backup-1pct backup "$DATA"
restic_ backup-1pct backup "$DATA"
cairn backup-nochange backup "$DATA"
restic_ backup-nochange backup "$DATA"
cairn restore restore latest --target "$WORK/out-cairn"
restic_ restore restore latest --target "$WORK/out-restic"
diff -r "$DATA" "$WORK/out-cairn" >/dev/null && echo "cairn restore: identical"
[ -z "$BASE" ] || { diff -r "$DATA" "$WORK/out-base" >/dev/null && echo "base restore: identical"; }
diff -r "$DATA" "$WORK/out-restic$DATA" >/dev/null && echo "restic restore: identical"
echo "repository: cairn $(du -sb "$WORK/cairn" | cut -f1) B, restic $(du -sb "$WORK/restic" | cut -f1) B"
cairn_trees=$("$CAIRN" --repo "$WORK/cairn" --cache-dir "$WORK/cache-cairn" stats --json |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["tree_bytes"])')
restic_trees=$(for id in $(restic -r "$WORK/restic" --cache-dir "$WORK/cache-restic" list index); do
    restic -r "$WORK/restic" --cache-dir "$WORK/cache-restic" cat index "$id"
  done | python3 -c '
import json, sys
total, dec = 0, json.JSONDecoder()
text, pos = sys.stdin.read(), 0
while pos < len(text):
    while pos < len(text) and text[pos].isspace():
        pos += 1
    if pos == len(text):
        break
    doc, pos = dec.raw_decode(text, pos)
    total += sum(b["length"] for p in doc["packs"] for b in p["blobs"] if b["type"] == "tree")
print(total)')
echo "tree metadata (stored): cairn $cairn_trees B, restic $restic_trees B"
