#!/usr/bin/env bash
# cli_valgrind.sh - the end-to-end path through the binary ($RR_BIN) under
# valgrind memcheck: synth -> prep -> train (GRU, 2 epochs, 1 and 2 threads;
# LSTM; the baselines) -> eval -> recommend -> info, and the error paths of
# a truncated model and a malformed event log.  Every run must exit as
# expected with no memcheck error (invalid read/write, use of uninitialised
# values, invalid free) and no definitely lost block.
#
# Skipped (counted as passed) when valgrind is not installed or when the
# binary is built with a sanitizer (ASan's shadow memory and valgrind do not
# mix; `make test-asan` runs this file against that build).  No suppressions
# are needed: OpenBLAS and libgomp run clean with one BLAS thread.
set -u
. "$(dirname "$0")/harness.sh" cli_valgrind

if ! command -v valgrind >/dev/null 2>&1; then
    echo "SKIP: valgrind is not installed (scripts/install-deps installs it)"
    exit 0
fi
if grep -qa __asan_init "$BIN" || ldd "$BIN" 2>/dev/null | grep -q 'lib[at]san'; then
    echo "SKIP: $BIN is a sanitizer build; valgrind runs on the plain build"
    exit 0
fi
# OpenBLAS's own threads would only make memcheck slower; the training
# threads are rnnrec's (OpenMP), set by --threads.
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1

n_vg=0
vg() { # vg WANT_RC DESCRIPTION ARGS...: rnnrec ARGS under memcheck
    local want=$1 what=$2
    shift 2
    n_vg=$((n_vg + 1))
    local log=$T/vg.$n_vg.log
    valgrind --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
        --log-file="$log" "$BIN" "$@" >"$T/out" 2>"$T/err"
    local rc=$?
    if [ "$rc" -eq "$want" ]; then ok; else
        bad "$what: exit $rc, wanted $want: $(head -c 300 "$T/err")"
        grep -A12 -E 'Invalid|uninitialised|definitely lost in' "$log" | head -60 >&2
    fi
    # the summary proves memcheck ran to the end (rc alone would also pass
    # if valgrind were a stub)
    if grep -q "ERROR SUMMARY: 0 errors from 0 contexts" "$log"; then ok; else
        bad "$what: memcheck: $(grep 'ERROR SUMMARY' "$log" || echo 'no summary')"
    fi
}

t0=$(date +%s)
vg 0 "synth" synth -q -n 3000 --items 200 --days 5 --seed 2 -o "$T/syn.tsv"
vg 0 "prep" prep -q "$T/syn.tsv" -o "$T/prep" --min-item-support 2 --valid-days 1
[ -s "$T/prep/train.tsv" ] && [ -s "$T/prep/test.tsv" ] && [ -s "$T/prep/valid.tsv" ] && ok ||
    bad "prep wrote no train/test/valid"
tr=$T/prep/train.tsv te=$T/prep/test.tsv

rnn="--layers 16 --batch-size 16 --n-sample 64 --epochs 2"
vg 0 "train gru, 1 thread" train -q --model gru $rnn --threads 1 "$tr" -o "$T/gru.rr"
vg 0 "train gru, 2 threads, --valid" train -q --model gru $rnn --threads 2 --valid "$T/prep/valid.tsv" \
    --loss bpr-max --dropout-hidden 0.2 "$tr" -o "$T/gru2.rr"
vg 0 "train lstm" train -q --model lstm --layers 8 --batch-size 8 --n-sample 32 --epochs 1 --threads 1 \
    "$tr" -o "$T/lstm.rr"
for k in pop markov sknn iknn; do
    vg 0 "train $k" train -q --model "$k" "$tr" -o "$T/$k.rr"
done
for k in gru lstm sknn; do
    vg 0 "eval $k" eval --json --cutoffs 5,20 "$T/$k.rr" "$te"
    expect_out '"recall@20"' "eval $k"
done
first=$(awk -F'\t' 'NR == 2 { print $2 }' "$tr")
for k in gru iknn markov; do
    vg 0 "recommend $k" recommend "$T/$k.rr" --items "$first" -k 5
    [ "$(wc -l <"$T/out")" -eq 6 ] && ok || bad "recommend $k: $(cat "$T/out")"
done
vg 0 "recommend --sessions gru" recommend "$T/gru.rr" --sessions "$te" -k 5 -o "$T/recs.tsv"
[ "$(head -1 "$T/recs.tsv")" = "$(printf 'session_id\trank\titem_id\tscore')" ] && [ "$(wc -l <"$T/recs.tsv")" -gt 5 ] &&
    ok || bad "recommend --sessions: $(head -3 "$T/recs.tsv")"
vg 0 "info gru" info "$T/gru.rr"

# error paths: the message and exit code, and nothing leaked on the way out
head -c 700 "$T/gru.rr" >"$T/trunc.rr"
vg 1 "recommend on a truncated model" recommend "$T/trunc.rr" --items "$first"
expect_err "truncated" "truncated model"
printf 'session_id\titem_id\ttimestamp\n1\t2\t3\n1\t2\tx\n' >"$T/bad.tsv"
vg 1 "eval on a malformed log" eval "$T/gru.rr" "$T/bad.tsv"
expect_err "bad.tsv:3:" "malformed log"
vg 1 "recommend --sessions on a malformed log" recommend "$T/gru.rr" --sessions "$T/bad.tsv"
expect_err "bad.tsv:3:" "malformed --sessions log"
vg 1 "train on a malformed log" train -q --model gru $rnn --threads 1 "$T/bad.tsv" -o "$T/x.rr"

echo "cli_valgrind: $n_vg runs under memcheck in $(($(date +%s) - t0)) s"
echo "cli_valgrind: $pass passed, $fails failed"
[ "$fails" -eq 0 ]
