#!/usr/bin/env bash
# fuzz/run.sh NAME SECONDS [extra libFuzzer flags...]
#
# Builds fuzz_NAME (fuzz/Makefile, clang + libFuzzer + ASan/UBSan) and runs it
# for SECONDS at low priority on one core.  The committed seeds in
# fuzz/corpus/NAME are copied into a working corpus under $OUT (so new
# inputs never land in the source tree); crashes, leaks and timeouts are
# written to $OUT/artifacts/NAME/.  NAME: reader, model or http.
# Environment: OUT (default build-fuzz/libfuzzer), FUZZ_JOBS (make -j, 2).
set -euo pipefail
name=${1:?usage: fuzz/run.sh NAME SECONDS [libFuzzer flags]}
secs=${2:-60}
shift 2 || shift $#
root=$(cd "$(dirname "$0")/.." && pwd)
out=${OUT:-$root/build-fuzz/libfuzzer}
case $name in
  reader) max_len=65536 ;;   # long enough for a gzip member and long lines
  model)  max_len=16384 ;;   # the seed models are 1-3 KB
  http)   max_len=8192 ;;
  *) echo "run.sh: unknown harness '$name' (reader, model, http)" >&2; exit 2 ;;
esac
nice -n 19 make -s -C "$root/fuzz" OUT="$out" -j "${FUZZ_JOBS:-2}" "$out/fuzz_$name"
work=$out/work/$name art=$out/artifacts/$name
mkdir -p "$work" "$art"
cp -n "$root/fuzz/corpus/$name"/* "$work"/ 2>/dev/null || true
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
cd "$out"
exec nice -n 19 "$out/fuzz_$name" "$work" -max_total_time="$secs" -max_len="$max_len" \
    -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=512 -print_final_stats=1 \
    -artifact_prefix="$art/" "$@"
