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
