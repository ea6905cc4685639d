#!/usr/bin/env bash
# Builds the images that cairn's Docker tests run, from this host's Debian
# packages: no registry is needed (or reachable). Both are FROM scratch with a
# root filesystem staged here.
#
#   cairn-test-busybox   static busybox; idles (`sleep 3600`), stops at once
#   cairn-test-postgres  PostgreSQL 15 server, psql and pgbench: initdb into
#                        /var/lib/postgresql/data on first start, port 5432,
#                        every connection trusted (tests only)
#
# Idempotent and fast when nothing changed: each image carries a hash of its
# inputs (this script, its directory, the PostgreSQL package version) and is
# rebuilt only when that differs. Installs busybox-static and postgresql with
# apt-get if they are missing. Usage: build-images.sh [busybox] [postgres]
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
pg_version=15
pg_bin=/usr/lib/postgresql/$pg_version/bin
pg_lib=/usr/lib/postgresql/$pg_version/lib
inputs_label=org.cairn.test-inputs
export DOCKER_BUILDKIT=0 # the classic builder is all a FROM scratch needs

log() { echo "build-images: $*" >&2; }

# busybox-static and postgresql-15, unless already there. A dynamic busybox
# would not run in an image without its libraries, hence the ldd check.
ensure_packages() {
  local need=()
  if [ ! -x /bin/busybox ] || ldd /bin/busybox >/dev/null 2>&1; then
    need+=(busybox-static)
  fi
  [ -x "$pg_bin/postgres" ] || need+=(postgresql)
  [ ${#need[@]} -eq 0 ] && return
  log "installing ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
}

inputs_hash() {
  local name=$1
  {
    cat "$0"
    # Relative paths: the same inputs hash alike in every checkout.
    (cd "$here" && find "$name" -type f -print0 | sort -z | xargs -0 sha256sum)
    [ "$name" = postgres ] && dpkg-query -W -f '${Version}\n' "postgresql-$pg_version"
    sha256sum /bin/busybox
  } | sha256sum | cut -d' ' -f1
}

up_to_date() {
  local image=$1 hash=$2
  [ "$(docker image inspect -f "{{index .Config.Labels \"$inputs_label\"}}" "$image" 2>/dev/null)" = "$hash" ]
}

# Copies each file to the same path under $root, then every shared library
# (and the loader) that ldd says it needs.
copy_with_libs() {
  local root=$1
  shift
  local f
  for f in "$@"; do
    cp -L --parents "$f" "$root"
  done
  for f in "$@"; do
    ldd "$f" 2>/dev/null || true
  done | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' | sort -u |
    while read -r lib; do
      [ -e "$root$lib" ] || cp -L --parents "$lib" "$root"
    done
}

# Copies directory trees to the same paths under $root. (Not `cp -a
# --parents`: coreutils 9.1 fails on it when setting the parents' ACLs.)
copy_trees() {
  local root=$1 dir
  shift
  for dir in "$@"; do
    mkdir -p "$root$(dirname "$dir")"
    cp -a "$dir" "$root$(dirname "$dir")/"
  done
}

stage_busybox() {
  local root=$1 applet
  mkdir -p "$root/bin" "$root/tmp"
  chmod 1777 "$root/tmp"
  cp /bin/busybox "$root/bin/busybox"
  for applet in $(/bin/busybox --list); do
    [ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
  done
}

stage_postgres() {
  local root=$1
  stage_busybox "$root"
  # llvmjit pulls in all of LLVM; without it the server just runs without JIT.
  local libs
  libs=$(find "$pg_lib" -maxdepth 1 -name '*.so' ! -name 'llvmjit*')
  copy_with_libs "$root" "$pg_bin"/* $libs
  copy_trees "$root" /usr/share/postgresql/$pg_version /usr/share/zoneinfo
  mkdir -p "$root/etc" "$root/var/lib/postgresql/data" "$root/var/run/postgresql" "$root/usr/local/bin"
  printf 'root:x:0:0:root:/root:/bin/sh\npostgres:x:999:999:PostgreSQL:/var/lib/postgresql:/bin/sh\n' >"$root/etc/passwd"
  printf 'root:x:0:\npostgres:x:999:\n' >"$root/etc/group"
  cp "$here/postgres/docker-entrypoint.sh" "$root/usr/local/bin/"
}

build() {
  local name=$1 image=cairn-test-$1 hash work started old
  hash=$(inputs_hash "$name")
  if up_to_date "$image" "$hash"; then
    log "$image is up to date"
    return
  fi
  started=$EPOCHREALTIME
  old=$(docker image inspect -f '{{.Id}}' "$image" 2>/dev/null || true)
  work=$(mktemp -d)
  "stage_$name" "$work/context/rootfs"
  cp "$here/$name/Dockerfile" "$work/context/"
  # Quiet unless it fails: the classic builder warns that it is deprecated.
  if ! docker build --label "$inputs_label=$hash" -t "$image" "$work/context" >"$work/build.log" 2>&1; then
    cat "$work/build.log" >&2
    rm -rf "$work"
    return 1
  fi
  rm -rf "$work"
  # The replaced image would linger untagged; one still used by a container stays.
  [ -z "$old" ] || docker rmi "$old" >/dev/null 2>&1 || true
  log "$image built in $(awk "BEGIN { printf \"%.1f\", $EPOCHREALTIME - $started }") s, $(docker image inspect -f '{{.Size}}' "$image" | numfmt --to=iec)B"
}

main() {
  local names=("$@")
  [ ${#names[@]} -gt 0 ] || names=(busybox postgres)
  ensure_packages
  for name in "${names[@]}"; do
    case $name in
      busybox | postgres) build "$name" ;;
      *) log "unknown image $name (busybox, postgres)"; exit 2 ;;
    esac
  done
}

main "$@"
