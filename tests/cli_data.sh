#!/usr/bin/env bash
# cli_data.sh - `rnnrec synth` and `rnnrec prep` end to end through the
# binary ($RR_BIN): determinism, gzip and stdout output, every split, the
# summary table, --help, and exit codes (2 usage errors, 1 runtime errors).
set -u
. "$(dirname "$0")/harness.sh" cli_data

# --- synth
expect_rc 0 "synth --help" "$BIN" synth --help
expect_out "--events N" "synth --help lists options"
expect_out "(default: 200000)" "synth --help shows defaults"
expect_rc 0 "synth" "$BIN" synth --events 30000 --items 800 --seed 7 -o "$T/a.tsv"
expect_rc 0 "synth again" "$BIN" synth --events 30000 --items 800 --seed 7 -o "$T/b.tsv" -q
if cmp -s "$T/a.tsv" "$T/b.tsv"; then ok; else bad "same seed gave different files"; fi
expect_rc 0 "synth seed 8" "$BIN" synth --events 30000 --items 800 --seed 8 -o "$T/c.tsv" -q
if cmp -s "$T/a.tsv" "$T/c.tsv"; then bad "different seeds gave the same file"; else ok; fi
lines=$(wc -l <"$T/a.tsv")
if [ "$lines" -eq 30001 ]; then ok; else bad "synth wrote $lines lines, want 30001"; fi
if [ "$(head -1 "$T/a.tsv")" = "$(printf 'session_id\titem_id\ttimestamp')" ]; then ok; else bad "synth header"; fi
expect_rc 0 "synth to stdout" "$BIN" synth --events 30000 --items 800 --seed 7 -o - -q
if cmp -s "$T/a.tsv" "$T/out"; then ok; else bad "stdout output differs from the file"; fi
expect_rc 0 "synth gz" "$BIN" synth --events 30000 --items 800 --seed 7 -o "$T/a.tsv.gz" -q
if gzip -dc "$T/a.tsv.gz" | cmp -s - "$T/a.tsv"; then ok; else bad ".gz output does not decompress to the plain file"; fi
expect_rc 2 "synth without -o" "$BIN" synth --events 10
expect_err "missing -o FILE" "synth without -o"
expect_rc 2 "synth bad value" "$BIN" synth --events ten -o "$T/x.tsv"
expect_rc 2 "synth bad range" "$BIN" synth --items 1 -o "$T/x.tsv"
expect_err "n_items (--items) must be at least 2" "synth bad range"
expect_rc 2 "synth unknown option" "$BIN" synth --bogus -o "$T/x.tsv"
expect_rc 1 "synth unwritable" "$BIN" synth --events 10 -o "$T/no/such/dir/x.tsv"

# --- prep: time split (default), read from plain, gzip and stdin
expect_rc 0 "prep --help" "$BIN" prep --help
expect_out "--min-item-support N" "prep --help lists options"
expect_out "(default: 5)" "prep --help shows defaults"
expect_rc 0 "prep" "$BIN" prep "$T/a.tsv" -o "$T/p1"
expect_out "train" "prep summary"
expect_out "filters (" "prep summary filters"
for f in train.tsv test.tsv; do
    if [ -s "$T/p1/$f" ]; then ok; else bad "prep did not write $f"; fi
done
if [ -e "$T/p1/valid.tsv" ]; then bad "valid.tsv written without --valid-days"; else ok; fi
expect_rc 0 "prep gz" "$BIN" prep "$T/a.tsv.gz" -o "$T/p2" -q
if cmp -s "$T/p1/train.tsv" "$T/p2/train.tsv" && cmp -s "$T/p1/test.tsv" "$T/p2/test.tsv"; then ok; else bad "gzip input gave other output"; fi
"$BIN" prep - -o "$T/p3" -q <"$T/a.tsv" 2>"$T/err"
if [ $? -eq 0 ] && cmp -s "$T/p1/train.tsv" "$T/p3/train.tsv"; then ok; else bad "stdin input: $(cat "$T/err")"; fi
# every test item occurs in train; events + dropped add up
awk -F'\t' 'FNR == 1 { next } NR == FNR { seen[$2] = 1; next } !($2 in seen) { bad = 1 } END { exit bad }' \
    "$T/p1/train.tsv" "$T/p1/test.tsv" && ok || bad "test has items not in train"
# prep output is itself valid input, and prep of it with no filters is the identity
expect_rc 0 "prep of prep" "$BIN" prep "$T/p1/train.tsv" --min-item-support 1 --min-session-length 1 --split none -o "$T/p4" -q
if cmp -s "$T/p1/train.tsv" "$T/p4/train.tsv"; then ok; else bad "prep with no filters changed train.tsv"; fi

# valid-days, leave-one-out (+valid), none, session gap, dedup
expect_rc 0 "prep valid-days" "$BIN" prep "$T/a.tsv" --valid-days 1 -o "$T/p5"
expect_out "valid" "valid row in the summary"
[ -s "$T/p5/valid.tsv" ] && ok || bad "valid.tsv missing"
expect_rc 0 "prep loo" "$BIN" prep "$T/a.tsv" --split leave-one-out --valid -o "$T/p6" -q
n_test=$(($(wc -l <"$T/p6/test.tsv") - 1))
n_train=$(($(wc -l <"$T/p6/train.tsv") - 1))
n_valid=$(($(wc -l <"$T/p6/valid.tsv") - 1))
# test = whole sequences; valid = test minus one event per session
s_test=$(tail -n +2 "$T/p6/test.tsv" | cut -f1 | sort -u | wc -l)
s_valid=$(tail -n +2 "$T/p6/valid.tsv" | cut -f1 | sort -u | wc -l)
if [ "$n_valid" -le "$n_test" ] && [ "$n_train" -lt "$n_test" ] && [ "$s_valid" -le "$s_test" ]; then ok; else bad "loo sizes: train $n_train valid $n_valid test $n_test"; fi
expect_rc 0 "prep none" "$BIN" prep "$T/a.tsv" --split none -o "$T/p7" -q
[ -e "$T/p7/test.tsv" ] && bad "split none wrote test.tsv" || ok
expect_rc 0 "prep gap dedup" "$BIN" prep "$T/a.tsv" --session-gap 600 --dedup -o "$T/p8"
expect_out "session gap 600 s" "gap line in the summary"
if tail -n +2 "$T/p8/train.tsv" | head -1 | cut -f1 | grep -q '_[0-9]*$'; then ok; else bad "gap sessions not renamed <orig>_<k>"; fi

# usage errors (2) and runtime errors (1)
expect_rc 2 "prep no args" "$BIN" prep
expect_rc 2 "prep without -o" "$BIN" prep "$T/a.tsv"
expect_err "missing -o OUTDIR" "prep without -o"
expect_rc 2 "prep bad split" "$BIN" prep --split sideways "$T/a.tsv" -o "$T/x"
expect_rc 2 "prep valid with time split" "$BIN" prep --valid "$T/a.tsv" -o "$T/x"
expect_rc 2 "prep negative days" "$BIN" prep --test-days -1 "$T/a.tsv" -o "$T/x"
expect_rc 1 "prep missing file" "$BIN" prep "$T/none.tsv" -o "$T/x"
expect_err "none.tsv: cannot open" "prep missing file"
printf 'session_id\titem_id\ttimestamp\n1\ta\t1\n1\tb\n' >"$T/bad.tsv"
expect_rc 1 "prep bad row" "$BIN" prep "$T/bad.tsv" -o "$T/x"
expect_err "bad.tsv:3:1: expected 3 fields, found 2" "prep bad row message"
expect_rc 1 "prep header only" "$BIN" prep <(printf 'session_id\titem_id\ttimestamp\n') -o "$T/x"
expect_err "no data rows" "prep header only"
head -c 20000 "$T/a.tsv.gz" >"$T/cut.tsv.gz"
expect_rc 1 "prep truncated gzip" "$BIN" prep "$T/cut.tsv.gz" -o "$T/x"
expect_err "truncated gzip data" "prep truncated gzip"
expect_rc 1 "prep into a file" "$BIN" prep "$T/a.tsv" -o "$T/a.tsv.gz"
expect_err "not a directory" "prep into a file"

# real data, when present
D=${RR_SHARED_DATA:-}
if [ -n "$D" ] && [ -f "$D/yoochoose-100k/events.tsv" ]; then
    expect_rc 0 "prep yoochoose-100k" "$BIN" prep "$D/yoochoose-100k/events.tsv" -o "$T/y"
    expect_out "83846 events, 21210 sessions, 2933 items" "yoochoose input counts"
else
    echo "SKIP: \$RR_SHARED_DATA/yoochoose-100k not found"
fi

echo "cli_data: $pass passed, $fails failed"
[ "$fails" -eq 0 ]
