#!/usr/bin/env bash
# demo.sh RNNREC_BIN - the built-in demo: generate a synthetic clickstream,
# preprocess it, train the baselines and a GRU, evaluate them side by side
# and print recommendations for a sample session.  Under a minute on 2 cores.
set -euo pipefail
BIN=${1:-build/rnnrec}
DIR=${RR_DEMO_DIR:-build/demo}
mkdir -p "$DIR"
t0=$(date +%s.%N)
step() { printf '\n== %s\n' "$*"; }

step "1. synthetic clickstream (seeded): $DIR/events.tsv"
"$BIN" synth --events 200000 --items 5000 --seed 7 -o "$DIR/events.tsv"

step "2. preprocess: filters + time split (last 3 days -> test)"
"$BIN" prep --split time --test-days 3 "$DIR/events.tsv" -o "$DIR"

step "3. train"
MODELS="pop spop markov iknn sknn vsknn gru"
for m in $MODELS; do
  extra=()
  if [ "$m" = gru ]; then extra=(--layers 100 --batch-size 64 --epochs 3 --n-sample 1024 --loss cross-entropy --logq 1 --lr 0.1 --dropout-hidden 0.2 --quiet); fi
  "$BIN" train --model "$m" "${extra[@]}" "$DIR/train.tsv" -o "$DIR/$m.rr"
done

step "4. evaluate on the full catalogue (conservative ties)"
printf '%-8s %10s %10s %10s %10s %12s\n' model Recall@5 Recall@20 MRR@20 NDCG@20 Coverage@20
for m in $MODELS; do
  "$BIN" eval --cutoffs 5,20 --json "$DIR/$m.rr" "$DIR/test.tsv" |
    awk -v m="$m" '
      function get(k,   r) { if (match($0, "\"" k "\": [0-9.eE+-]+")) { r = substr($0, RSTART, RLENGTH); sub(/.*: /, "", r); return r } return "nan" }
      { printf "%-8s %10.4f %10.4f %10.4f %10.4f %12.4f\n", m, get("recall@5"), get("recall@20"), get("mrr@20"), get("ndcg@20"), get("coverage@20") }'
done

step "5. recommendations for a sample test session (first 3 items)"
items=$(awk -F'\t' 'NR>1 {if (s=="") s=$1; if ($1==s && n<3) {printf "%s%s", (n?",":""), $2; n++}}' "$DIR/test.tsv")
echo "session items: $items"
"$BIN" recommend "$DIR/gru.rr" --items "$items" -k 10

t1=$(date +%s.%N)
awk -v a="$t0" -v b="$t1" -v d="$DIR" 'BEGIN {printf "\ndemo finished in %.1f s (files in %s)\n", b - a, d}'
