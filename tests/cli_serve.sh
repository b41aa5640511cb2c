#!/usr/bin/env bash
# cli_serve.sh - `rnnrec serve` as a process: --port 0 prints the port it
# picked, --log-level info logs one line per request, SIGHUP reloads (a bad
# file keeps the old model), SIGTERM drains a request in flight and exits 0,
# and the answers equal `rnnrec recommend` run offline on the same items.
# All traffic goes to 127.0.0.1; every wait is bounded.
set -u
BIN=${RR_BIN:?RR_BIN must point to the rnnrec binary}
T=$(mktemp -d /tmp/rr_cli_serve.XXXXXX)
PID=
fail=0 pass=0
cleanup() {
    [ -n "$PID" ] && kill -KILL "$PID" 2>/dev/null
    rm -rf "$T"
}
trap cleanup EXIT
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }
check() { if eval "$1"; then ok; else bad "$2"; fi; }

"$BIN" synth -q -n 6000 --items 300 --seed 3 -o "$T/ev.tsv" || { echo "synth failed"; exit 1; }
"$BIN" train --model pop -j 1 -o "$T/pop.rr" "$T/ev.tsv" >/dev/null 2>&1 || { echo "train pop failed"; exit 1; }
# A sequence model when it trains here (GRU), else session popularity.
if "$BIN" train --model gru --layers 16 --epochs 1 --batch-size 16 --n-sample 32 -j 1 \
        -o "$T/seq.rr" "$T/ev.tsv" >/dev/null 2>&1; then kind=gru
else "$BIN" train --model spop -j 1 -o "$T/seq.rr" "$T/ev.tsv" >/dev/null 2>&1 || exit 1; kind=spop; fi
echo "serving a $kind model"
cp "$T/seq.rr" "$T/live.rr"

"$BIN" serve "$T/live.rr" --port 0 --threads 2 --batchers 1 --log-level info \
    --drain-seconds 5 2>"$T/log" &
PID=$!
port=
for _ in $(seq 1 100); do
    port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$T/log" | head -1)
    [ -n "$port" ] && break
    sleep 0.1
done
check '[ -n "$port" ]' "no 'listening on 127.0.0.1:PORT' line: $(cat "$T/log")"
[ -n "$port" ] || { echo "0 passed, $fail failed"; exit 1; }
U="http://127.0.0.1:$port"
C="curl -s --max-time 10"

check '[ "$($C -o /dev/null -w "%{http_code}" $U/healthz)" = 200 ]' "healthz"
check '$C $U/readyz | grep -q "\"ready\""' "readyz"
check '$C $U/v1/model | grep -q "\"kind\":\"$kind\""' "model kind"

# The first items of the first session, as the server and offline see them.
items=$(awk -F'\t' 'NR>1 && $1==s {print $2} NR==2 {s=$1; print $2}' "$T/ev.tsv" | head -3 | paste -sd, -)
json_items=$(echo "$items" | sed 's/\([^,]*\)/"\1"/g')
$C -X POST -d "{\"items\": [$json_items], \"k\": 5}" "$U/v1/recommend" >"$T/r1.json"
check 'grep -q "\"items\":\[{\"id\"" "$T/r1.json"' "recommend: $(cat "$T/r1.json")"
server_ids=$(grep -o '"id":"[^"]*"' "$T/r1.json" | sed 's/"id":"\(.*\)"/\1/' | paste -sd' ' -)
"$BIN" recommend "$T/live.rr" --items "$items" -k 5 --json >"$T/off.json" 2>&1
offline_ids=$(grep -o '"item": "[^"]*"' "$T/off.json" | sed 's/"item": "\(.*\)"/\1/' | paste -sd' ' -)
check '[ -n "$server_ids" ] && [ "$server_ids" = "$offline_ids" ]' \
    "server top-5 '$server_ids' != offline '$offline_ids'"

# A live session fed one event at a time equals the stateless answer.
first=${items%%,*}
rest=${items#*,}
$C -X POST -d "{\"items\": [\"$first\"]}" "$U/v1/sessions/abc/events?k=5" >/dev/null
for it in ${rest//,/ }; do
    $C -X POST -d "{\"items\": [\"$it\"]}" "$U/v1/sessions/abc/events?k=5" >"$T/s.json"
done
sess_ids=$(grep -o '"id":"[^"]*"' "$T/s.json" | paste -sd' ' -)
check '[ "$sess_ids" = "$(grep -o "\"id\":\"[^\"]*\"" "$T/r1.json" | paste -sd" " -)" ]' "session != stateless"

# SIGHUP: a corrupt file keeps the old model; a good one bumps the generation.
head -c 100 "$T/seq.rr" >"$T/live.tmp" && mv "$T/live.tmp" "$T/live.rr"
kill -HUP $PID
for _ in $(seq 1 50); do grep -q "reload failed" "$T/log" && break; sleep 0.1; done
check 'grep -q "reload failed, previous model kept" "$T/log"' "bad reload not reported"
check '$C $U/v1/model | grep -q "\"generation\":1"' "generation changed after a bad reload"
check '[ "$($C -o /dev/null -w "%{http_code}" -X POST -d "{\"items\": []}" $U/v1/recommend)" = 200 ]' "serving after bad reload"
cp "$T/pop.rr" "$T/live.tmp" && mv "$T/live.tmp" "$T/live.rr"
kill -HUP $PID
for _ in $(seq 1 50); do grep -q "model reloaded" "$T/log" && break; sleep 0.1; done
check '$C $U/v1/model | grep -q "\"kind\":\"pop\",\"generation\":2"' "good reload: $($C $U/v1/model | head -c 200)"
check '$C $U/metrics | grep -q "^rnnrec_model_generation 2"' "metrics generation"
check '[ "$($C -o /dev/null -w "%{http_code}" -X POST $U/admin/reload)" = 200 ]' "admin reload"

# One line per request at --log-level info: method, path, status, microseconds.
check 'grep -Eq "^POST /v1/recommend 200 [0-9]+us$" "$T/log"' "request log line: $(tail -3 "$T/log")"

# SIGTERM while a request body is still uploading: it completes, exit 0.
body="{\"items\": [$json_items], \"k\": 3, \"exclude\": [$(seq -s, 1 300 | sed 's/\([0-9]*\)/"x\1"/g')]}"
printf '%s' "$body" >"$T/body.json"
$C --limit-rate 1500 -X POST --data-binary @"$T/body.json" -o "$T/slow.json" -w "%{http_code}" \
    "$U/v1/recommend" >"$T/slow.code" &
CPID=$!
sleep 1
kill -TERM $PID
wait $PID
rc=$?
PID=
wait $CPID
check '[ $rc -eq 0 ]' "serve exit code $rc after SIGTERM"
check '[ "$(cat "$T/slow.code")" = 200 ]' "in-flight request during drain: $(cat "$T/slow.code") $(head -c 200 "$T/slow.json")"
check 'grep -q "draining" "$T/log" && grep -q "stopped" "$T/log"' "drain log"
check '! curl -s --max-time 2 $U/healthz >/dev/null' "still accepting after SIGTERM"

# Usage errors.
"$BIN" serve >/dev/null 2>&1; check '[ $? -eq 2 ]' "no MODEL: usage error"
"$BIN" serve "$T/nonexistent.rr" --port 0 >/dev/null 2>&1; check '[ $? -eq 1 ]' "missing model: runtime error"
"$BIN" serve "$T/seq.rr" --log-level loud >/dev/null 2>&1; check '[ $? -eq 2 ]' "bad log level"
"$BIN" serve "$T/seq.rr" --screen-bits 4 >/dev/null 2>&1; check '[ $? -eq 2 ]' "bad --screen-bits"

echo "cli_serve: $pass passed, $fail failed"
[ $fail -eq 0 ]
