#!/usr/bin/env bash
# Cluster mode on etcd: how fast a push reaches every node, and what config churn costs.
#
#   benches/cluster.sh                              # 10,000 routes, 3 nodes, defaults below
#   ROUTES=200 CHANGES=2 DURATION=2s benches/cluster.sh    # a smoke run
#   PORTICO_BIN=target/debug/portico ...            # use this binary instead of building release
#   NODES=1 CHANGES=20 WRK=0 benches/cluster.sh     # CPU per change only (no wrk: fine on a busy machine)
#   CHANGE=path ...                                 # each change also gives /probe a new path
#   PIN=1 ...                                       # node 1 alone on CPU 0; etcd, the other nodes,
#                                                   # wrk and every push on CPU 1 (what one node
#                                                   # pays for churn, not what the push tool costs)
#   CHANGE=add ...                                  # each change also adds a route (n1, n2, ...:
#                                                   # between the others in key order)
#   VIA=admin ...                                   # the churn phase changes the route with an
#                                                   # admin API PUT on the last node instead of
#                                                   # `portico push` (how an operator's tooling
#                                                   # changes a running cluster)
#   ROUNDS=3 ...                                    # steady and churn phases interleaved ROUNDS
#                                                   # times; the median ratio is reported
#
# 1. One etcd (own data dir, free loopback ports); a declarative file with ROUTES mock routes
#    plus `/probe` (a mock answering its version) is pushed in one transaction.
# 2. NODES `portico run` processes follow the prefix (one worker each).
# 3. Propagation: CHANGES times, the file changes ONE route (`/probe`'s body) and is pushed;
#    measured from the start of the push until every node answers the new body (polled with
#    curl). Printed per change, then the median and the max. The target: under 1000 ms.
#    Also the CPU time (user + system, from /proc) node 1 spent per change — applying it,
#    plus answering the polls — and what each `portico push` took.
# 4. Throughput on node 1 (wrk, CONNECTIONS connections, DURATION): steady, then while a
#    push changes one route every second. Printed as req/s and the churn/steady ratio.
#
# Everything a run writes stays in BENCH_OUT (default target/bench/cluster-DATE).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ROUTES=${ROUTES:-10000}
NODES=${NODES:-3}
CHANGES=${CHANGES:-10}
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-32}
WRK=${WRK:-1}
CHANGE=${CHANGE:-body}
PIN=${PIN:-0}
VIA=${VIA:-push}
ROUNDS=${ROUNDS:-1}
ADMIN_KEY=bench-admin-key-0123456789abcdef
BENCH_OUT=${BENCH_OUT:-$ROOT/target/bench/cluster-$(date +%Y%m%d-%H%M%S)}
PREFIX=/portico-bench

log() { printf '[cluster %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() {
    log "ERROR: $*"
    exit 1
}
command -v etcd >/dev/null || die "etcd not found: apt-get install etcd-server"
[[ $WRK == 0 ]] || command -v wrk >/dev/null || die "wrk not found: apt-get install wrk"
[[ $CHANGE == body || $CHANGE == path || $CHANGE == add ]] || die "CHANGE is body, path or add"
[[ $VIA == push || $VIA == admin ]] || die "VIA is push or admin"
command -v curl >/dev/null || die "curl not found"

mkdir -p "$BENCH_OUT"
if [[ -z ${PORTICO_BIN:-} ]]; then
    log "building release portico"
    (cd "$ROOT" && cargo build --release --quiet)
    PORTICO_BIN=$ROOT/target/release/portico
fi

PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
now_ms() { echo $(($(date +%s%N) / 1000000)); }
cpu_ms() { # cpu_ms PID: user + system CPU time of a process so far
    awk -v hz="$(getconf CLK_TCK)" '{ print int(($14 + $15) * 1000 / hz) }' "/proc/$1/stat"
}

# --- etcd --------------------------------------------------------------------------------
ETCD_PORT=$(free_port)
PEER_PORT=$(free_port)
ETCD=http://127.0.0.1:$ETCD_PORT
etcd --name bench --data-dir "$BENCH_OUT/etcd" \
    --listen-client-urls "$ETCD" --advertise-client-urls "$ETCD" \
    --listen-peer-urls "http://127.0.0.1:$PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$PEER_PORT" \
    --initial-cluster "bench=http://127.0.0.1:$PEER_PORT" \
    --max-txn-ops $((ROUTES + 100)) --max-request-bytes $((64 * 1024 * 1024)) \
    --quota-backend-bytes $((4 * 1024 * 1024 * 1024)) \
    --logger zap --log-level warn >"$BENCH_OUT/etcd.log" 2>&1 &
PIDS+=($!)
ETCD_PID=$!
for _ in $(seq 100); do
    curl -sf "$ETCD/health" | grep -q '"health":"true"' && break
    sleep 0.1
done
curl -sf "$ETCD/health" | grep -q '"health":"true"' || die "etcd did not start (see $BENCH_OUT/etcd.log)"

# --- the declarative file ------------------------------------------------------------------
FILE=$BENCH_OUT/cluster.yaml
write_file() { # write_file VERSION
    local probe_paths=/probe
    [[ $CHANGE != path ]] || probe_paths="/probe, /probe$1"
    {
        cat <<YAML
gateway:
  listeners: [{ address: "127.0.0.1:1" }]
  config_store: { type: etcd, endpoints: ["$ETCD"], prefix: $PREFIX }
routes:
  - { id: probe, paths: [$probe_paths], plugins: { mock: { body: "v$1" } } }
  - { id: hot, paths: [/hot], plugins: { mock: { body: "hot" } } }
YAML
        if [[ $CHANGE == add ]]; then
            for k in $(seq 1 "$1"); do echo "  - { id: n$k, paths: [/n$k], plugins: { mock: {} } }"; done
        fi
        cat "$BENCH_OUT/routes.yaml"
    } >"$FILE.tmp"
    mv "$FILE.tmp" "$FILE"
}
# The routes that never change, written once: generating 10,000 lines in bash takes ~60 ms of
# CPU, which the churn phase would otherwise take from the nodes every second.
for i in $(seq 1 "$ROUTES"); do
    echo "  - { id: r$i, paths: [\"/svc$i/{id}\", \"/svc$i/static/*\"], plugins: { mock: {} } }"
done >"$BENCH_OUT/routes.yaml"
write_file 0
log "pushing $ROUTES routes"
start=$(now_ms)
"$PORTICO_BIN" push -c "$FILE" | tail -1 >&2
log "initial push: $(($(now_ms) - start)) ms"

# --- nodes -------------------------------------------------------------------------------
NODE_PORTS=()
NODE_PIDS=()
for n in $(seq 1 "$NODES"); do
    port=$(free_port)
    NODE_PORTS+=("$port")
    ADMIN_PORT=$(free_port) # the last node's is the one the churn phase writes to (VIA=admin)
    cat >"$BENCH_OUT/node$n.yaml" <<YAML
gateway:
  listeners: [{ address: "127.0.0.1:$port" }]
  workers: 1
  access_log: { path: "off" }
  admin: { address: "127.0.0.1:$ADMIN_PORT", api_key: $ADMIN_KEY }
  config_store: { type: etcd, endpoints: ["$ETCD"], prefix: $PREFIX }
YAML
    "$PORTICO_BIN" run -c "$BENCH_OUT/node$n.yaml" 2>"$BENCH_OUT/node$n.log" &
    PIDS+=($!)
    NODE_PIDS+=($!)
done
wait_body() { # wait_body PORT BODY TIMEOUT_MS
    local deadline=$(($(now_ms) + $3))
    until [[ $(curl -s "http://127.0.0.1:$1/probe" 2>/dev/null) == "$2" ]]; do
        (($(now_ms) < deadline)) || return 1
        sleep 0.005
    done
}
for port in "${NODE_PORTS[@]}"; do
    wait_body "$port" v0 60000 || die "node on $port did not serve v0 (see $BENCH_OUT/node*.log)"
done
log "$NODES nodes serve $ROUTES routes"
if [[ $PIN == 1 ]]; then
    taskset -apc 0 "${NODE_PIDS[0]}" >/dev/null
    for p in "$ETCD_PID" "${NODE_PIDS[@]:1}"; do taskset -apc 1 "$p" >/dev/null; done
    taskset -pc 1 $$ >/dev/null # this script, so wrk and every push
    log "pinned: node 1 on CPU 0; etcd, the other nodes, wrk and push on CPU 1"
fi

# --- propagation -------------------------------------------------------------------------
times=()
node_cpu_before=$(cpu_ms "${NODE_PIDS[0]}")
TIMEFORMAT='%U %S'
for c in $(seq 1 "$CHANGES"); do
    write_file "$c"
    start=$(now_ms)
    { time "$PORTICO_BIN" push -c "$FILE" >/dev/null; } 2>>"$BENCH_OUT/push-cpu.txt"
    pushed=$(($(now_ms) - start))
    for port in "${NODE_PORTS[@]}"; do
        wait_body "$port" "v$c" 10000 || die "node on $port never served v$c"
    done
    took=$(($(now_ms) - start))
    times+=("$took")
    log "change $c: push ${pushed} ms, on every node after ${took} ms"
done
node_cpu=$((($(cpu_ms "${NODE_PIDS[0]}") - node_cpu_before) / CHANGES))
push_cpu=$(awk '{ s += $1 + $2 } END { printf "%d", s * 1000 / NR }' "$BENCH_OUT/push-cpu.txt")
sorted=$(printf '%s\n' "${times[@]}" | sort -n)
median=$(echo "$sorted" | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
max=$(echo "$sorted" | tail -1)

# --- throughput: steady vs one change a second --------------------------------------------
change() { # change VERSION: one route changed, the way VIA says
    if [[ $VIA == admin ]]; then
        curl -s -o /dev/null -X PUT -H "X-API-Key: $ADMIN_KEY" -H 'content-type: application/json' \
            --data "{\"paths\": [\"/probe\"], \"plugins\": {\"mock\": {\"body\": \"v$1\"}}}" \
            "http://127.0.0.1:$ADMIN_PORT/admin/routes/probe" || true
    else
        write_file "$1"
        "$PORTICO_BIN" push -c "$FILE" >/dev/null 2>&1 || true
    fi
}
steady=- churn=- ratio=- capacity=-
if [[ $WRK != 0 ]]; then
    URL=http://127.0.0.1:${NODE_PORTS[0]}/hot
    rps() { awk '/Requests\/sec/ {print $2}' "$1"; }
    reqs() { awk '/requests in/ {print $1}' "$1"; }
    # run_wrk FILE: wrk on node 1; prints node 1's CPU µs per request meanwhile.
    run_wrk() {
        local c0 c1
        c0=$(cpu_ms "${NODE_PIDS[0]}")
        wrk -t1 -c"$CONNECTIONS" -d"$DURATION" "$URL" >"$1"
        c1=$(cpu_ms "${NODE_PIDS[0]}")
        awk -v c=$((c1 - c0)) -v n="$(reqs "$1")" 'BEGIN { printf "%.2f", c * 1000 / n }'
    }
    wrk -t1 -c"$CONNECTIONS" -d2s "$URL" >/dev/null # warm-up
    c=$CHANGES
    for r in $(seq 1 "$ROUNDS"); do
        us_s=$(run_wrk "$BENCH_OUT/wrk-steady-$r.txt")
        (
            v=$((c + r * 1000))
            while true; do
                v=$((v + 1))
                change "$v"
                sleep 1
            done
        ) &
        CHURN=$!
        PIDS+=("$CHURN")
        us_c=$(run_wrk "$BENCH_OUT/wrk-churn-$r.txt")
        kill "$CHURN" 2>/dev/null || true
        wait "$CHURN" 2>/dev/null || true
        s_r=$(rps "$BENCH_OUT/wrk-steady-$r.txt") c_r=$(rps "$BENCH_OUT/wrk-churn-$r.txt")
        printf '%s %s %s %s\n' "$s_r" "$c_r" "$us_s" "$us_c" >>"$BENCH_OUT/rounds.txt"
        log "round $r: steady $s_r req/s ($us_s µs/req), one change a second $c_r req/s ($us_c µs/req)"
    done
    # Medians over the rounds; node 1's CPU per request in each phase says what churn costs
    # the node itself, whatever else (the push command, etcd, wrk) the shared machine ran.
    med() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
    steady=$(awk '{print $1}' "$BENCH_OUT/rounds.txt" | med)
    churn=$(awk '{print $2}' "$BENCH_OUT/rounds.txt" | med)
    us_steady=$(awk '{print $3}' "$BENCH_OUT/rounds.txt" | med)
    us_churn=$(awk '{print $4}' "$BENCH_OUT/rounds.txt" | med)
    ratio=$(awk '{printf "%.3f\n", $2 / $1}' "$BENCH_OUT/rounds.txt" | med)
    capacity=$(awk '{printf "%.3f\n", $3 / $4}' "$BENCH_OUT/rounds.txt" | med)
    ratios=$(awk '{printf "%.3f ", $2 / $1}' "$BENCH_OUT/rounds.txt")
fi
applied=$(grep -c 'config applied' "$BENCH_OUT/node1.log" || true)
us_steady=${us_steady:--} us_churn=${us_churn:--}

{
    echo "| routes | nodes | push → every node, median | max | churn via | req/s steady | req/s, one change/s | ratio |"
    echo "|---|---|---|---|---|---|---|---|"
    printf '| %s | %s | %s ms | %s ms | %s | %s | %s | %s |\n' "$ROUTES" "$NODES" "$median" "$max" "$VIA" "$steady" "$churn" "$ratio"
    echo
    echo "medians over $ROUNDS interleaved round(s) of $DURATION each; per-round ratios: ${ratios:--}"
    echo "node 1 CPU per request: ${us_steady} µs steady, ${us_churn} µs with one change a second (capacity ratio $capacity)"
    echo "CPU per one-route change: node 1 ${node_cpu} ms (apply + answering the polls), \`portico push\` ${push_cpu} ms"
    echo "node 1 applied $applied configs; raw output in $BENCH_OUT"
} | tee "$BENCH_OUT/summary.md"
