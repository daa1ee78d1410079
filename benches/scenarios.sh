# shellcheck shell=bash disable=SC2034 # the globals set here are read by run.sh
# Benchmark scenarios, sourced by benches/run.sh.
#
# A scenario is a function `scenario_NAME CONFIG LISTEN UPSTREAM` that
#   - writes a complete Portico config to the file CONFIG: one listener on LISTEN
#     (127.0.0.1:PORT) and the shared upstream node UPSTREAM (127.0.0.1:PORT)
#     (`portico_gateway_and_upstream` prints those two sections);
#   - sets the request wrk sends, through these globals (run.sh resets them first):
#       DESC         one line for the report
#       WRK_PATH     request path (default /)
#       WRK_HEADERS  array of "Name: value" headers sent with every request
#       WRK_EXTRA    array of further wrk arguments (e.g. -s script.lua)
#       EXPECT       the status the request must get (default 200); checked before the
#                    rounds, and any other status during a round counts as an error
#
# The same request is sent to the nginx baseline, which proxies everything to the same
# upstream, so every scenario's ratio is "Portico doing this" / "nginx plain proxying".
#
# To add a scenario: write `scenario_foo`, then run `SCENARIOS="plain foo" benches/run.sh`
# (and add it to the default SCENARIOS in run.sh once it is meant to be tracked).
# Scenario-private files (keys, lua scripts) go next to CONFIG: "$(dirname "$CONFIG")".

# The gateway + upstreams sections every scenario shares: one worker, no access log,
# the single upstream node all proxies use.
portico_gateway_and_upstream() {
    local listen=$1 upstream=$2
    cat <<EOF
gateway:
  listeners: [{ address: "$listen" }]
  workers: 1
  access_log: { path: "off" }
upstreams:
  - id: up
    nodes: [{ address: "$upstream", weight: 1 }]
EOF
}

# One catch-all route: the cost of proxying itself.
scenario_plain() {
    local config=$1 listen=$2 upstream=$3
    {
        portico_gateway_and_upstream "$listen" "$upstream"
        echo 'routes:'
        echo '  - { id: r1, paths: ["/*"], upstream: up }'
    } >"$config"
    DESC="1 route (/*), plain proxying"
    WRK_PATH=/
}

# 10,000 routes (hosts exact and wildcard, paths exact, {param} and prefix; see
# gen_routes.py); the request matches one near the end of the list.
scenario_routes10k() {
    local config=$1 listen=$2 upstream=$3
    local n=10000 target=9998 # target % 4 == 2: exact host + prefix path
    {
        portico_gateway_and_upstream "$listen" "$upstream"
        python3 "$BENCH_DIR/gen_routes.py" "$n" up
    } >"$config"
    DESC="10,000 routes, request matches svc-$target"
    WRK_PATH=/svc$target/api/items
    WRK_HEADERS=("Host: svc$target.example.com")
}

# key-auth on the route and the JSON access log written to a file: what authenticating and
# logging every request costs next to `plain`. The log goes next to the config.
scenario_keyauth_log() {
    local config=$1 listen=$2 upstream=$3
    local log
    log="$(dirname "$config")/keyauth_access.log"
    {
        portico_gateway_and_upstream "$listen" "$upstream" | sed "s|access_log: { path: \"off\" }|access_log: { path: \"$log\" }|"
        cat <<'YAML'
consumers:
  - { username: bench, groups: [bench], credentials: { key-auth: { key: bench-key-0123456789abcdef } } }
  - { username: other, credentials: { key-auth: { key: other-key-0123456789abcdef } } }
routes:
  - { id: r1, paths: ["/*"], upstream: up, plugins: { key-auth: {} } }
YAML
    } >"$config"
    DESC="key-auth (header key) + JSON access log to a file"
    WRK_PATH=/
    WRK_HEADERS=("apikey: bench-key-0123456789abcdef")
}

# jwt-auth with an HS256 consumer: a token verified (signature, exp) on every request.
scenario_jwt_hs256() {
    local config=$1 listen=$2 upstream=$3
    local secret=bench-jwt-secret-0123456789abcdef token
    token=$(python3 - "$secret" <<'PY'
import base64, hashlib, hmac, json, sys
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
body = b64(json.dumps({"iss": "bench-app", "sub": "bench", "exp": 4102444800}, separators=(",", ":")).encode())
sig = hmac.new(sys.argv[1].encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
print(f"{head}.{body}.{b64(sig)}")
PY
    )
    {
        portico_gateway_and_upstream "$listen" "$upstream"
        cat <<YAML
consumers:
  - { username: bench, credentials: { jwt-auth: { key: bench-app, secret: $secret } } }
routes:
  - { id: r1, paths: ["/*"], upstream: up, plugins: { jwt-auth: {} } }
YAML
    } >"$config"
    DESC="jwt-auth, HS256 token (signature + exp) on every request"
    WRK_PATH=/
    WRK_HEADERS=("Authorization: Bearer $token")
}

# --- load balancing (issue 5): the same upstream node listed three times, so the balancer
# really chooses among three for every request (and health bookkeeping runs) while the
# upstream work stays the same as `plain`. Compare each with `rr3`.

# portico_lb CONFIG LISTEN UPSTREAM "BALANCER LINES": three-node upstream `lb`, one route.
portico_lb() {
    local config=$1 listen=$2 upstream=$3 extra=$4
    cat >"$config" <<YAML
gateway:
  listeners: [{ address: "$listen" }]
  workers: 1
  access_log: { path: "off" }
upstreams:
  - id: lb
    nodes: [{ address: "$upstream" }, { address: "$upstream" }, { address: "$upstream" }]
$extra
routes:
  - { id: r1, paths: ["/*"], upstream: lb }
YAML
}

scenario_rr3() {
    portico_lb "$1" "$2" "$3" "    balancer: round_robin"
    DESC="3 nodes, weighted round robin"
}

scenario_chash() {
    portico_lb "$1" "$2" "$3" $'    balancer: consistent_hash\n    hash_on: header:x-user'
    DESC="3 nodes, consistent_hash on header:x-user"
    WRK_HEADERS=("x-user: user-42")
}

scenario_leastconn() {
    portico_lb "$1" "$2" "$3" "    balancer: least_connections"
    DESC="3 nodes, least_connections"
}

scenario_ewma() {
    portico_lb "$1" "$2" "$3" "    balancer: ewma"
    DESC="3 nodes, peak-EWMA with two random choices"
}

scenario_health() {
    portico_lb "$1" "$2" "$3" $'    health_check:\n      passive: { unhealthy_statuses: [500, 502, 503, 504], failures: 3, cooldown: 10s }'
    DESC="3 nodes, round robin + passive health checks"
}

# The two halves of keyauth_log, to tell their costs apart: key-auth with the log off, and
# plain proxying with the JSON access log to a file.
scenario_keyauth() {
    scenario_keyauth_log "$@"
    sed -i 's|access_log: { path: "[^"]*" }|access_log: { path: "off" }|' "$1"
    DESC="key-auth (header key), access log off"
}

scenario_plain_log() {
    local config=$1 listen=$2 upstream=$3
    scenario_plain "$@"
    sed -i "s|access_log: { path: \"off\" }|access_log: { path: \"$(dirname "$config")/plain_access.log\" }|" "$config"
    DESC="1 route (/*), plain proxying + JSON access log to a file"
}

# rate-limit, policy local: the sliding-window counter on every request (one key: wrk comes
# from one IP), with a limit no run reaches, so every request is counted and passes.
scenario_ratelimit_local() {
    local config=$1 listen=$2 upstream=$3
    {
        portico_gateway_and_upstream "$listen" "$upstream"
        echo 'routes:'
        echo '  - { id: r1, paths: ["/*"], upstream: up, plugins: { rate-limit: { requests: 1000000000, window: 1m } } }'
    } >"$config"
    DESC="rate-limit, policy local (sliding window, key ip), never exceeded"
}

# rate-limit, policy redis: one EVALSHA round trip per request to the redis-server run.sh
# starts on the load core (BENCH_REDIS_URL). fail_open: false, so a Redis that does not answer
# within the timeout shows up as errors (503), not as requests let through uncounted.
scenario_ratelimit_redis() {
    local config=$1 listen=$2 upstream=$3
    [[ -n ${BENCH_REDIS_URL:-} ]] || die "scenario ratelimit_redis needs BENCH_REDIS_URL (run.sh starts redis-server)"
    {
        portico_gateway_and_upstream "$listen" "$upstream" |
            sed "s|^  workers: 1\$|  workers: 1\n  redis: { url: \"$BENCH_REDIS_URL\" }|"
        echo 'routes:'
        echo '  - { id: r1, paths: ["/*"], upstream: up, plugins: { rate-limit: { requests: 1000000000, window: 1m, policy: redis, fail_open: false, timeout: 100ms } } }'
    } >"$config"
    DESC="rate-limit, policy redis (sliding window, key ip, one Lua call per request), never exceeded"
}

# OpenTelemetry tracing on, every request sampled (sample_ratio 1.0): a span per request,
# traceparent sent upstream, spans batched and posted as OTLP/HTTP protobuf to the upstream
# nginx, which answers any POST with 200 (a sink sharing the load core). Compare with
# `plain`; the target is >= 90% of its requests/s. The exporter thread runs on the proxy's
# core (run.sh pins the whole process), so its cost is counted; the gateway logs how many
# spans were exported and dropped when it stops (stderr.log).
scenario_tracing() {
    local config=$1 listen=$2 upstream=$3
    scenario_plain "$@"
    sed -i "s|^  workers: 1\$|  workers: 1\n  tracing: { endpoint: \"http://$upstream/v1/traces\", sample_ratio: 1.0 }|" "$config"
    DESC="1 route (/*), plain proxying + OpenTelemetry tracing (all sampled, OTLP/HTTP to a sink)"
}

# --- TLS and HTTP/2 (issue 6): Portico's TLS listener against nginx's `listen ... ssl` (with
# HTTP/2), both serving the same ECDSA P-256 certificate that run.sh makes (BENCH_TLS_CERT,
# BENCH_TLS_KEY). Keep-alive connections, so this is the cost of TLS records (and of HTTP/2
# framing), not of handshakes. Compare each with `plain`.

# portico_tls CONFIG LISTEN UPSTREAM: `plain` with the listener serving TLS.
portico_tls() {
    local config=$1
    scenario_plain "$@"
    sed -i "s|listeners: \[{ address: \"\([^\"]*\)\" }\]|listeners: [{ address: \"\1\", tls: { certificates: [{ cert: \"$BENCH_TLS_CERT\", key: \"$BENCH_TLS_KEY\" }] } }]|" "$config"
    grep -q 'tls:' "$config" || die "portico_tls: could not add tls to $config"
}

# HTTPS keep-alive: wrk (HTTP/1.1, no ALPN) over TLS.
scenario_https() {
    portico_tls "$@"
    SCHEME=https
    DESC="HTTPS keep-alive (TLS 1.3, HTTP/1.1), 1 route (/*), plain proxying"
}

# HTTP/2 over TLS (ALPN h2): h2load, H2_CLIENTS connections x H2_STREAMS streams each; the
# upstream side stays HTTP/1.1 keep-alive for both proxies.
scenario_h2() {
    portico_tls "$@"
    SCHEME=https
    TOOL=h2load
    DESC="HTTP/2 over TLS (h2load), 1 route (/*), plain proxying"
}
