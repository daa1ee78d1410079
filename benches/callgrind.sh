#!/usr/bin/env bash
# Instructions per request of one Portico binary in one scenario, counted by callgrind: a
# measure that a shared, noisy machine does not disturb (wrk numbers need a quiet one).
#
#   benches/callgrind.sh BIN [SCENARIO] [SECONDS]
#       e.g. benches/callgrind.sh target/release/portico keyauth_log
#
# Starts an nginx upstream (200 "ok"), Portico under callgrind with the scenario's config
# (benches/scenarios.sh), sends wrk (1 thread, 8 connections) for SECONDS (default 6), then
# prints requests, instructions per request, and the callgrind output file to read with
# `callgrind_annotate --inclusive=yes FILE | head -60`. Needs valgrind, nginx, wrk.
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BIN=$(realpath "$1")
SCENARIO=${2:-plain}
SECS=${3:-6}
PATH=$PATH:/usr/sbin:/sbin
die() { echo "callgrind.sh: $*" >&2; exit 1; }
for c in valgrind nginx wrk callgrind_annotate python3; do
    command -v "$c" >/dev/null || die "$c not found (apt-get install -y valgrind nginx wrk)"
done

work=$(mktemp -d /tmp/portico-cg.XXXXXX)
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
up_port=$(port)
gw_port=$(port)
cat >"$work/up.conf" <<EOF
worker_processes 1; daemon off; pid $work/up.pid; error_log $work/up.err;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000; keepalive_timeout 300s;
  client_body_temp_path $work; proxy_temp_path $work; fastcgi_temp_path $work;
  uwsgi_temp_path $work; scgi_temp_path $work;
  server { listen 127.0.0.1:$up_port; location / { return 200 "ok"; } } }
EOF

# shellcheck source=benches/scenarios.sh
source "$BENCH_DIR/scenarios.sh"
DESC="" WRK_PATH=/ WRK_HEADERS=() WRK_EXTRA=() SCHEME=http
"scenario_$SCENARIO" "$work/portico.yaml" "127.0.0.1:$gw_port" "127.0.0.1:$up_port"
[[ $SCHEME == http ]] || die "scenario $SCENARIO needs $SCHEME; only plain-HTTP scenarios here"

nginx -c "$work/up.conf" &
up=$!
valgrind --tool=callgrind --callgrind-out-file="$work/callgrind.out" \
    "$BIN" run -c "$work/portico.yaml" 2>"$work/valgrind.err" >"$work/portico.out" &
gw=$!
cleanup() { kill "$gw" "$up" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT
hdrs=()
for h in "${WRK_HEADERS[@]}"; do hdrs+=(-H "$h"); done
url="http://127.0.0.1:$gw_port${WRK_PATH}"
deadline=$((SECONDS + 60))
until curl -s -o /dev/null "${hdrs[@]}" "$url"; do
    ((SECONDS < deadline)) || die "Portico did not answer on $url (see $work/valgrind.err)"
    sleep 0.2
done
n=$(wrk -t1 -c8 -d"${SECS}s" "${hdrs[@]}" "${WRK_EXTRA[@]}" "$url" | awk '/requests in/ {print $1}')
kill -INT "$gw"
wait "$gw" || true
total=$(callgrind_annotate "$work/callgrind.out" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",","",$1); print $1}')
python3 -c "print('$SCENARIO: $n requests, ' + str(round($total / $n)) + ' instructions/request')"
echo "profile: $work/callgrind.out"
