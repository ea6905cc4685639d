#!/usr/bin/env bash
# Builds cairn's container image from this checkout, with no registry: the
# release binary (debug info stripped) and the shared libraries ldd lists for
# it, FROM scratch (docker/Dockerfile).
#
# Usage: docker/build.sh [TAG]            default tag cairn:latest
#        CAIRN_BIN=path docker/build.sh    use that binary, build nothing
#                                          (the tests use their debug build)
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
tag=${1:-cairn:latest}
export DOCKER_BUILDKIT=0 # the classic builder is all a FROM scratch needs

bin=${CAIRN_BIN:-}
if [ -z "$bin" ]; then
  (cd "$repo" && cargo build --release --locked -p cairn-cli)
  bin=${CARGO_TARGET_DIR:-$repo/target}/release/cairn
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root=$work/context/rootfs
mkdir -p "$root/usr/local/bin" "$root/tmp" "$root/root"
chmod 1777 "$root/tmp"
objcopy --strip-debug "$bin" "$root/usr/local/bin/cairn"
ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' |
  while read -r lib; do
    cp -L --parents "$lib" "$root"
  done
cp "$repo/docker/Dockerfile" "$work/context/"

# Quiet unless it fails: the classic builder warns that it is deprecated.
if ! docker build -t "$tag" "$work/context" >"$work/build.log" 2>&1; then
  cat "$work/build.log" >&2
  exit 1
fi
echo "built $tag: $(docker image inspect -f '{{.Size}}' "$tag" | numfmt --to=iec)B"
