#!/usr/bin/env bash
# Portico vs nginx in front of the same upstream, on the same core, in the same run.
#
#   benches/run.sh                         # everything, defaults below
#   ROUNDS=3 DURATION=3s SCENARIOS=plain benches/run.sh
#   PROXIES="nginx nginx-fwd" benches/run.sh  # only the nginx baselines (no Portico build)
#   PORTICO_BIN=target/debug/portico ...   # use this binary instead of building release
#   SCENARIOS="https h2" benches/run.sh     # TLS keep-alive (wrk) and HTTP/2 (h2load)
#
# One upstream (nginx answering 200 "ok", 1 worker) and wrk share core LOAD_CPU; each proxy
# (nginx `proxy_pass` with upstream keep-alive, 1 worker; Portico with `gateway.workers: 1`)
# is pinned to core PROXY_CPU. For every round and scenario, all proxies are measured back
# to back (order rotating), so slow drifts of a shared machine hit them alike. Per
# measurement: req/s, p50/p99 latency (wrk --latency, or h2load's per-request log for HTTP/2
# scenarios), and the proxy's CPU time per request
# from /proc/PID/stat (utime+stime of the process and its children). The report gives
# medians over rounds and paired Portico/nginx ratios. See BENCHMARKS.md.
#
# Scenarios are functions in benches/scenarios.sh. Everything a run writes (configs, logs,
# raw wrk output, results.tsv, summary.md) stays in BENCH_OUT (default target/bench/DATE).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_DIR=$ROOT/benches

ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-5s}
WARMUP=${WARMUP:-2s}
CONNECTIONS=${CONNECTIONS:-32}
# HTTP/2 scenarios (h2load): clients x streams per client = requests in flight.
H2_CLIENTS=${H2_CLIENTS:-8}
H2_STREAMS=${H2_STREAMS:-4}
SCENARIOS=${SCENARIOS:-"plain routes10k"}
# nginx: bare proxy_pass (the issue's baseline); nginx-fwd: nginx also setting the headers the
# spec makes Portico set (Host passed, X-Forwarded-For/Proto/Host, X-Request-Id), i.e. the
# same work; portico: the gateway under test.
PROXIES=${PROXIES:-"nginx nginx-fwd portico"}
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
STARTUP_TIMEOUT=${STARTUP_TIMEOUT:-60} # seconds for a process to answer its first request
BENCH_OUT=${BENCH_OUT:-$ROOT/target/bench/$(date +%Y%m%d-%H%M%S)}

log() { printf '[bench %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() {
    log "ERROR: $*"
    exit 1
}

# --- setup -------------------------------------------------------------------------------

ensure_pkg() { # ensure_pkg COMMAND [DEBIAN_PACKAGE]
    local cmd=$1 pkg=${2:-$1}
    command -v "$cmd" >/dev/null 2>&1 && return 0
    local sudo=()
    [[ $(id -u) -eq 0 ]] || sudo=(sudo)
    log "installing $pkg"
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get install -y "$pkg" >/dev/null ||
        { "${sudo[@]}" apt-get update >/dev/null && "${sudo[@]}" apt-get install -y "$pkg" >/dev/null; } ||
        die "could not install $pkg"
    command -v "$cmd" >/dev/null 2>&1 || die "$pkg installed but $cmd not found"
}

# Many distributions keep nginx in /usr/sbin, outside a normal user's PATH.
PATH=$PATH:/usr/sbin:/sbin
ensure_pkg nginx
ensure_pkg wrk
ensure_pkg taskset util-linux
ensure_pkg curl
ensure_pkg python3
ensure_pkg openssl
# Scenarios with rate-limit's `policy: redis` share one redis-server, started below.
want_redis=0
[[ " $SCENARIOS " == *" ratelimit_redis "* ]] && want_redis=1
((want_redis)) && { ensure_pkg redis-server; ensure_pkg redis-cli redis-tools; }

if (($(nproc) < 2)); then
    log "WARNING: fewer than 2 CPUs: proxy, upstream and wrk all share CPU 0"
    PROXY_CPU=0 LOAD_CPU=0
fi

want_portico=0
[[ " $PROXIES " == *" portico "* ]] && want_portico=1
if ((want_portico)); then
    if [[ -z ${PORTICO_BIN:-} ]]; then
        log "building portico (release profile, fat LTO: takes a while)"
        (cd "$ROOT" && cargo build --release --locked --bin portico)
        PORTICO_BIN=$ROOT/target/release/portico
    fi
    [[ $PORTICO_BIN == /* ]] || PORTICO_BIN=$ROOT/$PORTICO_BIN
    [[ -x $PORTICO_BIN ]] || die "no portico binary at $PORTICO_BIN"
fi

mkdir -p "$BENCH_OUT"/{tmp,wrk,tls}
BENCH_OUT=$(cd "$BENCH_OUT" && pwd)
log "output in $BENCH_OUT"

# One certificate (ECDSA P-256, for 127.0.0.1 and bench.test) that every TLS listener, nginx's
# and Portico's, serves.
BENCH_TLS_CERT=$BENCH_OUT/tls/cert.pem
BENCH_TLS_KEY=$BENCH_OUT/tls/key.pem
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 -subj /CN=bench.test \
    -addext "subjectAltName=DNS:bench.test,IP:127.0.0.1" \
    -keyout "$BENCH_TLS_KEY" -out "$BENCH_TLS_CERT" >"$BENCH_OUT/tls/openssl.log" 2>&1 ||
    { cat "$BENCH_OUT/tls/openssl.log" >&2; die "openssl could not make the bench certificate"; }
CLK_TCK=$(getconf CLK_TCK)

# --- processes ---------------------------------------------------------------------------

PIDS=()
NAMES=()

cleanup() {
    local i pid deadline
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        pid=${PIDS[i]}
        kill -TERM "$pid" 2>/dev/null || continue
        deadline=$((SECONDS + 10))
        while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.05; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    PIDS=()
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

start_bg() { # start_bg NAME CPU LOGFILE CMD... ; sets LAST_PID
    local name=$1 cpu=$2 logfile=$3
    shift 3
    taskset -c "$cpu" "$@" >"$logfile" 2>&1 &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
    NAMES+=("$name")
    log "started $name (pid $LAST_PID, cpu $cpu): $*"
}

is_running() { # not gone and not a zombie (a dead child we have not reaped yet)
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [[ ${stat:0:1} != Z ]]
}

check_alive() { # check_alive PID NAME LOGFILE
    if ! is_running "$1"; then
        log "$2 (pid $1) died; last lines of $3:"
        tail -n 30 "$3" >&2 || true
        die "$2 is not running"
    fi
}

# wait_http NAME PID LOGFILE EXPECT URL [HEADER...]: poll until URL answers EXPECT, the
# process dies, or STARTUP_TIMEOUT passes.
wait_http() {
    local name=$1 pid=$2 logfile=$3 expect=$4 url=$5
    shift 5
    local hdr=() h code=none
    for h in "$@"; do hdr+=(-H "$h"); done
    local deadline=$((SECONDS + STARTUP_TIMEOUT))
    while :; do
        check_alive "$pid" "$name" "$logfile"
        # -k: the TLS scenarios' certificate is self-signed.
        code=$(curl -sk -o /dev/null -w '%{http_code}' --max-time 2 "${hdr[@]}" "$url" || true)
        [[ $code == "$expect" ]] && return 0
        ((SECONDS < deadline)) || die "$name: $url answered $code, want $expect, after ${STARTUP_TIMEOUT}s"
        sleep 0.05
    done
}

# Direct children of a process (nginx: its worker). /proc/PID/task/*/children needs
# CONFIG_PROC_CHILDREN, which not every kernel has, so scan /proc.
children_of() {
    local f stat rest
    local -a fields
    for f in /proc/[0-9]*/stat; do
        read -r stat 2>/dev/null <"$f" || continue
        rest=${stat##*) }
        read -ra fields <<<"$rest"
        [[ ${fields[1]} == "$1" ]] && { f=${f#/proc/}; echo "${f%/stat}"; }
    done
    return 0
}

# CPU ticks (utime+stime, all threads) of a process and its children.
proc_ticks() {
    local total=0 c stat rest
    local -a f
    for c in "$1" $(children_of "$1"); do
        read -r stat 2>/dev/null <"/proc/$c/stat" || continue
        rest=${stat##*) } # fields from 3 on; comm (field 2) may hold spaces
        read -ra f <<<"$rest"
        total=$((total + f[11] + f[12])) # utime (field 14), stime (field 15)
    done
    echo "$total"
}

rss_kib() { # resident set of a process and its children, KiB
    local total=0 c
    for c in "$1" $(children_of "$1"); do
        total=$((total + $(awk '/^VmRSS:/ {print $2}' "/proc/$c/status" 2>/dev/null || echo 0)))
    done
    echo "$total"
}

core_ticks() { # "busy total" ticks of one CPU from /proc/stat
    awk -v cpu="cpu$1" '$1 == cpu { busy = $2 + $3 + $4 + $7 + $8 + $9; print busy, busy + $5 + $6 }' /proc/stat
}

nginx_common() { # the parts of an nginx.conf both nginx instances share
    local dir=$1
    cat <<EOF
worker_processes 1;
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
worker_rlimit_nofile 65536;
events { worker_connections 8192; }
EOF
}

nginx_temp_paths() {
    local t=$1/tmp
    echo "client_body_temp_path $t/body; proxy_temp_path $t/proxy; fastcgi_temp_path $t/fastcgi; uwsgi_temp_path $t/uwsgi; scgi_temp_path $t/scgi;"
}

# --- upstream and nginx baseline ---------------------------------------------------------

UP_PORT=$(free_port)
UP_DIR=$BENCH_OUT/upstream
mkdir -p "$UP_DIR/tmp"
{
    nginx_common "$UP_DIR"
    cat <<EOF
http {
  access_log off;
  $(nginx_temp_paths "$UP_DIR")
  default_type text/plain;
  keepalive_requests 1000000000;
  keepalive_timeout 600s;
  server {
    listen 127.0.0.1:$UP_PORT backlog=4096;
    location / { return 200 "ok\n"; }
  }
}
EOF
} >"$UP_DIR/nginx.conf"
start_bg upstream "$LOAD_CPU" "$UP_DIR/stderr.log" nginx -p "$UP_DIR" -c "$UP_DIR/nginx.conf"
UP_PID=$LAST_PID
wait_http upstream "$UP_PID" "$UP_DIR/stderr.log" 200 "http://127.0.0.1:$UP_PORT/"

if ((want_redis)); then
    REDIS_PORT=$(free_port)
    start_bg redis "$LOAD_CPU" "$BENCH_OUT/redis.log" \
        redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no
    REDIS_PID=$LAST_PID
    deadline=$((SECONDS + STARTUP_TIMEOUT))
    until [[ $(redis-cli -p "$REDIS_PORT" ping 2>/dev/null) == PONG ]]; do
        check_alive "$REDIS_PID" redis "$BENCH_OUT/redis.log"
        ((SECONDS < deadline)) || die "redis-server did not answer PING within ${STARTUP_TIMEOUT}s"
        sleep 0.05
    done
    BENCH_REDIS_URL=redis://127.0.0.1:$REDIS_PORT
fi

declare -A PORT PID LOGF
# nginx_proxy_config NAME: writes BENCH_OUT/NAME/nginx.conf, a reverse proxy to the upstream
# (1 worker, upstream keep-alive); sets NGINX_PORT[NAME]. NAME `nginx-fwd` also sets the
# request headers the spec makes Portico set, so that it does the same work.
declare -A NGINX_PORT NGINX_TLS_PORT
# nginx 1.25.1 has `http2 on;`; older ones take `http2` on the listen line.
NGINX_VERSION=$(nginx -v 2>&1 | grep -oE '[0-9]+\.[0-9]+\.[0-9]+' | head -n1)
if [[ $(printf '%s\n' 1.25.1 "$NGINX_VERSION" | sort -V | head -n1) == 1.25.1 ]]; then
    NGINX_H2_LISTEN="" NGINX_H2_DIRECTIVE="http2 on;"
else
    NGINX_H2_LISTEN="http2" NGINX_H2_DIRECTIVE=""
fi
nginx_proxy_config() {
    local name=$1 dir=$BENCH_OUT/$1 port tls_port fwd=""
    port=$(free_port)
    tls_port=$(free_port)
    mkdir -p "$dir/tmp"
    if [[ $name == nginx-fwd ]]; then
        # shellcheck disable=SC2016 # nginx variables, not shell ones
        fwd='proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_set_header X-Forwarded-Host $host;
      proxy_set_header X-Request-Id $request_id;
      add_header X-Request-Id $request_id always;'
    fi
    local location="location / {
      proxy_pass http://up;
      proxy_http_version 1.1;
      proxy_set_header Connection \"\";
      $fwd
    }"
    {
        nginx_common "$dir"
        cat <<EOF
http {
  access_log off;
  $(nginx_temp_paths "$dir")
  keepalive_requests 1000000000;
  keepalive_timeout 600s;
  upstream up {
    server 127.0.0.1:$UP_PORT;
    keepalive 64;
    keepalive_requests 1000000000;
    keepalive_timeout 600s;
  }
  server {
    listen 127.0.0.1:$port backlog=4096;
    $location
  }
  # The TLS scenarios (https, h2): HTTP/1.1 and HTTP/2 by ALPN, TLS 1.2 and 1.3 as Portico.
  server {
    listen 127.0.0.1:$tls_port ssl $NGINX_H2_LISTEN backlog=4096;
    $NGINX_H2_DIRECTIVE
    ssl_certificate $BENCH_TLS_CERT;
    ssl_certificate_key $BENCH_TLS_KEY;
    ssl_protocols TLSv1.2 TLSv1.3;
    $location
  }
}
EOF
    } >"$dir/nginx.conf"
    NGINX_PORT[$name]=$port
    NGINX_TLS_PORT[$name]=$tls_port
}

# --- scenarios ---------------------------------------------------------------------------

# shellcheck source=benches/scenarios.sh
source "$BENCH_DIR/scenarios.sh"

declare -A S_DESC S_PATH S_HEADERS S_EXPECT S_EXTRA S_SCHEME S_TOOL
read -ra SCENARIO_LIST <<<"$SCENARIOS"
for s in "${SCENARIO_LIST[@]}"; do
    declare -F "scenario_$s" >/dev/null || die "unknown scenario $s (no function scenario_$s in benches/scenarios.sh)"
    dir=$BENCH_OUT/portico-$s
    mkdir -p "$dir"
    port=$(free_port)
    DESC=$s WRK_PATH=/ WRK_HEADERS=() WRK_EXTRA=() EXPECT=200 SCHEME=http TOOL=wrk
    "scenario_$s" "$dir/portico.yaml" "127.0.0.1:$port" "127.0.0.1:$UP_PORT"
    [[ $TOOL == h2load ]] && ensure_pkg h2load nghttp2-client
    S_DESC[$s]=$DESC S_PATH[$s]=$WRK_PATH S_EXPECT[$s]=$EXPECT S_SCHEME[$s]=$SCHEME S_TOOL[$s]=$TOOL
    S_HEADERS[$s]=$(printf '%s\n' "${WRK_HEADERS[@]}")
    S_EXTRA[$s]=$(printf '%s\n' "${WRK_EXTRA[@]}")
    if ((want_portico)); then
        "$PORTICO_BIN" validate -c "$dir/portico.yaml" >"$dir/validate.log" 2>&1 ||
            { cat "$dir/validate.log" >&2; die "scenario $s: portico validate rejected $dir/portico.yaml"; }
        start_bg "portico[$s]" "$PROXY_CPU" "$dir/stderr.log" "$PORTICO_BIN" run -c "$dir/portico.yaml"
        PORT[portico.$s]=$port PID[portico.$s]=$LAST_PID LOGF[portico.$s]=$dir/stderr.log
    fi
done

read -ra PROXY_LIST <<<"$PROXIES"
for p in "${PROXY_LIST[@]}"; do
    case $p in
    portico) ;;
    nginx | nginx-fwd)
        nginx_proxy_config "$p"
        start_bg "$p" "$PROXY_CPU" "$BENCH_OUT/$p/stderr.log" nginx -p "$BENCH_OUT/$p" -c "$BENCH_OUT/$p/nginx.conf"
        for s in "${SCENARIO_LIST[@]}"; do
            PORT[$p.$s]=${NGINX_PORT[$p]} PID[$p.$s]=$LAST_PID LOGF[$p.$s]=$BENCH_OUT/$p/stderr.log
            [[ ${S_SCHEME[$s]} == https ]] && PORT[$p.$s]=${NGINX_TLS_PORT[$p]}
        done
        ;;
    *) die "unknown proxy $p (PROXIES: nginx, nginx-fwd, portico)" ;;
    esac
done

for s in "${SCENARIO_LIST[@]}"; do
    mapfile -t hdrs < <(printf '%s' "${S_HEADERS[$s]}")
    for p in "${PROXY_LIST[@]}"; do
        wait_http "${p}[$s]" "${PID[$p.$s]}" "${LOGF[$p.$s]}" "${S_EXPECT[$s]}" \
            "${S_SCHEME[$s]}://127.0.0.1:${PORT[$p.$s]}${S_PATH[$s]}" "${hdrs[@]}"
    done
done
log "all proxies answer"

# --- measurement -------------------------------------------------------------------------

# measure PROXY SCENARIO ROUND DURATION: one wrk run; appends a line to results.tsv unless
# ROUND is "warmup".
measure() {
    local p=$1 s=$2 round=$3 dur=$4
    local pid=${PID[$p.$s]} port=${PORT[$p.$s]} h
    local args=(-t1 "-c$CONNECTIONS" "-d$dur" --latency) tool=${S_TOOL[$s]}
    local out=$BENCH_OUT/wrk/$s.$p.$round.txt h2log=$BENCH_OUT/wrk/$s.$p.$round.h2log
    [[ $tool == h2load ]] && args=(-t1 "-c$H2_CLIENTS" "-m$H2_STREAMS" -D "$dur" "--log-file=$h2log")
    local hdrs extra
    mapfile -t hdrs < <(printf '%s' "${S_HEADERS[$s]}")
    mapfile -t extra < <(printf '%s' "${S_EXTRA[$s]}")
    for h in "${hdrs[@]}"; do args+=(-H "$h"); done
    args+=("${extra[@]}" "${S_SCHEME[$s]}://127.0.0.1:$port${S_PATH[$s]}")

    check_alive "$pid" "$p" "${LOGF[$p.$s]}"
    local t0 c0 t1 c1
    t0=$(proc_ticks "$pid")
    c0=$(core_ticks "$PROXY_CPU")
    taskset -c "$LOAD_CPU" "$tool" "${args[@]}" >"$out" 2>&1 || { cat "$out" >&2; die "$tool failed"; }
    t1=$(proc_ticks "$pid")
    c1=$(core_ticks "$PROXY_CPU")
    check_alive "$pid" "$p" "${LOGF[$p.$s]}"
    [[ $round == warmup ]] && { rm -f "$h2log"; return 0; }

    local requests rps p50 p99 errors
    if [[ $tool == h2load ]]; then
        read -r requests rps p50 p99 errors < <(python3 "$BENCH_DIR/report.py" parse-h2load "$out" "$h2log" "${S_EXPECT[$s]}")
        rm -f "$h2log"
    else
        read -r requests rps p50 p99 errors < <(python3 "$BENCH_DIR/report.py" parse "$out" "${S_EXPECT[$s]}")
    fi
    local ticks=$((t1 - t0))
    local cbusy=$((${c1% *} - ${c0% *})) ctotal=$((${c1#* } - ${c0#* }))
    local cpu_us proxy_pct other_pct rss
    cpu_us=$(python3 -c "print(f'{$ticks * 1e6 / $CLK_TCK / max($requests, 1):.2f}')")
    proxy_pct=$(python3 -c "print(f'{100 * $ticks / max($ctotal, 1):.1f}')")
    other_pct=$(python3 -c "print(f'{100 * max($cbusy - $ticks, 0) / max($ctotal, 1):.1f}')")
    rss=$(rss_kib "$pid")
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$s" "$p" "$round" "$rps" "$p50" "$p99" \
        "$requests" "$cpu_us" "$proxy_pct" "$other_pct" "$rss" "$errors" >>"$RESULTS"
    log "round $round $s $p: $rps req/s, p50 ${p50}us, p99 ${p99}us, $cpu_us CPU us/req, proxy core ${proxy_pct}% (other ${other_pct}%), errors $errors"
}

RESULTS=$BENCH_OUT/results.tsv
printf 'scenario\tproxy\tround\trps\tp50_us\tp99_us\trequests\tcpu_us_per_req\tproxy_core_pct\tcore_other_pct\trss_kib\terrors\n' >"$RESULTS"
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

for s in "${SCENARIO_LIST[@]}"; do
    for p in "${PROXY_LIST[@]}"; do
        log "warm-up $s $p ($WARMUP)"
        measure "$p" "$s" warmup "$WARMUP"
    done
done

for ((r = 1; r <= ROUNDS; r++)); do
    for i in "${!SCENARIO_LIST[@]}"; do
        s=${SCENARIO_LIST[i]}
        # rotate the order every round (and per scenario), so no proxy always goes first
        k=$(((r + i) % ${#PROXY_LIST[@]}))
        order=("${PROXY_LIST[@]:k}" "${PROXY_LIST[@]:0:k}")
        for p in "${order[@]}"; do measure "$p" "$s" "$r" "$DURATION"; done
    done
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

# --- report ------------------------------------------------------------------------------

cleanup

{
    echo "## Results $(date -u +'%Y-%m-%d %H:%M UTC')"
    echo
    echo "- command: \`ROUNDS=$ROUNDS DURATION=$DURATION SCENARIOS=\"$SCENARIOS\" benches/run.sh\`" \
        "(wrk -t1 -c$CONNECTIONS; h2load -t1 -c$H2_CLIENTS -m$H2_STREAMS for HTTP/2; warm-up $WARMUP per proxy and scenario)"
    echo "- machine: $(nproc) CPUs, $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)," \
        "$(uname -sr); load average before $LOAD_BEFORE, after $LOAD_AFTER"
    echo "- proxies on CPU $PROXY_CPU; upstream (nginx return 200, 1 worker) and wrk on CPU $LOAD_CPU"
    echo "- $(nginx -v 2>&1 | sed 's/^nginx version: //'), $(wrk -v 2>&1 | head -n1 | awk '{print $1, $2}')$(
        ((want_portico)) && echo ", $("$PORTICO_BIN" version 2>&1 | head -n1) at $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet HEAD 2>/dev/null || echo '+uncommitted')")"
    echo "- \`nginx\`: bare \`proxy_pass\` with upstream keep-alive; \`nginx-fwd\`: the same plus the request" \
        "headers Portico sets (Host passed, X-Forwarded-For/Proto/Host, X-Request-Id on request and response)"
    echo
    for s in "${SCENARIO_LIST[@]}"; do echo "- \`$s\`: ${S_DESC[$s]}"; done
    echo
    python3 "$BENCH_DIR/report.py" summary "$RESULTS"
} >"$BENCH_OUT/summary.md"
cat "$BENCH_OUT/summary.md"
log "raw data: $RESULTS"
