#!/usr/bin/env bash
# bench_serve.sh - throughput and latency of `rnnrec serve` under wrk.
#
#   bash bench/bench_serve.sh [BUILD_DIR] [MODEL]
#
# Without MODEL it builds one: a GRU (100 units, tied embedding) on a
# synthetic clickstream of about 43k items (`rnnrec synth`), or on the
# diginetica-srgnn train split when RR_BENCH_DIGINETICA=1 and the data is
# there.  Then, against one server on 127.0.0.1 (only loopback traffic):
#   1. stateless POST /v1/recommend, sessions of 5 items, k=20
#   2. POST /v1/sessions/{id}/events with one new item per request
#   3. run 1 again with 500 slow connections trickling header bytes
# each for DURATION seconds (30) with CONNS connections (64) and wrk
# THREADS (2), REPEATS times (1; with more, the best and the range of each
# test are printed at the end).  Then, for each count in SWEEP (e.g.
# "1 4 16 32"), stateless again at that many connections for SWEEP_DURATION
# seconds (10): by Little's law the mean latency at C connections is
# C / throughput, so the p99 at 64 connections is bounded below by the
# throughput, and the sweep shows the latency a lighter load gets.
# Then, for each rate in RATES (requests/s in all, "5000 10000"; empty for
# none), stateless again at CONNS connections for DURATION seconds, each
# connection waiting a random think time (exponential, mean CONNS / rate;
# wrk's delay(), whole milliseconds) after every answer: a fixed number of
# clients offering about that load instead of as much as the server takes,
# so the latency is the service's at that load, not the queue of a
# saturated closed loop.  The rate printed is the one achieved.
# Reports p50/p90/p99, req/s, errors (socket errors + non-2xx), the
# server's CPU time per request (all threads, user + system), the load
# average when the run started (the machine may be shared), and the
# server's peak RSS (VmHWM).  The server is stopped at the end.
# SERVER_THREADS (1) HTTP workers, BATCHERS (1), SCREEN_BITS (8; 16, or
# 0 for the exact engine: the server's --screen-bits); the threads each batcher
# splits a batch over come from OMP_NUM_THREADS when it is set, else the
# server's default (half the cores per batcher, at least 1).
set -u
BUILD=${1:-build}
MODEL=${2:-}
BIN=$BUILD/rnnrec
DURATION=${DURATION:-30}
CONNS=${CONNS:-64}
THREADS=${THREADS:-2}
SERVER_THREADS=${SERVER_THREADS:-1}
BATCHERS=${BATCHERS:-1}
SCREEN_BITS=${SCREEN_BITS:-8}
SLOW=${SLOW:-500}
REPEATS=${REPEATS:-1}
SWEEP=${SWEEP:-}
RATES=${RATES-5000 10000}
SWEEP_DURATION=${SWEEP_DURATION:-10}
[ -x "$BIN" ] || { echo "bench_serve: $BIN not built" >&2; exit 1; }
command -v wrk >/dev/null || { echo "bench_serve: wrk missing (apt-get install wrk)" >&2; exit 1; }
W=${BENCH_DIR:-$(mktemp -d /tmp/rr_bench_serve.XXXXXX)}
mkdir -p "$W"
SPID= SLOWPID=
cleanup() {
    [ -n "$SLOWPID" ] && kill "$SLOWPID" 2>/dev/null
    if [ -n "$SPID" ]; then kill -TERM "$SPID" 2>/dev/null; wait "$SPID" 2>/dev/null; fi
}
trap cleanup EXIT

# ---- model
if [ -z "$MODEL" ]; then
    MODEL=$W/gru.rr
    if [ ! -s "$MODEL" ]; then
        data=$W/events.tsv
        if [ "${RR_BENCH_DIGINETICA:-0}" = 1 ] && [ -f ../shared/data/diginetica-srgnn/train.tsv.gz ]; then
            data=../shared/data/diginetica-srgnn/train.tsv.gz
        else
            "$BIN" synth -q -n 180000 --items 43000 --zipf 0.2 --seed 5 -o "$data" || exit 1
        fi
        echo "training a GRU on $data ..." >&2
        "$BIN" train --model gru --layers 100 --epochs 1 -j 2 -o "$MODEL" "$data" >"$W/train.log" 2>&1 ||
            { tail -3 "$W/train.log" >&2; exit 1; }
    fi
fi
n_items=$("$BIN" info "$MODEL" | awk '/^items:/ {print $2}')
echo "model: $MODEL ($("$BIN" info "$MODEL" | awk '/^kind:/ {print $2}'), $n_items items)"

# Item ids to draw sessions from: the model's own vocabulary, via the
# popularity answer of a huge k is not possible (k <= 1000), so read them
# from the training events when they are at hand, else use 1..n.
ids=$W/ids.txt
if [ -f "$W/events.tsv" ]; then
    awk -F'\t' 'NR > 1 {print $2}' "$W/events.tsv" | sort -u | head -20000 >"$ids"
else
    seq 1 20000 >"$ids"
fi

# ---- Lua scripts
cat >"$W/stateless.lua" <<'EOF'
-- POST /v1/recommend with 5-item sessions drawn from ids.txt
local ids = {}
for line in io.lines(os.getenv("IDS")) do ids[#ids + 1] = line end
local bodies = {}
math.randomseed(7)
for i = 1, 2000 do
  local s = {}
  for j = 1, 5 do s[j] = '"' .. ids[math.random(#ids)] .. '"' end
  bodies[i] = '{"items": [' .. table.concat(s, ",") .. '], "k": 20}'
end
local n = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  n = n + 1
  return wrk.format(nil, "/v1/recommend", nil, bodies[n % #bodies + 1])
end
EOF
cat >"$W/events.lua" <<'EOF'
-- POST /v1/sessions/{id}/events, one new item per request; each wrk thread
-- cycles through its own 4096 sessions, so no two requests in flight share
-- a session (at most CONNS are in flight).
local ids = {}
for line in io.lines(os.getenv("IDS")) do ids[#ids + 1] = line end
local counter = 0

setup = function(thread) counter = counter + 1; thread:set("tid", counter) end
local n = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  n = n + 1
  local sid = "t" .. tostring(tid or 0) .. "-" .. tostring(n % 4096)
  local body = '{"items": ["' .. ids[(n * 7919) % #ids + 1] .. '"]}'
  return wrk.format(nil, "/v1/sessions/" .. sid .. "/events?k=20", nil, body)
end
EOF
cat >"$W/paced.lua.in" <<'EOF'
-- think time: exponential, mean MEAN_MS, drawn after every answer
local mean_ms = tonumber(os.getenv("MEAN_MS"))
delay = function()
  return math.floor(-mean_ms * math.log(1 - math.random()))
end
EOF
cat >>"$W/stateless.lua" <<'EOF'
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT p50_us=%d p90_us=%d p99_us=%d rps=%.0f requests=%d errors=%d non2xx=%d\n",
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    summary.requests / (summary.duration / 1e6), summary.requests,
    e.connect + e.read + e.write + e.timeout + e.status, e.status))
end
EOF
sed -n '/^done = function/,$p' "$W/stateless.lua" >>"$W/events.lua"

# ---- slow clients: connect, send part of a request line, then a byte a
# second; reconnect when the server drops them (its read deadline).
cat >"$W/slow.py" <<'EOF'
import os, socket, sys, time
port, n, secs = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
end = time.time() + secs
socks = []
drops = 0
def dial():
    s = socket.socket()
    s.setblocking(True)
    s.connect(("127.0.0.1", port))
    s.send(b"POST /v1/recommend HTTP/1.1\r\nX-Slow: ")
    s.setblocking(False)
    return s
while len(socks) < n:
    socks.append(dial())
while time.time() < end:
    time.sleep(1.0)
    for i, s in enumerate(socks):
        try:
            s.send(b"a")
            s.recv(1)          # data or EOF means the server gave up on us
            raise OSError
        except BlockingIOError:
            pass
        except OSError:
            drops += 1
            s.close()
            socks[i] = dial()
print("slow clients: %d connections held, %d drops/reconnects" % (n, drops))
EOF

# ---- server
start_server() {
    "$BIN" serve "$MODEL" --port 0 --threads "$SERVER_THREADS" --batchers "$BATCHERS" \
        --screen-bits "$SCREEN_BITS" --max-connections 2048 2>"$W/server.log" &
    SPID=$!
    PORT=
    for _ in $(seq 1 600); do
        PORT=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$W/server.log" | head -1)
        [ -n "$PORT" ] && break
        kill -0 "$SPID" 2>/dev/null || break
        sleep 0.1
    done
    [ -n "$PORT" ] || { echo "server did not start: $(cat "$W/server.log")" >&2; exit 1; }
}
start_server
export IDS=$ids
ROUNDS=$W/rounds.txt
: >"$ROUNDS"
cpu_ticks() { awk '{print $14 + $15}' "/proc/$SPID/stat"; }
run() { # tag name script [conns] [duration]
    local c=${4:-$CONNS} d=${5:-$DURATION} out res t0 t1 n load
    load=$(cut -d' ' -f1-3 /proc/loadavg)
    t0=$(cpu_ticks)
    local t=$THREADS
    [ "$c" -lt "$t" ] && t=$c # wrk wants a connection per thread
    out=$(wrk -t"$t" -c"$c" -d"${d}s" --timeout 5s -s "$W/$3" "http://127.0.0.1:$PORT" 2>&1)
    t1=$(cpu_ticks)
    res=$(echo "$out" | grep '^RESULT' | sed 's/^RESULT //')
    [ -n "$res" ] || { echo "$out" >&2; return; }
    n=$(echo "$res" | sed 's/.*requests=\([0-9]*\).*/\1/')
    # server CPU per request (user + system, all threads), in us
    res="$res server_cpu_us=$(( (t1 - t0) * 1000000 / $(getconf CLK_TCK) / (n > 0 ? n : 1) ))"
    echo "$2: $res loadavg=[$load]"
    echo "$1 $res" >>"$ROUNDS"
}
curl -s --max-time 5 -X POST -d '{"items": []}' "http://127.0.0.1:$PORT/v1/recommend" >/dev/null
for round in $(seq 1 "$REPEATS"); do
    [ "$REPEATS" -gt 1 ] && echo "--- round $round of $REPEATS"
    run stateless "stateless /v1/recommend (5 items, k=20)" stateless.lua
    run events "live sessions /v1/sessions/{id}/events (1 item)" events.lua
    python3 "$W/slow.py" "$PORT" "$SLOW" $((DURATION + 4)) >"$W/slow.out" 2>&1 &
    SLOWPID=$!
    sleep 2
    run slow "stateless with $SLOW slow connections" stateless.lua
    wait "$SLOWPID" 2>/dev/null
    SLOWPID=
    cat "$W/slow.out"
done
if [ "$REPEATS" -gt 1 ]; then
    # best and spread of each test over the rounds; the slow-connection
    # p99 against the stateless p99 of the same round
    awk '{ t = $1; for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
           r[t]++; rps = v["rps"]; p99 = v["p99_us"]
           if (!(t in best) || rps > best[t]) best[t] = rps
           if (!(t in lo) || rps < lo[t]) lo[t] = rps
           if (!(t in plo) || p99 < plo[t]) plo[t] = p99
           if (!(t in phi) || p99 > phi[t]) phi[t] = p99
           if (t == "stateless") sp = p99
           if (t == "slow" && sp > 0) { ratio = p99 / sp; if (ratio > rmax) rmax = ratio; if (rmin == "" || ratio < rmin) rmin = ratio } }
         END { for (t in best) printf "%s over %d rounds: best %d req/s, range %d..%d req/s, p99 %d..%d us\n", t, r[t], best[t], lo[t], best[t], plo[t], phi[t]
               if (rmin != "") printf "p99 with slow connections / p99 without (same round): %.2f..%.2f\n", rmin, rmax }' "$ROUNDS"
fi
for c in $SWEEP; do
    run "sweep$c" "stateless at $c connections" stateless.lua "$c" "$SWEEP_DURATION"
done
cat "$W/stateless.lua" "$W/paced.lua.in" >"$W/paced.lua"
for r in $RATES; do
    MEAN_MS=$(awk -v c="$CONNS" -v r="$r" 'BEGIN {printf "%.3f", 1000 * c / r}')
    export MEAN_MS
    run "paced$r" "stateless paced to ~$r req/s at $CONNS connections" paced.lua
done
curl -s --max-time 5 "http://127.0.0.1:$PORT/metrics" >"$W/metrics.txt"
awk '/^rnnrec_batch_size_(sum|count)/ {v[$1]=$2} END {if (v["rnnrec_batch_size_count"] > 0)
     printf "mean batch: %.1f states per rr_recommend call\n", v["rnnrec_batch_size_sum"] / v["rnnrec_batch_size_count"]}' "$W/metrics.txt"
awk '/^rnnrec_batch_wait_seconds_(sum|count)/ {v[$1]=$2} END {if (v["rnnrec_batch_wait_seconds_count"] > 0)
     printf "mean batcher queue wait: %.0f us\n", 1e6 * v["rnnrec_batch_wait_seconds_sum"] / v["rnnrec_batch_wait_seconds_count"]}' "$W/metrics.txt"
awk '/^rnnrec_batch_score_seconds_(sum|count)/ {v[$1]=$2} END {if (v["rnnrec_batch_score_seconds_count"] > 0)
     printf "mean rr_recommend call: %.0f us\n", 1e6 * v["rnnrec_batch_score_seconds_sum"] / v["rnnrec_batch_score_seconds_count"]}' "$W/metrics.txt"
grep -E '^rnnrec_(sessions_live|session_memory_bytes|connections_dropped_total) ' "$W/metrics.txt"
echo "server peak RSS: $(awk '/VmHWM/ {print $2, $3}' /proc/$SPID/status)"
kill -TERM "$SPID"
wait "$SPID"
echo "server exit code: $?"
SPID=
