#!/usr/bin/env bash
# accuracy.sh - rnnrec's GRU against the official GRU4Rec numbers measured
# on this machine, over several seeds.
#
#   scripts/accuracy.sh [SEED ...]          (default seeds: 1 2 3)
#
# Environment: RR_BIN (default build/rnnrec), RR_SHARED_DATA (default
# ../shared/data next to the checkout), THREADS (default 2), DATASETS
# (default "yoochoose diginetica").
#
#   yoochoose   yoochoose-100k train_full / test, preset rsc15
#   diginetica  diginetica-srgnn events.tsv.gz split by session id:
#               train 1..186670, test 186671..202633, preset diginetica
# Every run: 10 epochs, then `rnnrec eval --cutoffs 20` (conservative
# ties, every event after a session's first is a target).  Prints one row
# per run (recall@20, mrr@20, training time, peak RSS) and the mean per
# dataset with its ratio to the reference; the target is >= 98.5 %.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
bin=${RR_BIN:-$here/build/rnnrec}
data=${RR_SHARED_DATA:-$here/../shared/data}
threads=${THREADS:-2}
datasets=${DATASETS:-yoochoose diginetica}
seeds=("$@")
[ ${#seeds[@]} -gt 0 ] || seeds=(1 2 3)

[ -x "$bin" ] || { echo "accuracy.sh: no rnnrec binary at $bin (set RR_BIN)" >&2; exit 2; }
[ -d "$data" ] || { echo "accuracy.sh: SKIP: no shared data at $data (set RR_SHARED_DATA)" >&2; exit 0; }

work=$(mktemp -d /tmp/rr_accuracy.XXXXXX)
trap 'rm -rf "$work"' EXIT

# reference recall@20 / mrr@20 of the official GRU4Rec (hidasib/
# GRU4Rec_PyTorch_Official) measured on this machine
declare -A ref_recall=([yoochoose]=0.6804 [diginetica]=0.5411)
declare -A ref_mrr=([yoochoose]=0.3557 [diginetica]=0.1823)
declare -A preset=([yoochoose]=rsc15 [diginetica]=diginetica)

prepare() { # dataset -> sets train, test
    case $1 in
    yoochoose)
        train=$data/yoochoose-100k/yoochoose-clicks-100k_train_full.txt
        test=$data/yoochoose-100k/yoochoose-clicks-100k_test.txt ;;
    diginetica)
        train=$work/dig_train.tsv
        test=$work/dig_test.tsv
        if [ ! -s "$train" ]; then
            gzip -dc "$data/diginetica-srgnn/events.tsv.gz" |
                awk -F'\t' -v tr="$train" -v te="$test" '
                    NR == 1 { print > tr; print > te; next }
                    $1 + 0 <= 186670 { print > tr; next }
                    { print > te }'
        fi ;;
    *) echo "accuracy.sh: unknown dataset $1" >&2; exit 2 ;;
    esac
    [ -s "$train" ] && [ -s "$test" ] || { echo "accuracy.sh: SKIP $1: data missing" >&2; return 1; }
}

json_num() { # key json
    sed -n "s/.*\"$1\": *\([0-9.eE+-]*\).*/\1/p" <<<"$2"
}

printf '%-11s %6s %10s %10s %9s %9s\n' dataset seed recall@20 mrr@20 train_s peak_MB
for ds in $datasets; do
    prepare "$ds" || continue
    sum_r=0 sum_m=0 n=0
    for seed in "${seeds[@]}"; do
        model=$work/$ds.$seed.rr
        /usr/bin/time -f '%e %M' -o "$work/time" \
            "$bin" train -m gru --preset "${preset[$ds]}" --epochs 10 --seed "$seed" -j "$threads" -v 0 -q \
            "$train" -o "$model"
        read -r secs kb <"$work/time"
        out=$("$bin" eval --cutoffs 20 --ties conservative --json -t "$threads" "$model" "$test")
        r=$(json_num 'recall@20' "$out")
        m=$(json_num 'mrr@20' "$out")
        printf '%-11s %6s %10.4f %10.4f %9.1f %9.1f\n' "$ds" "$seed" "$r" "$m" "$secs" "$(awk -v k="$kb" 'BEGIN{print k/1024}')"
        sum_r=$(awk -v a="$sum_r" -v b="$r" 'BEGIN{print a+b}')
        sum_m=$(awk -v a="$sum_m" -v b="$m" 'BEGIN{print a+b}')
        n=$((n + 1))
        rm -f "$model"
    done
    awk -v ds="$ds" -v sr="$sum_r" -v sm="$sum_m" -v n="$n" -v rr="${ref_recall[$ds]}" -v rm="${ref_mrr[$ds]}" 'BEGIN {
        r = sr / n; m = sm / n
        printf "%-11s %6s %10.4f %10.4f   vs GRU4Rec %.4f / %.4f: %.1f%% / %.1f%% %s\n", ds, "mean", r, m, rr, rm,
               100 * r / rr, 100 * m / rm, (r >= 0.985 * rr && m >= 0.985 * rm) ? "PASS" : "FAIL"
    }'
done
