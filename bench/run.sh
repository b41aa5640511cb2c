#!/usr/bin/env bash
# bench/run.sh BUILD_DIR - runs every benchmark in a fixed order and prints
# their reports.  Benchmarks that compare against another implementation
# (pandas) run in the same invocation so ratios come from one run.
# Uses ../shared/data when present (RR_SHARED_DATA overrides).
set -uo pipefail
BUILD=${1:-build}
SRC=$(cd "$(dirname "$0")/.." && pwd)
export RR_BIN="$BUILD/rnnrec" RR_SRC="$SRC"
export RR_SHARED_DATA=${RR_SHARED_DATA:-$SRC/../shared/data}
[ -d "$RR_SHARED_DATA" ] || echo "bench: $RR_SHARED_DATA not found; real-data benchmarks are skipped"
echo "bench: $(date -u +%FT%TZ) on $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
status=0
for b in bench_gemm bench_reader bench_eval bench_loss bench_train bench_serve; do
  if [ -x "$BUILD/$b" ]; then
    echo; echo "=== $b"
    "$BUILD/$b" || { echo "bench: $b failed"; status=1; }
  fi
done
# The HTTP service under wrk (64 connections, 30 s per test: stateless,
# live-session events, stateless with 500 slow connections, then paced
# loads); bench_serve.sh's header lists its knobs (REPEATS, SWEEP, ...).
echo; echo "=== bench_serve.sh"
if command -v wrk >/dev/null && [ -x "$BUILD/rnnrec" ]; then
  bash "$SRC/bench/bench_serve.sh" "$BUILD" || { echo "bench: bench_serve.sh failed"; status=1; }
else
  echo "bench: bench_serve.sh skipped (needs wrk and $BUILD/rnnrec)"
fi
for py in "$SRC"/bench/*.py; do
  [ -f "$py" ] || continue
  echo; echo "=== $(basename "$py")"
  /usr/bin/python3 "$py" || echo "bench: $(basename "$py") failed or skipped (needs python3-pandas)"
done
exit $status
