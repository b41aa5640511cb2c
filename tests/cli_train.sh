#!/usr/bin/env bash
# cli_train.sh - `rnnrec train` through the binary ($RR_BIN): every baseline
# trains on a small synthetic log, evaluates and recommends; presets yield to
# explicit options; usage errors exit 2, runtime errors 1.
set -u
. "$(dirname "$0")/harness.sh" cli_train

# A log where the next item mostly follows a fixed successor chain
# (i -> i + 1 mod 40), with a jump every 5th step: sequence-aware models
# must beat popularity on it.  Times are a global counter.
gen() { # gen FIRST_SESSION N_SESSIONS TIME0
    awk -v s0="$1" -v n="$2" -v t0="$3" 'BEGIN {
        print "session_id\titem_id\ttimestamp"; t = t0
        for (s = s0; s < s0 + n; s++) {
            len = 3 + (s * 7) % 6; it = (s * 13) % 40
            for (p = 0; p < len; p++) {
                printf "%d\t%d\t%d\n", s, 100 + it, t++
                it = (p % 5 == 4) ? (it * 17 + s) % 40 : (it + 1) % 40
            }
        }
    }'
}
gen 1 400 0 >"$T/train.tsv"
gen 1001 80 100000 >"$T/test.tsv"

for k in pop spop markov iknn sknn vsknn; do
    expect_rc 0 "train $k" "$BIN" train --model "$k" "$T/train.tsv" -o "$T/$k.rr"
    if [ -s "$T/$k.rr" ]; then ok; else bad "train $k wrote no model"; fi
    grep -q "$k: 40 items, 400 sessions" "$T/err" && ok || bad "train $k: summary line: $(cat "$T/err")"
done
# every model evaluates; the sequence-aware ones beat popularity on MRR@20
metric() { sed -n "s/.*\"$1\": \([0-9.]*\).*/\1/p" "$2"; }
for k in pop spop markov iknn sknn vsknn; do
    expect_rc 0 "eval $k" "$BIN" eval --json --cutoffs 5,20 "$T/$k.rr" "$T/test.tsv"
    cp "$T/out" "$T/eval_$k.json"
    r=$(metric "recall@20" "$T/eval_$k.json")
    [ -n "$r" ] && ok || bad "eval $k: no recall@20 in $(head -c 300 "$T/out")"
done
pop_mrr=$(metric "mrr@20" "$T/eval_pop.json")
for k in markov iknn sknn vsknn; do
    m=$(metric "mrr@20" "$T/eval_$k.json")
    awk -v a="$m" -v b="$pop_mrr" 'BEGIN { exit !(a > b + 0.1) }' && ok ||
        bad "$k MRR@20 $m does not beat pop $pop_mrr"
done
m=$(metric "mrr@20" "$T/eval_markov.json")
awk -v a="$m" 'BEGIN { exit !(a > 0.8) }' && ok || bad "markov MRR@20 $m on a successor chain"

# recommend: markov follows the chain, spop repeats the session's items
"$BIN" recommend "$T/markov.rr" --items 105 -k 3 >"$T/out" 2>"$T/err"
awk 'NR == 2 { exit !($1 == 1 && $2 == 106) }' "$T/out" && ok || bad "markov after 105: $(cat "$T/out" "$T/err")"
"$BIN" recommend "$T/spop.rr" --items 101,101,102 -k 3 >"$T/out" 2>"$T/err"
awk 'NR == 2 { a = $2 } NR == 3 { b = $2 } END { exit !(a == 101 && b == 102) }' "$T/out" && ok ||
    bad "spop 101,101,102: $(cat "$T/out" "$T/err")"
for k in iknn sknn vsknn; do
    expect_rc 0 "recommend $k" "$BIN" recommend "$T/$k.rr" --items 110,111 -k 5
    [ "$(wc -l <"$T/out")" -eq 6 ] && ok || bad "recommend $k: $(cat "$T/out")"
done

# recommend --sessions: every session of a log at once, the same lists and
# score text as --items on each session alone (a GRU through its 8-bit
# screen and exactly, and markov); 82 sessions are a batch of 64 and one
# of 18 (a tile and two sessions ranked alone); unknown items are skipped
expect_rc 0 "train gru" "$BIN" train -q --model gru --layers 16 --epochs 2 "$T/train.tsv" -o "$T/gru.rr"
{ cat "$T/test.tsv"; printf '2001\t999999\t200000\n2002\t100\t200001\n2002\t999998\t200002\n'; } >"$T/rec.tsv"
for model in gru markov; do
    for bits in 8 0; do
        expect_rc 0 "recommend --sessions $model bits $bits" "$BIN" recommend "$T/$model.rr" --sessions "$T/rec.tsv" \
            -k 7 --exclude-seen --screen-bits $bits -o "$T/batch.tsv"
        expect_err "2 events with items the model does not know were skipped; 1 of 82 sessions" "unknown items summary"
        [ "$(wc -l <"$T/batch.tsv")" -eq $((1 + 82 * 7)) ] && ok || bad "$model: $(wc -l <"$T/batch.tsv") lines"
        for sid in 1001 1017 1040 1064 1065 1080 2001 2002; do
            its=$(awk -F'\t' -v s=$sid 'NR > 1 && $1 == s {print $2}' "$T/rec.tsv" | paste -sd, -)
            "$BIN" recommend "$T/$model.rr" --items "$its" -k 7 --exclude-seen --json 2>/dev/null |
                grep -o '"item": "[^"]*", "score": [^}]*' | sed 's/"item": "\([^"]*\)", "score": \(.*\)/\1 \2/' >"$T/one"
            awk -F'\t' -v s=$sid '$1 == s {print $3, $4}' "$T/batch.tsv" >"$T/many"
            [ -s "$T/one" ] && cmp -s "$T/one" "$T/many" && ok ||
                bad "$model bits $bits session $sid: --sessions $(paste -sd' ' "$T/many") vs --items $(paste -sd' ' "$T/one")"
        done
    done
done
expect_rc 0 "recommend --sessions --json" "$BIN" recommend "$T/gru.rr" --sessions "$T/rec.tsv" -k 3 --json
[ "$(wc -l <"$T/out")" -eq 82 ] && head -1 "$T/out" | grep -q '^{"session": "1001", "n_items": [0-9]*, "n_unknown": 0, "fallback": null, "recommendations": \[{"item": "' &&
    grep -q '^{"session": "2001", "n_items": 0, "n_unknown": 1, "fallback": "popularity"' "$T/out" && ok ||
    bad "--sessions --json: $(head -c 300 "$T/out")"
expect_rc 2 "--items with --sessions" "$BIN" recommend "$T/gru.rr" --items 100 --sessions "$T/rec.tsv"
expect_rc 2 "--output without --sessions" "$BIN" recommend "$T/gru.rr" --items 100 -o "$T/x.tsv"
expect_rc 2 "bad --screen-bits" "$BIN" recommend "$T/gru.rr" --sessions "$T/rec.tsv" --screen-bits 4
printf 'session_id\titem_id\ttimestamp\n1\t105\tnot-a-time\n' >"$T/broken_log.tsv"
expect_rc 1 "malformed --sessions log" "$BIN" recommend "$T/gru.rr" --sessions "$T/broken_log.tsv"
expect_err "broken_log.tsv:2" "malformed log row located"
expect_rc 1 "unwritable --output" "$BIN" recommend "$T/gru.rr" --sessions "$T/rec.tsv" -o "$T/no/such/dir/x.tsv"

# the project's own generator: every model trains and evaluates on the same
# targets, each beats popularity, and training twice gives identical bytes
if "$BIN" synth -q -n 20000 --items 500 --seed 3 -o "$T/syn.tsv" 2>"$T/err"; then
    ok
    awk -F'\t' -v tr="$T/syn_tr.tsv" -v te="$T/syn_te.tsv" \
        'NR == 1 { print > tr; print > te; next } $1 <= 3800 { print > tr; next } { print > te }' "$T/syn.tsv"
    for k in pop spop markov iknn sknn vsknn; do
        expect_rc 0 "train $k on synth" "$BIN" train -q --model "$k" "$T/syn_tr.tsv" -o "$T/syn_$k.rr"
        expect_rc 0 "eval $k on synth" "$BIN" eval --json --cutoffs 20 "$T/syn_$k.rr" "$T/syn_te.tsv"
        cp "$T/out" "$T/syn_$k.json"
    done
    n0=$(metric n_targets "$T/syn_pop.json")
    p0=$(metric "mrr@20" "$T/syn_pop.json")
    [ "${n0:-0}" -gt 1000 ] && ok || bad "synth test has ${n0:-no} targets"
    for k in spop markov iknn sknn vsknn; do
        [ "$(metric n_targets "$T/syn_$k.json")" = "$n0" ] && ok || bad "$k: other target count"
        m=$(metric "mrr@20" "$T/syn_$k.json")
        awk -v a="$m" -v b="$p0" 'BEGIN { exit !(a > b) }' && ok || bad "synth: $k MRR@20 $m <= pop $p0"
    done
    for k in iknn vsknn; do
        "$BIN" train -q --model "$k" --threads 1 "$T/syn_tr.tsv" -o "$T/again.rr" &&
            cmp -s "$T/again.rr" "$T/syn_$k.rr" && ok || bad "$k: retraining (1 thread) gives other bytes"
    done
else
    bad "rnnrec synth failed: $(cat "$T/err")"
fi

# -q: no summary line
expect_rc 0 "train -q" "$BIN" train -q --model sknn --k 10 --sample-size 50 "$T/train.tsv" -o "$T/q.rr"
[ -s "$T/err" ] && bad "train -q printed: $(cat "$T/err")" || ok
# the same data in CSV with other column names, from stdin
awk -F'\t' 'NR == 1 { print "sid;iid;when"; next } { print $1 ";" $2 ";" $3 }' "$T/train.tsv" >"$T/train.csv"
expect_rc 0 "train from stdin with named columns" sh -c \
    "'$BIN' train --model markov --sep ';' --session-col sid --item-col iid --time-col when - -o '$T/csv.rr' <'$T/train.csv'"
cmp -s "$T/csv.rr" "$T/markov.rr" && ok || bad "markov from CSV/stdin differs from the TSV model"

# --preset first, explicit flags win wherever they appear
"$BIN" train --lr 0.123 --model sknn --preset yoochoose --print-params >"$T/pp" 2>"$T/err"
grep -qx "lr 0.123" "$T/pp" && ok || bad "explicit --lr before --preset lost: $(grep '^lr' "$T/pp")"
grep -qx "layers 480" "$T/pp" && ok || bad "preset yoochoose layers not applied: $(grep '^layers' "$T/pp")"
grep -qx "batch-size 48" "$T/pp" && ok || bad "preset yoochoose batch not applied"
"$BIN" train --preset diginetica --model sknn --batch-size 7 --layers 64,32 --final-act elu:0.5 \
    --loss bpr-max --optim adam --cell-act relu --embedding 0 --print-params >"$T/pp" 2>"$T/err"
grep -qx "batch-size 7" "$T/pp" && ok || bad "--batch-size after --preset lost"
grep -qx "layers 64,32" "$T/pp" && ok || bad "--layers 64,32: $(grep '^layers' "$T/pp")"
grep -qx "final-act elu:0.5" "$T/pp" && ok || bad "--final-act elu:0.5"
grep -qx "optim adam" "$T/pp" && ok || bad "--optim adam"
grep -qx "cell-act relu" "$T/pp" && ok || bad "--cell-act relu"
grep -qx "embedding 0" "$T/pp" && ok || bad "--embedding 0"
grep -qx "dropout-embed 0.5" "$T/pp" && ok || bad "preset diginetica dropout not applied"
"$BIN" train --embedding 5 --constrained-embedding --model sknn --print-params >"$T/pp" 2>"$T/err"
grep -qx "embedding -1" "$T/pp" && ok || bad "--constrained-embedding"
expect_rc 0 "train --help" "$BIN" train --help
grep -q -- "--sample-size N" "$T/out" && grep -q "(default: 500)" "$T/out" && ok || bad "--help lacks defaults"

# usage errors: exit 2
expect_rc 2 "no --model" "$BIN" train "$T/train.tsv" -o "$T/x.rr"
expect_rc 2 "unknown kind" "$BIN" train --model nosuch "$T/train.tsv" -o "$T/x.rr"
expect_rc 2 "no -o" "$BIN" train --model pop "$T/train.tsv"
expect_rc 2 "no TRAIN" "$BIN" train --model pop -o "$T/x.rr"
expect_rc 2 "two TRAIN files" "$BIN" train --model pop "$T/train.tsv" "$T/test.tsv" -o "$T/x.rr"
expect_rc 2 "unknown option" "$BIN" train --model pop --frobnicate "$T/train.tsv" -o "$T/x.rr"
expect_rc 2 "bad --k" "$BIN" train --model sknn --k 0 "$T/train.tsv" -o "$T/x.rr"
expect_rc 2 "bad --alpha" "$BIN" train --model iknn --alpha 2 "$T/train.tsv" -o "$T/x.rr"
expect_rc 2 "bad --loss" "$BIN" train --model gru --loss nope "$T/train.tsv" -o "$T/x.rr"
expect_rc 2 "bad --layers" "$BIN" train --model gru --layers 64,,32 "$T/train.tsv" -o "$T/x.rr"
expect_rc 2 "bad --final-act" "$BIN" train --model gru --final-act tanh:3 "$T/train.tsv" -o "$T/x.rr"
expect_rc 2 "bad --preset" "$BIN" train --model gru --preset nope "$T/train.tsv" -o "$T/x.rr"
expect_rc 2 "bad --threads" "$BIN" train --model pop --threads -1 "$T/train.tsv" -o "$T/x.rr"
# runtime errors: exit 1, with the file named
expect_rc 1 "missing TRAIN" "$BIN" train --model pop "$T/nonexistent.tsv" -o "$T/x.rr"
grep -q "nonexistent.tsv" "$T/err" && ok || bad "missing file not named: $(cat "$T/err")"
printf 'session_id\titem_id\ttimestamp\n1\t5\tnot-a-time\n' >"$T/broken.tsv"
expect_rc 1 "malformed TRAIN" "$BIN" train --model pop "$T/broken.tsv" -o "$T/x.rr"
grep -q "broken.tsv:2" "$T/err" && ok || bad "malformed row not located: $(cat "$T/err")"
expect_rc 1 "unwritable -o" "$BIN" train --model pop "$T/train.tsv" -o "$T/no/such/dir/x.rr"

echo "cli_train: $pass passed, $fails failed"
[ "$fails" -eq 0 ]
