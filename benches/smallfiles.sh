#!/usr/bin/env bash
# smallfiles.sh - cairn and restic on many tiny files, side by side.
#
# usage: benches/smallfiles.sh [FILES] [WORK] [bench.py options...]
#
#   FILES  how many files of 0-200 random bytes, in directories of 200
#          (default 250000; the issue's case is 1000000)
#   WORK   scratch dir (default /tmp/cairn-smallfiles)
#
# The smallfiles case of benches/side-by-side/bench.py (see its README):
# backup1, backup after every 100th file was rewritten, no-change backup,
# full restore (verified against the source), restore of one file, each
# under /usr/bin/time -v; the table with ratios, WORK/results.json and
# WORK/results.svg. cairn: $CAIRN_BIN or ./target/release/cairn. Add
# `--tools "cairn restic borg"` or `--runs 3` after WORK.
set -euo pipefail

FILES=${1:-250000}
WORK=${2:-/tmp/cairn-smallfiles}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
exec python3 "$ROOT/benches/side-by-side/bench.py" --dataset smallfiles --files "$FILES" \
  --tools "cairn restic" --work "$WORK" "${@:3}"
