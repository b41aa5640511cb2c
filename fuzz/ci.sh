#!/usr/bin/env bash
# fuzz/ci.sh [SECONDS] - the CI fuzzing step (`make fuzz-ci`): runs each
# harness (reader, model, http) for SECONDS (default 60) from the committed
# seeds only, one after the other, through fuzz/run.sh.
#
# Fails when a harness exits non-zero (crash, leak, timeout, OOM, oracle
# assertion) or leaves any file in its artifacts folder, and then prints the
# end of that harness's log (the report and the reproducer's path).  For each
# harness it prints one summary line from -print_final_stats: executions,
# exec/s, coverage, features, corpus, peak RSS.
#
# Environment: OUT (default build-fuzz/ci; separate from the long runs'
# build-fuzz/libfuzzer so that their corpora and findings do not leak in).
set -uo pipefail
secs=${1:-60}
root=$(cd "$(dirname "$0")/.." && pwd)
export OUT=${OUT:-$root/build-fuzz/ci}
mkdir -p "$OUT/logs"
status=0
for h in reader model http; do
    # a fresh corpus and artifact folder: CI measures the committed seeds
    rm -rf "$OUT/work/$h" "$OUT/artifacts/$h"
    log=$OUT/logs/$h.log
    t0=$(date +%s)
    bash "$root/fuzz/run.sh" "$h" "$secs" >"$log" 2>&1
    rc=$?
    t1=$(date +%s)
    found=$(find "$OUT/artifacts/$h" -type f 2>/dev/null | wc -l)
    fstat() { sed -n "s/^stat::$1: *//p" "$log" | tail -1; }
    last=$(grep -E '^#[0-9]+' "$log" | tail -1)
    cov=$(sed -n 's/.* cov: \([0-9]*\) ft: \([0-9]*\) corp: \([0-9]*\/[0-9]*[a-zA-Z]*\).*/cov \1, ft \2, corpus \3/p' <<<"$last")
    printf 'fuzz-ci %-6s rc=%d %ds: %s runs, %s exec/s, %s, peak rss %s MB, artifacts %d\n' \
        "$h" "$rc" $((t1 - t0)) "$(fstat number_of_executed_units)" "$(fstat average_exec_per_sec)" \
        "${cov:-no coverage line}" "$(fstat peak_rss_mb)" "$found"
    if [ "$rc" -ne 0 ] || [ "$found" -ne 0 ]; then
        echo "fuzz-ci: $h FAILED; end of $log:" >&2
        tail -n 60 "$log" >&2
        find "$OUT/artifacts/$h" -type f -exec echo "artifact: {}" \; >&2
        status=1
    fi
done
[ "$status" -eq 0 ] && echo "fuzz-ci: all harnesses clean for $secs s each"
exit "$status"
