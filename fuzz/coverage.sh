#!/usr/bin/env bash
# fuzz/coverage.sh NAME [CORPUS_DIR] - line and branch coverage of the
# library reached by one harness's corpus.
#
# Builds fuzz_NAME without sanitizers and with clang's source-based coverage
# (-fprofile-instr-generate -fcoverage-mapping) into $OUT (default
# build-fuzz/cov), runs every input of CORPUS_DIR once (default: the long
# runs' working corpus build-fuzz/libfuzzer/work/NAME, else the committed
# seeds), and prints `llvm-cov report` for the files the harness is about
# (FILES to override, a regex on the path).  $OUT/NAME.profdata is kept for
# `llvm-cov show`.
set -euo pipefail
name=${1:?usage: fuzz/coverage.sh NAME [CORPUS_DIR]}
root=$(cd "$(dirname "$0")/.." && pwd)
out=${OUT:-$root/build-fuzz/cov}
corpus=${2:-$root/build-fuzz/libfuzzer/work/$name}
[ -d "$corpus" ] || corpus=$root/fuzz/corpus/$name
corpus=$(cd "$corpus" && pwd)
case $name in
  reader) files=${FILES:-src/data/(reader|vocab|dataset|writer)} ;;
  model)  files=${FILES:-src/(io/|models/)} ;;
  http)   files=${FILES:-src/serve/} ;;
  *) echo "coverage.sh: unknown harness '$name' (reader, model, http)" >&2; exit 2 ;;
esac
cov_bin() { command -v "$1-14" 2>/dev/null || command -v "$1"; }
profdata=$(cov_bin llvm-profdata) llvmcov=$(cov_bin llvm-cov)
nice -n 19 make -s -C "$root/fuzz" OUT="$out" -j "${FUZZ_JOBS:-2}" \
    SAN="-fprofile-instr-generate -fcoverage-mapping" "$out/fuzz_$name"
rm -f "$out/$name".*.profraw
# -runs=0: execute the corpus once, no mutation
(cd "$out" && OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 LLVM_PROFILE_FILE="$out/$name.%p.profraw" \
    nice -n 19 "$out/fuzz_$name" -runs=0 "$corpus" >"$out/$name.run.log" 2>&1)
"$profdata" merge -sparse "$out/$name".*.profraw -o "$out/$name.profdata"
rm -f "$out/$name".*.profraw
echo "coverage.sh: $name, $(find "$corpus" -type f | wc -l) inputs from $corpus"
"$llvmcov" report "$out/fuzz_$name" -instr-profile="$out/$name.profdata" \
    $(find "$root/src" -name '*.c' | grep -E "$files" | sort)
