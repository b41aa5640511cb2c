#!/usr/bin/env bash
# cli_checkpoint.sh - crash-safe checkpoints through the binary ($RR_BIN):
#  - an uninterrupted reference run (GRU, one thread, validation, dropout);
#  - KILLS times: `train --checkpoint-dir` killed with SIGKILL at a random
#    moment (a third of the runs write a checkpoint after every step, so many
#    kills land inside a write), then `train --resume`: the newest
#    checkpoint is the one that loads (no fallback), the resume completes,
#    no temporary file is left, and the model is byte-identical to the
#    reference; every fifth resume is killed too and resumed again;
#  - a full disk simulated with a file size limit (prlimit --fsize): every
#    checkpoint write fails with "File too large", training goes on, the
#    model is saved, the exit code is 1, the previous checkpoint is intact
#    and a later resume from it still gives the reference model;
#  - usage errors: another data file or other settings are refused naming
#    what differs; a folder with checkpoints refuses a fresh run.
# RR_TEST_SCALE=small (the sanitizer build) runs 12 kills instead of 50.
set -u
. "$(dirname "$0")/harness.sh" cli_checkpoint

KILLS=50
[ "${RR_TEST_SCALE:-}" = small ] && KILLS=12 && echo "cli_checkpoint: RR_TEST_SCALE=small: 12 kills instead of 50"
SEED=${RR_CKPT_SEED:-$$}
RANDOM=$SEED

"$BIN" synth -q -n 1000 --items 80 --seed 9 -o "$T/syn.tsv" && ok || bad "synth"
"$BIN" prep -q --valid-days 3 "$T/syn.tsv" -o "$T/d" && ok || bad "prep"
ARGS=(--model gru --layers 12 --batch-size 32 --n-sample 16 --sample-cache 64 --dropout-hidden 0.2
    --dropout-embed 0.1 --momentum 0.1 --epochs 3 --threads 1 --valid "$T/d/valid.tsv")
TR="$T/d/train.tsv"

expect_rc 0 "reference run" "$BIN" train -q "${ARGS[@]}" "$TR" --log-json "$T/ref.json" -o "$T/ref.rr"
losses() { sed 's/.*"loss":\([^,]*\),.*recall@20":\([^,]*\),.*/\1 \2/' "$1"; }
losses "$T/ref.json" >"$T/ref.losses"
[ "$(wc -l <"$T/ref.losses")" -eq 3 ] && ok || bad "reference JSON log: $(cat "$T/ref.json")"
# how long runs take with a checkpoint after every step and after every
# 10th: the windows the kills fall in
ms_now() { echo $(($(date +%s%N) / 1000000)); }
t0=$(ms_now)
expect_rc 0 "run with a checkpoint per step" "$BIN" train -q "${ARGS[@]}" "$TR" --checkpoint-dir "$T/c0" \
    --checkpoint-every 1 -o "$T/c0.rr"
t1=$(ms_now)
expect_rc 0 "run with a checkpoint per 10 steps" "$BIN" train -q "${ARGS[@]}" "$TR" --checkpoint-dir "$T/c1" \
    --checkpoint-every 10 -o "$T/c1.rr"
t2=$(ms_now)
w_every1=$((t1 - t0)) w_sparse=$((t2 - t1))
cmp -s "$T/c0.rr" "$T/ref.rr" && ok || bad "checkpoints every step changed the model"
cmp -s "$T/c1.rr" "$T/ref.rr" && ok || bad "checkpoints every 10 steps changed the model"
[ "$(ls "$T/c0" | grep -c '\.rrc$')" -eq 2 ] && ok || bad "not exactly 2 checkpoints kept: $(ls "$T/c0")"

tmp_count() { ls "$1" 2>/dev/null | grep -c '\.tmp\.'; }
newest() { ls "$1" 2>/dev/null | grep '^ckpt-[0-9]*\.rrc$' | sort | tail -1; }

# resume_check DIR WHAT: resumes, checks the newest loaded, no .tmp left, same model
resume_check() {
    local dir=$1 what=$2 want
    want=$(newest "$dir")
    "$BIN" train --verbose 1 "${ARGS[@]}" "$TR" --resume "$dir" --log-json "$dir.json" -o "$T/k.rr" >"$T/out" 2>"$T/err"
    local rc=$?
    [ "$rc" -eq 0 ] && ok || bad "$what: resume exit $rc: $(tail -c 300 "$T/err")"
    grep -qF "resuming from $dir/$want" "$T/err" && ok || bad "$what: newest $want not the one resumed: $(grep -i 'resum\|unusable' "$T/err" | head -3)"
    grep -q "unusable" "$T/err" && bad "$what: a checkpoint was unusable: $(grep unusable "$T/err")" || ok
    [ "$(tmp_count "$dir")" -eq 0 ] && ok || bad "$what: temporary files left: $(ls "$dir")"
    cmp -s "$T/k.rr" "$T/ref.rr" && ok || bad "$what: resumed model differs from the reference"
    # the JSON log continues where the checkpoint left it: each epoch once, same numbers
    losses "$dir.json" | cmp -s - "$T/ref.losses" && ok || bad "$what: JSON log $(cat "$dir.json") vs $(cat "$T/ref.losses")"
}

mid_write=0 before_first=0 double=0
for i in $(seq 1 "$KILLS"); do
    dir="$T/k$i"
    if [ $((i % 3)) -eq 1 ]; then every=1 window_ms=$w_every1; else every=$((3 + RANDOM % 20)) window_ms=$w_sparse; fi
    [ $((i % 7)) -eq 0 ] && every=0.01s
    "$BIN" train -q "${ARGS[@]}" "$TR" --checkpoint-dir "$dir" --checkpoint-every "$every" --log-json "$dir.json" \
        -o "$T/k.rr" &
    pid=$!
    ms=$((RANDOM % (window_ms + 1)))
    sleep "$(awk -v m="$ms" 'BEGIN { printf "%.3f", m / 1000 }')"
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    [ "$(tmp_count "$dir")" -gt 0 ] && mid_write=$((mid_write + 1))
    if [ -z "$(newest "$dir")" ]; then
        # killed before the first checkpoint: a fresh run in the same folder
        before_first=$((before_first + 1))
        expect_rc 0 "kill $i: fresh rerun" "$BIN" train -q "${ARGS[@]}" "$TR" --checkpoint-dir "$dir" -o "$T/k.rr" \
            --log-json "$dir.json"
        cmp -s "$T/k.rr" "$T/ref.rr" && ok || bad "kill $i: rerun model differs"
        [ "$(tmp_count "$dir")" -eq 0 ] && ok || bad "kill $i: temporary files left after the rerun"
        continue
    fi
    if [ $((i % 5)) -eq 0 ]; then
        # interrupt the resume as well
        "$BIN" train -q "${ARGS[@]}" "$TR" --resume "$dir" --checkpoint-every 1 --log-json "$dir.json" -o "$T/k.rr" &
        pid=$!
        sleep "$(awk -v m="$((RANDOM % (window_ms / 2 + 1)))" 'BEGIN { printf "%.3f", m / 1000 }')"
        kill -9 "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
        double=$((double + 1))
    fi
    resume_check "$dir" "kill $i (every $every, at $ms ms)"
    rm -rf "$dir" "$dir.json"
done
echo "cli_checkpoint: $KILLS kills (seed $SEED; windows $w_every1 ms with a checkpoint per step, $w_sparse ms without): $mid_write inside a checkpoint write, $before_first before the first checkpoint, $double resumes killed too"

# ---- a full disk: a file size limit between the model's and a checkpoint's size
if command -v prlimit >/dev/null; then
    expect_rc 0 "one epoch with checkpoints" "$BIN" train -q "${ARGS[@]}" "$TR" --epochs 1 --checkpoint-dir "$T/fs" \
        --log-json "$T/fs.json" -o "$T/e1.rr"
    c1=$(newest "$T/fs")
    cp "$T/fs/$c1" "$T/saved.rrc"
    msize=$(stat -c %s "$T/ref.rr")
    csize=$(stat -c %s "$T/fs/$c1")
    lim=$(((msize + csize) / 2))
    [ "$msize" -lt "$lim" ] && [ "$lim" -lt "$csize" ] && ok || bad "no limit between model $msize and checkpoint $csize"
    expect_rc 1 "resume under a file size limit" prlimit --fsize="$lim" "$BIN" train "${ARGS[@]}" "$TR" --resume "$T/fs" \
        --checkpoint-every 10 --log-json "$T/fs.json" -o "$T/fs.rr"
    expect_err "File too large" "full disk: the errno text"
    expect_err "the last good checkpoint is $T/fs/$c1" "full disk: names the kept checkpoint"
    expect_err "checkpoint write(s) failed (see above); the model was saved" "full disk: the summary"
    nfail=$(grep -c "checkpoint failed" "$T/err")
    [ "$nfail" -ge 3 ] && ok || bad "full disk: $nfail failed writes reported"
    cmp -s "$T/fs.rr" "$T/ref.rr" && ok || bad "full disk: the model differs from the reference"
    cmp -s "$T/fs/$c1" "$T/saved.rrc" && ok || bad "full disk: the previous checkpoint changed"
    [ "$(newest "$T/fs")" = "$c1" ] && ok || bad "full disk: newest is $(newest "$T/fs"), not $c1"
    [ "$(tmp_count "$T/fs")" -eq 0 ] && ok || bad "full disk: temporary files left: $(ls "$T/fs")"
    resume_check "$T/fs" "resume after the full disk"
    echo "cli_checkpoint: file size limit $lim B (model $msize B, checkpoint $csize B): $nfail writes failed with EFBIG"
else
    echo "SKIP: prlimit not found, no full-disk test"
fi

# ---- refusals
expect_rc 0 "a checkpoint to refuse" "$BIN" train -q "${ARGS[@]}" "$TR" --epochs 1 --checkpoint-dir "$T/r" -o "$T/r.rr"
awk 'NR == 1 || NR % 50 != 7' "$TR" >"$T/train2.tsv"
expect_rc 2 "a data file with fewer events" "$BIN" train -q "${ARGS[@]}" "$T/train2.tsv" --resume "$T/r" -o "$T/x.rr"
expect_err "the training or validation data differ: data." "other data named"
[ ! -e "$T/x.rr" ] && ok || bad "a refused resume wrote a model"
expect_rc 2 "another validation file" "$BIN" train -q "${ARGS[@]}" "$TR" --valid "$T/d/test.tsv" --resume "$T/r" -o "$T/x.rr"
expect_err "valid." "other validation data named"
expect_rc 2 "other hyperparameters" "$BIN" train -q "${ARGS[@]}" "$TR" --lr 0.2 --layers 10 --resume "$T/r" -o "$T/x.rr"
expect_err "--layers 12 (now 10), --lr 0.05 (now 0.2)" "other hyperparameters named"
expect_rc 0 "another thread count: allowed" "$BIN" train "${ARGS[@]}" "$TR" --threads 2 --epochs 1 --resume "$T/r" -o "$T/x.rr"
expect_err "another thread count" "thread count warning"
expect_rc 2 "a fresh run into a used folder" "$BIN" train -q "${ARGS[@]}" "$TR" --checkpoint-dir "$T/r" -o "$T/x.rr"
expect_err "already holds checkpoints" "used folder"
# one run per folder: a second one on a folder in use is refused
"$BIN" train -q "${ARGS[@]}" "$TR" --epochs 30 --checkpoint-dir "$T/busy" --checkpoint-every 1 -o "$T/busy.rr" &
pid=$!
for _ in $(seq 1 100); do [ -n "$(newest "$T/busy")" ] && break; sleep 0.05; done
expect_rc 2 "a folder in use" "$BIN" train -q "${ARGS[@]}" "$TR" --epochs 30 --resume "$T/busy" -o "$T/x.rr"
expect_err "is in use by another training run" "folder in use"
kill -9 "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
expect_rc 0 "the folder after its run was killed" "$BIN" train -q "${ARGS[@]}" "$TR" --epochs 30 --resume "$T/busy" -o "$T/x.rr"
expect_rc 2 "resume from an empty folder" "$BIN" train -q "${ARGS[@]}" "$TR" --resume "$T/empty" -o "$T/x.rr"
expect_err "no checkpoint to resume from" "empty folder"
expect_rc 2 "--resume and --checkpoint-dir differ" "$BIN" train -q "${ARGS[@]}" "$TR" --resume "$T/r" --checkpoint-dir "$T/z" -o "$T/x.rr"
expect_rc 2 "bad --checkpoint-every" "$BIN" train -q "${ARGS[@]}" "$TR" --checkpoint-dir "$T/z" --checkpoint-every 5x -o "$T/x.rr"
expect_rc 2 "zero --checkpoint-every" "$BIN" train -q "${ARGS[@]}" "$TR" --checkpoint-dir "$T/z" --checkpoint-every 0 -o "$T/x.rr"
expect_rc 2 "checkpoints for a baseline" "$BIN" train -q --model pop --checkpoint-dir "$T/z" "$T/d/train.tsv" -o "$T/x.rr"
expect_rc 0 "--print-params" "$BIN" train --model gru --resume "$T/r" --checkpoint-every 2m --print-params
expect_out "checkpoint-dir $T/r" "--print-params: the folder"
expect_out "checkpoint-every 120s" "--print-params: 2m is 120 s"
expect_out "resume yes" "--print-params: resume"
expect_rc 0 "--print-params by steps" "$BIN" train --model gru --checkpoint-every 25 --print-params
expect_out "checkpoint-every 25" "--print-params: every 25 steps"
expect_rc 0 "train --help" "$BIN" train --help
expect_out "--checkpoint-every N|Ns" "--help lists --checkpoint-every"
expect_out "--resume DIR" "--help lists --resume"

echo "cli_checkpoint: $pass passed, $fails failed"
[ "$fails" -eq 0 ]
