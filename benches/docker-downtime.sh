#!/usr/bin/env bash
# Downtime of `cairn backup --docker-volume V --stop` (live pass, then the
# containers stopped only for an incremental pass) against stopping them for
# a full copy (what docker-volume-backup does), on a volume of SIZE_MIB MiB
# of which CHANGE_PCT percent changes between backups.
#
#   benches/docker-downtime.sh [SIZE_MIB] [CHANGE_PCT]
#
# Needs a Docker engine and the cairn-test-busybox image
# (tests/docker/build-images.sh busybox). CAIRN defaults to target/release/cairn.
# Removes every volume, container and repository it makes.
set -euo pipefail

size=${1:-1024}
pct=${2:-1}
cairn=${CAIRN:-$(cd "$(dirname "$0")/.." && pwd)/target/release/cairn}
tag=cairn-bench-$$
vol=$tag-data
work=$(mktemp -d)
cleanup() {
  docker rm -f "$tag-db" >/dev/null 2>&1 || true
  docker volume rm -f "$vol" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

files=$((size / 8))   # 8 MiB files, as a database's segment files
docker volume create "$vol" >/dev/null
docker run --rm -v "$vol:/v" cairn-test-busybox sh -c \
  "i=0; while [ \$i -lt $files ]; do dd if=/dev/urandom of=/v/seg.\$i bs=1M count=8 2>/dev/null; i=\$((i+1)); done"
docker run -d --name "$tag-db" --stop-timeout=1 -v "$vol:/v" cairn-test-busybox >/dev/null

change() {
  # Rewrite pct% of the files in place.
  local n=$(( (files * pct + 99) / 100 ))
  docker exec "$tag-db" sh -c \
    "i=0; while [ \$i -lt $n ]; do dd if=/dev/urandom of=/v/seg.\$i bs=1M count=1 conv=notrunc 2>/dev/null; i=\$((i+1)); done"
}

export CAIRN_REPO=$work/repo CAIRN_CACHE_DIR=$work/cache
"$cairn" init --insecure-no-encryption >/dev/null
"$cairn" --json backup --docker-volume "$vol" >/dev/null   # the previous night's backup
change
stop_json=$("$cairn" --json backup --docker-volume "$vol" --stop | tail -1)
downtime=$(echo "$stop_json" | python3 -c 'import json,sys; print("%.2f" % json.load(sys.stdin)["downtime_s"])')

# The full stopped copy: containers down for a backup into an empty repository.
change
rm -rf "$work/repo2"
start=$(date +%s.%N)
docker stop -t 1 "$tag-db" >/dev/null
CAIRN_REPO=$work/repo2 "$cairn" init --insecure-no-encryption >/dev/null
CAIRN_REPO=$work/repo2 "$cairn" backup --docker-volume "$vol" >/dev/null
docker start "$tag-db" >/dev/null
end=$(date +%s.%N)
full=$(python3 -c "print('%.2f' % ($end - $start))")

echo "volume ${size} MiB, ${pct}% changed: --stop downtime ${downtime} s, full stopped backup ${full} s, ratio $(python3 -c "print('%.1f' % ($full / $downtime))")x"
