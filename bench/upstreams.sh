#!/usr/bin/env bash
# Tollgate vs nginx balancing over three backends, side by side.
#
# One nginx process (one worker, CPU 1) serves three backends on three
# ports; nginx (one worker, CPU 0) and tollgate (one worker, CPU 0) proxy to
# them with each algorithm: round robin, least connections (nginx
# least_conn), consistent hashing on a request header (nginx `hash
# $http_x_user consistent`). Tollgate's latency and random (P2C) algorithms
# have no nginx counterpart and are compared with nginx's round robin. wrk
# (CPU 1) sends a random X-User header with every request.
#
# Prints requests/s, p99 and the proxy's CPU µs per request (from
# /proc/PID/stat), the tollgate/nginx ratios, and writes an "Upstreams"
# section to docs/benchmarks.md.
#
# Usage: bench/upstreams.sh      (DURATION=5 CONNS=50 ROUNDS=3 by default)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DURATION=${DURATION:-5}
CONNS=${CONNS:-50}
ROUNDS=${ROUNDS:-3}
OUT_MD=${OUT_MD:-$ROOT/docs/benchmarks.md}
WORK=$(mktemp -d /tmp/tollgate-upstream-bench.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
need() { command -v "$1" >/dev/null 2>&1; }
if ! need nginx || ! need wrk || ! need taskset; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx wrk util-linux >/dev/null
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
cargo build --release --quiet
TOLLGATE=$ROOT/target/release/tollgate
TICK=$(getconf CLK_TCK)
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"

B1=18690 B2=18691 B3=18692 NGINX_PORT=18681 TG_PORT=18682
mkdir -p "$WORK/backend" "$WORK/proxy"
cat >"$WORK/backend/nginx.conf" <<CONF
worker_processes 1; daemon off; error_log $WORK/backend/error.log; pid $WORK/backend/nginx.pid;
events { worker_connections 4096; }
http {
  access_log off; keepalive_requests 1000000;
  server { listen 127.0.0.1:$B1; listen 127.0.0.1:$B2; listen 127.0.0.1:$B3;
           location / { return 200 "hello from \$server_port\n"; } }
}
CONF
taskset -c 1 "$NGINX" -p "$WORK/backend" -c "$WORK/backend/nginx.conf" 2>/dev/null & PIDS+=($!)
wait_port $B1

servers() { echo "server 127.0.0.1:$B1; server 127.0.0.1:$B2; server 127.0.0.1:$B3; keepalive 64;"; }
cat >"$WORK/proxy/nginx.conf" <<CONF
worker_processes 1; daemon off; error_log $WORK/proxy/error.log; pid $WORK/proxy/nginx.pid;
events { worker_connections 4096; }
http {
  access_log off; keepalive_requests 1000000;
  upstream rr { $(servers) }
  upstream lc { least_conn; $(servers) }
  upstream hash { hash \$http_x_user consistent; $(servers) }
  server {
    listen 127.0.0.1:$NGINX_PORT;
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    location /rr { proxy_pass http://rr; }
    location /lc { proxy_pass http://lc; }
    location /hash { proxy_pass http://hash; }
  }
}
CONF
taskset -c 0 "$NGINX" -p "$WORK/proxy" -c "$WORK/proxy/nginx.conf" 2>/dev/null &
NGINX_PID=$!; PIDS+=($NGINX_PID)
wait_port $NGINX_PORT

{
  echo '_format_version: "3.0"'
  echo 'upstreams:'
  for alg in round-robin least-connections consistent-hashing latency random; do
    echo "- name: $alg.up"
    echo "  algorithm: $alg"
    [ "$alg" = consistent-hashing ] && echo "  hash_on: header" && echo "  hash_on_header: x-user"
    echo "  targets: [{target: 127.0.0.1:$B1}, {target: 127.0.0.1:$B2}, {target: 127.0.0.1:$B3}]"
  done
  echo 'services:'
  for pair in rr:round-robin lc:least-connections hash:consistent-hashing latency:latency random:random; do
    echo "- {name: ${pair%%:*}, host: ${pair#*:}.up, port: 80, routes: [{paths: [/${pair%%:*}]}]}"
  done
} >"$WORK/kong.yml"
TOLLGATE_DATABASE=off TOLLGATE_DECLARATIVE_CONFIG="$WORK/kong.yml" TOLLGATE_WORKER_THREADS=1 \
TOLLGATE_PROXY_LISTEN=127.0.0.1:$TG_PORT TOLLGATE_ADMIN_LISTEN=off TOLLGATE_STATUS_LISTEN=off \
TOLLGATE_ACCESS_LOG=off TOLLGATE_LOG_LEVEL=warn TOLLGATE_PREFIX="$WORK/tg" \
  taskset -c 0 "$TOLLGATE" run & TG=$!; PIDS+=($TG)
wait_port $TG_PORT

cat >"$WORK/users.lua" <<'LUA'
math.randomseed(7)
request = function()
  return wrk.format(nil, nil, { ["X-User"] = "user-" .. math.random(1, 100000) })
end
LUA
# wrk's path comes from the URL; the Lua script keeps it and adds the header.
: >"$WORK/results"
NG=$(family "$NGINX_PID")
for r in $(seq "$ROUNDS"); do
  echo "== round $r/$ROUNDS: ${CONNS} connections, ${DURATION}s each"
  for alg in rr lc hash; do
    measure "nginx $alg" "http://127.0.0.1:$NGINX_PORT/$alg" "$NG" "$WORK/users.lua"
    measure "tollgate $alg" "http://127.0.0.1:$TG_PORT/$alg" "$TG" "$WORK/users.lua"
  done
  measure "tollgate latency" "http://127.0.0.1:$TG_PORT/latency" "$TG" "$WORK/users.lua"
  measure "tollgate random" "http://127.0.0.1:$TG_PORT/random" "$TG" "$WORK/users.lua"
done
median_results

without_section Upstreams >"$WORK/md"
{
  cat "$WORK/md"
  echo "## Upstreams"
  echo
  echo "Produced by \`bench/upstreams.sh\` ($(date -u +%Y-%m-%d), ${DURATION}s × ${ROUNDS} interleaved rounds, ${CONNS} connections, median)."
  echo "Three nginx backends (one worker, CPU 1, with wrk); each proxy one worker on CPU 0; random X-User per request."
  echo
  echo "| algorithm | nginx req/s | tollgate req/s | req/s ratio | p99 ratio | CPU/req ratio |"
  echo "|---|---:|---:|---:|---:|---:|"
  for pair in "rr:rr:round robin" "lc:lc:least connections" "hash:hash:consistent hash (header)" \
              "latency:rr:latency (P2C EWMA) vs nginx round robin" "random:rr:random (P2C) vs nginx round robin"; do
    IFS=: read -r tg ng label <<<"$pair"
    echo "| $label | $(field "nginx $ng" 2) | $(field "tollgate $tg" 2) | $(ratio "$(field "tollgate $tg" 2)" "$(field "nginx $ng" 2)") | $(ratio "$(field "tollgate $tg" 4)" "$(field "nginx $ng" 4)") | $(ratio "$(field "tollgate $tg" 5)" "$(field "nginx $ng" 5)") |"
  done
  echo
} >"$OUT_MD"
cat "$WORK/results"
awk '/^## Upstreams/{p=1} p' "$OUT_MD"
