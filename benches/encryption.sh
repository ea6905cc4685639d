#!/usr/bin/env bash
# encryption.sh - what encryption costs cairn: plaintext, key file (with
# each cipher) and password repositories backed up and restored from the
# same tree, runs interleaved so the machine's load falls on all alike.
#
# usage: benches/encryption.sh DATA [RUNS] [WORK]
#
#   DATA  the tree to back up (e.g. the bench volume)
#   RUNS  rounds (default 3); each round runs every mode once, in turn
#   WORK  scratch dir (default /tmp/cairn-encryption)
#
# Modes: plaintext; aes and xchacha (key file, `init --encryption
# aes-256-gcm` / `xchacha20-poly1305`); password (the default cipher).
# With CAIRN_BASE_BIN set (an older build), also base-plaintext and
# base-keyfile (its default cipher), in the same rounds: before and after.
#
# Per mode and step it prints the median wall seconds, CPU seconds
# (user + sys, which the other load on a shared machine disturbs less than
# wall time) and peak RSS. Every restore is compared with DATA by
# `diff -r --no-dereference`.
# cairn: $CAIRN_BIN or ./target/release/cairn.
set -euo pipefail

DATA=${1:?usage: encryption.sh DATA [RUNS] [WORK]}
RUNS=${2:-3}
WORK=${3:-/tmp/cairn-encryption}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CAIRN=${CAIRN_BIN:-$ROOT/target/release/cairn}
[ -x "$CAIRN" ] || { echo "no cairn at $CAIRN" >&2; exit 2; }
[ -d "$DATA" ] || { echo "no directory $DATA" >&2; exit 2; }

rm -rf "$WORK"
mkdir -p "$WORK"
printf 'cairn-key-1:%s\n' "$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" > "$WORK/key"
chmod 600 "$WORK/key"
RESULTS=$WORK/results.csv
echo "mode,run,step,wall_s,cpu_s,rss_kib,user_s" > "$RESULTS"

. "$(dirname "$0")/timed.sh"

# run_mode MODE RUN: a fresh repository of MODE, backup1 and a verified restore
run_mode() {
  local mode=$1 run=$2 repo=$WORK/repo-$1 target=$WORK/restore-$1 bin=$CAIRN
  rm -rf "$repo" "$target"
  local env=(env -u CAIRN_PASSWORD -u CAIRN_KEY_FILE)
  case $mode in base-*) bin=$CAIRN_BASE_BIN ;; esac
  case $mode in
    plaintext|base-plaintext) "${env[@]}" "$bin" init --repo "$repo" --insecure-no-encryption > /dev/null ;;
    base-keyfile) "${env[@]}" "$bin" init --repo "$repo" --key-file "$WORK/key" > /dev/null ;;
    aes) "${env[@]}" "$bin" init --repo "$repo" --key-file "$WORK/key" --encryption aes-256-gcm > /dev/null ;;
    xchacha) "${env[@]}" "$bin" init --repo "$repo" --key-file "$WORK/key" --encryption xchacha20-poly1305 > /dev/null ;;
    password) "${env[@]}" CAIRN_PASSWORD=bench "$bin" init --repo "$repo" > /dev/null ;;
  esac
  local auth=()
  case $mode in
    aes|xchacha|base-keyfile) auth=(--key-file "$WORK/key") ;;
    password) env+=(CAIRN_PASSWORD=bench) ;;
  esac
  timed "$mode" "$run" backup1 "${env[@]}" "$bin" backup "$DATA" --repo "$repo" "${auth[@]}"
  timed "$mode" "$run" restore "${env[@]}" "$bin" restore latest --target "$target" --repo "$repo" "${auth[@]}"
  diff -r --no-dereference "$DATA" "$target" > /dev/null || { echo "$mode: restore differs from $DATA" >&2; exit 1; }
  rm -rf "$target"
}

MODES="plaintext aes xchacha password"
if [ -n "${CAIRN_BASE_BIN:-}" ]; then
  [ -x "$CAIRN_BASE_BIN" ] || { echo "no cairn at $CAIRN_BASE_BIN" >&2; exit 2; }
  MODES="base-plaintext base-keyfile $MODES"
fi
for run in $(seq 1 "$RUNS"); do
  for mode in $MODES; do
    echo "==> run $run: $mode" >&2
    run_mode "$mode" "$run"
  done
done

python3 - "$RESULTS" "$MODES" <<'EOF'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))
modes = sys.argv[2].split()
def med(mode, step, col):
    return statistics.median(float(r[col]) for r in rows if r["mode"] == mode and r["step"] == step)
print(f"{'step':8} {'mode':14} {'wall s':>7} {'cpu s':>7} {'user s':>7} {'RSS MiB':>8}   vs plaintext (wall, cpu, user, RSS)")
for step in ("backup1", "restore"):
    cols = ("wall_s", "cpu_s", "user_s", "rss_kib")
    base = [med("plaintext", step, c) for c in cols]
    for mode in modes:
        v = [med(mode, step, c) for c in cols]
        ratio = " ".join(f"{a / b:5.2f}x" for a, b in zip(v, base))
        print(f"{step:8} {mode:14} {v[0]:7.2f} {v[1]:7.2f} {v[2]:7.2f} {v[3] / 1024:8.1f}   {ratio}")
EOF
