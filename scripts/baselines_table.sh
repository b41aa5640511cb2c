#!/usr/bin/env bash
# baselines_table.sh - train and evaluate every baseline (pop spop markov
# iknn sknn vsknn) on two public datasets and print a Markdown table.
#
#   scripts/baselines_table.sh [RNNREC_BIN [DATA_DIR]]
#
# (a) yoochoose-100k: session-rec's prepared split,
#     yoochoose-clicks-100k_train_full.txt / yoochoose-clicks-100k_test.txt;
# (b) diginetica-srgnn: events.tsv.gz split by the session-id ranges in its
#     stats.json (SR-GNN's train / test sessions), written to a temporary
#     directory and removed afterwards.
# Evaluation: every event after a session's first is a target, ranked
# against the full catalogue, conservative ties (rnnrec eval's defaults).
# "train s" is the fit time rnnrec train reports (reading excluded), "eval s"
# the time rnnrec eval reports for ranking all targets.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
BIN=${1:-${RR_BIN:-$here/../build/rnnrec}}
DATA=${2:-${RR_SHARED_DATA:-$here/../../shared/data}}
KINDS=${KINDS:-"pop spop markov iknn sknn vsknn"}
[ -x "$BIN" ] || { echo "baselines_table: no rnnrec binary at $BIN" >&2; exit 2; }
for f in yoochoose-100k/yoochoose-clicks-100k_train_full.txt yoochoose-100k/yoochoose-clicks-100k_test.txt \
    diginetica-srgnn/events.tsv.gz diginetica-srgnn/stats.json; do
    [ -r "$DATA/$f" ] || { echo "baselines_table: missing $DATA/$f" >&2; exit 1; }
done
T=$(mktemp -d "${TMPDIR:-/tmp}/rr_baselines.XXXXXX")
trap 'rm -rf "$T"' EXIT

# diginetica-srgnn: the split's session-id ranges from stats.json
read -r tr0 tr1 te0 te1 < <(python3 -c '
import json, sys
s = json.load(open(sys.argv[1]))["splits"]
print(s["train"][0], s["train"][1], s["test"][0], s["test"][1])' "$DATA/diginetica-srgnn/stats.json")
gzip -dc "$DATA/diginetica-srgnn/events.tsv.gz" | awk -F'\t' -v a="$tr0" -v b="$tr1" -v c="$te0" -v d="$te1" \
    -v tr="$T/dig_train.tsv" -v te="$T/dig_test.tsv" '
    NR == 1 { print > tr; print > te; next }
    $1 >= a && $1 <= b { print > tr; next }
    $1 >= c && $1 <= d { print > te }'

num() { sed -n "s/.*\"$1\": \\([0-9.eE+-]*\\).*/\\1/p" "$2"; }

run() { # run LABEL TRAIN TEST
    local label=$1 train=$2 test=$3
    for k in $KINDS; do
        "$BIN" train --model "$k" "$train" -o "$T/$k.rr" 2>"$T/train.err" ||
            { cat "$T/train.err" >&2; exit 1; }
        local tsec
        tsec=$(sed -n 's/.*train \([0-9.]*\) s.*/\1/p' "$T/train.err")
        "$BIN" eval --json --cutoffs 5,20 --ties conservative "$T/$k.rr" "$test" >"$T/eval.json"
        printf '| %s | %s | %.6f | %.6f | %.6f | %.6f | %.4f | %s | %.2f |\n' "$label" "$k" \
            "$(num 'recall@20' "$T/eval.json")" "$(num 'mrr@20' "$T/eval.json")" \
            "$(num 'recall@5' "$T/eval.json")" "$(num 'ndcg@20' "$T/eval.json")" \
            "$(num 'coverage@20' "$T/eval.json")" "$tsec" "$(num 'seconds' "$T/eval.json")"
    done
}

echo "| dataset | model | Recall@20 | MRR@20 | Recall@5 | NDCG@20 | Coverage@20 | train s | eval s |"
echo "|---|---|---:|---:|---:|---:|---:|---:|---:|"
run yoochoose-100k "$DATA/yoochoose-100k/yoochoose-clicks-100k_train_full.txt" \
    "$DATA/yoochoose-100k/yoochoose-clicks-100k_test.txt"
run diginetica-srgnn "$T/dig_train.tsv" "$T/dig_test.tsv"
