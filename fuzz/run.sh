#!/usr/bin/env bash
# Build the fuzz targets and run each for SECONDS, one after another, one
# in-process libFuzzer worker at a time.
#
# Usage: fuzz/run.sh [SECONDS] [TARGET...]     (default: 60 s, every target)
#
# Corpus: fuzz/corpus/<target> (new inputs go there), read together with the
# committed seeds in fuzz/seeds/<target>. A crash leaves its input in
# fuzz/artifacts/<target>/ and makes the script exit 1 once every target has
# run. The full libFuzzer output of each target is in fuzz/logs/<target>.log.
# Runs on the stable toolchain: see fuzz/README.md for why these flags.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cd "$here"

secs=${1:-60}
shift || true
case $secs in
    '' | *[!0-9]*) echo "usage: fuzz/run.sh [SECONDS] [TARGET...]" >&2; exit 2 ;;
esac

# cargo-fuzz passes -Cpasses=sancov-module, -Zsanitizer and friends; on a
# stable toolchain only -Zsanitizer is refused, and `--sanitizer none` drops
# it. RUSTC_BOOTSTRAP is not needed (see README.md).
fuzz=(cargo fuzz)
build_flags=(--sanitizer none)

if [ $# -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <("${fuzz[@]}" list)
fi

start=$(date +%s)
"${fuzz[@]}" build "${build_flags[@]}" || exit 1
echo "build: $(($(date +%s) - start)) s"

mkdir -p logs
failed=()
summary=()
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "artifacts/$t"
    corpora=("corpus/$t")
    if [ -d "seeds/$t" ]; then corpora+=("seeds/$t"); fi
    echo "== $t: ${secs} s"
    # -timeout: an input that takes this long is a hang, reported as a crash.
    # No -jobs/-workers: those would only move the same single worker into
    # a child process writing to fuzz-0.log.
    "${fuzz[@]}" run "${build_flags[@]}" "$t" "${corpora[@]}" -- \
        -max_total_time="$secs" -timeout=60 -rss_limit_mb=2048 \
        -print_final_stats=1 >"logs/$t.log" 2>&1
    rc=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "logs/$t.log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "logs/$t.log" | tail -1)
    if [ -z "$runs" ]; then
        # Final stats are not printed after a crash: take the last status line.
        line=$(grep -E '^#[0-9]+' "logs/$t.log" | tail -1)
        runs=$(sed -E 's/^#([0-9]+).*/\1/' <<<"$line")
        rate=$(sed -nE 's/.*exec\/s: ([0-9]+).*/\1/p' <<<"$line")
    fi
    status=ok
    if [ $rc -ne 0 ]; then
        status="CRASH (exit $rc): $(ls -t "artifacts/$t" 2>/dev/null | head -1 | sed "s|^|fuzz/artifacts/$t/|")"
        failed+=("$t")
        grep -m3 -E "panicked at|ERROR: libFuzzer|SUMMARY" "logs/$t.log" | sed 's/^/    /'
    fi
    summary+=("$(printf '%-16s %12s execs %8s exec/s  %s' "$t" "${runs:-?}" "${rate:-?}" "$status")")
    echo "${summary[-1]}"
done

echo
echo "== summary (${secs} s per target, $(($(date +%s) - start)) s in all)"
printf '%s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
    echo "crashed: ${failed[*]}" >&2
    exit 1
fi
