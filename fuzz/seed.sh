#!/usr/bin/env bash
# Make seed inputs for the fuzz targets from real repository objects: two
# small repositories written by the cairn binary (one uncompressed, so tree
# blobs can be cut out of its packs as they are; one with zstd), with a
# second, incremental snapshot, and a prune that a live backup lock defers,
# so a plan, its wait list and the lock stay behind.
#
# Usage: fuzz/seed.sh            (writes fuzz/seeds/<target>/)
# Uses $CAIRN_BIN, else target/release/cairn, else target/debug/cairn
# (under $CARGO_TARGET_DIR if set); build one with `cargo build -p cairn-cli`.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
targets=${CARGO_TARGET_DIR:-$root/target}
bin=${CAIRN_BIN:-}
if [ -z "$bin" ]; then
    for b in "$targets/release/cairn" "$targets/debug/cairn"; do
        if [ -x "$b" ]; then bin=$b; break; fi
    done
fi
if [ -z "$bin" ] || [ ! -x "$bin" ]; then
    echo "seed.sh: no cairn binary; run: cargo build -p cairn-cli" >&2
    exit 1
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export HOME=$work XDG_CACHE_HOME=$work/cache XDG_DATA_HOME=$work/data
cairn() { "$bin" --quiet --cache-dir "$work/cache" "$@"; }

# A source tree with one of each kind of entry cairn records.
src=$work/src
mkdir -p "$src/dir/sub" "$src/empty"
printf 'hello\n' > "$src/hello.txt"
: > "$src/empty.txt"
head -c 20000 /dev/zero > "$src/zeros"
python3 -c 'import sys; sys.stdout.buffer.write(bytes((i * 7) % 251 for i in range(9000)))' > "$src/dir/pattern"
printf 'nested\n' > "$src/dir/sub/nested"
ln -s hello.txt "$src/link"
ln "$src/hello.txt" "$src/dir/hardlink"
mkfifo "$src/fifo"
chmod 4755 "$src/dir/sub/nested"
setfattr -n user.note -v seed "$src/hello.txt" 2>/dev/null || true
touch -d '2001-02-03 04:05:06.789' "$src/hello.txt"

raw=$work/raw
zst=$work/zstd
cairn --repo "$raw" init --compression none --chunk-min 256 --chunk-avg 1K --chunk-max 4K --pack-size 16K
cairn --repo "$zst" init
cairn --repo "$raw" backup --host seedhost --tag seed "$src"
cairn --repo "$zst" backup "$src" "$src/hello.txt"
printf 'changed\n' >> "$src/dir/pattern"
cairn --repo "$raw" backup --host seedhost "$src"

# A backup lock that is alive now, so the prune below leaves its plan and
# the plan's wait list in place instead of carrying it out.
run=0123456789abcdef
mkdir -p "$raw/locks"
printf '{"run":"%s","host":"seedhost","pid":1,"time":"%s"}' \
    "$run" "$(date -u +%Y-%m-%dT%H:%M:%S.000Z)" > "$raw/locks/$run-00000000"
first=$(cairn --repo "$raw" --json snapshots | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
cairn --repo "$raw" forget "$first"
cairn --repo "$raw" prune --max-unused 0

out=$here/seeds
rm -rf "$out"
mkdir -p "$out"/{tree,pack_trailer,segment,snapshot,config,plan}
n=0
put() { # put TARGET FILE: copy FILE in as the next seed of TARGET
    n=$((n + 1))
    cp "$2" "$out/$1/$(printf '%03d' $n)-$(basename "$2" | cut -c1-16)"
}
for repo in "$raw" "$zst"; do
    put config "$repo/config"
    for f in "$repo"/snapshots/*; do put snapshot "$f"; done
    for f in "$repo"/index/*; do put segment "$f"; done
    for f in "$repo"/packs/*/*; do put pack_trailer "$f"; done
done
for f in "$raw"/plans/* "$raw"/locks/*; do put plan "$f"; done

# The pack target also reads its input as [entry count][data][entries]
# (the footer made to match), and the tree target wants bare tree blobs:
# both cut from the uncompressed repository's packs.
python3 - "$raw" "$out" <<'EOF'
import glob, os, struct, sys
repo, out = sys.argv[1], sys.argv[2]
for i, path in enumerate(sorted(glob.glob(os.path.join(repo, "packs", "*", "*")))):
    data = open(path, "rb").read()
    count = struct.unpack("<I", data[-8 - 4:-8])[0]
    table = data[len(data) - 28 - 52 * count:len(data) - 28]
    with open(os.path.join(out, "pack_trailer", "built-%03d" % i), "wb") as f:
        f.write(bytes([count % 8]) + data[:-28])
    for j in range(count):
        e = table[52 * j:52 * (j + 1)]
        kind, flags = e[32], e[33]
        stored, _raw, offset = struct.unpack("<IIQ", e[36:52])
        if kind == 1 and flags & 1 == 0:
            with open(os.path.join(out, "tree", "%03d-%02d" % (i, j)), "wb") as f:
                f.write(data[offset:offset + stored])
EOF
for t in "$out"/*; do
    echo "$(basename "$t"): $(ls "$t" | wc -l) seeds, $(du -sk "$t" | cut -f1) KiB"
done
