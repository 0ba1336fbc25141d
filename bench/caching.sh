#!/usr/bin/env bash
# Tollgate vs nginx: cache hits, small static files, and gzip'd answers.
#
# One nginx backend (one worker, CPU 1, with wrk) answers /data (a small
# text answer) and /text (7.5 KiB of text). Each proxy (one worker, CPU 0):
# - cache:  nginx `proxy_cache` (valid 10m) vs tollgate proxy-cache (memory);
#           every measured request is a hit;
# - static: a 512-byte file, nginx `alias` vs tollgate static-files;
# - gzip:   /text proxied with nginx `gzip on` (level 1) vs tollgate's
#           compression plugin (gzip level 1); wrk sends Accept-Encoding: gzip.
#
# Prints requests/s, p99 and the proxy's CPU µs per request (from
# /proc/PID/stat), the tollgate/nginx ratios, and writes a "Caching, static
# files, compression" section to docs/benchmarks.md.
#
# Usage: bench/caching.sh      (DURATION=5 CONNS=50 ROUNDS=3 by default)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DURATION=${DURATION:-5}
CONNS=${CONNS:-50}
ROUNDS=${ROUNDS:-3}
OUT_MD=${OUT_MD:-$ROOT/docs/benchmarks.md}
WORK=$(mktemp -d /tmp/tollgate-caching-bench.XXXXXX)
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

B=18790 NGINX_PORT=18781 TG_PORT=18782
mkdir -p "$WORK/backend" "$WORK/proxy" "$WORK/www" "$WORK/cache"
head -c 512 /dev/zero | tr '\0' 's' >"$WORK/www/small.txt"
for i in $(seq 160); do printf 'line %03d of a text answer that compresses well. ' "$i"; done | head -c 8192 >"$WORK/backend/text.txt"
cat >"$WORK/backend/nginx.conf" <<CONF
user root; worker_processes 1; daemon off; error_log $WORK/backend/error.log; pid $WORK/backend/nginx.pid;
events { worker_connections 4096; }
http {
  access_log off; keepalive_requests 1000000; default_type text/plain;
  server { listen 127.0.0.1:$B;
           location /data { return 200 "a small answer worth caching\n"; }
           location = /text { alias $WORK/backend/text.txt; } }
}
CONF
taskset -c 1 "$NGINX" -p "$WORK/backend" -c "$WORK/backend/nginx.conf" 2>/dev/null & PIDS+=($!)
wait_port $B

# nginx's workers run as root (as the backend's) so they can read the files
# and the cache folder under the private mktemp folder.
cat >"$WORK/proxy/nginx.conf" <<CONF
user root; worker_processes 1; daemon off; error_log $WORK/proxy/error.log; pid $WORK/proxy/nginx.pid;
events { worker_connections 4096; }
http {
  access_log off; keepalive_requests 1000000; sendfile on; tcp_nopush on;
  include /etc/nginx/mime.types;
  proxy_cache_path $WORK/cache keys_zone=c:10m;
  upstream b { server 127.0.0.1:$B; keepalive 64; }
  server {
    listen 127.0.0.1:$NGINX_PORT;
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    location /cache { proxy_pass http://b/data; proxy_cache c; proxy_cache_valid 200 10m; }
    location /static/ { alias $WORK/www/; }
    location /gzip { proxy_pass http://b/text; gzip on; gzip_comp_level 1; gzip_types text/plain; gzip_min_length 1000; }
  }
}
CONF
taskset -c 0 "$NGINX" -p "$WORK/proxy" -c "$WORK/proxy/nginx.conf" 2>/dev/null &
NGINX_PID=$!; PIDS+=($NGINX_PID)
wait_port $NGINX_PORT

cat >"$WORK/kong.yml" <<YML
_format_version: "3.0"
services:
- name: data
  url: http://127.0.0.1:$B/data
  routes: [{paths: [/cache]}]
  plugins: [{name: proxy-cache, config: {strategy: memory, cache_ttl: 600}}]
- name: text
  url: http://127.0.0.1:$B/text
  routes: [{paths: [/gzip]}]
  plugins: [{name: compression, config: {algorithms: [gzip], gzip_level: 1, min_length: 1000}}]
routes:
- name: static
  paths: [/static/]
  plugins: [{name: static-files, config: {root: "$WORK/www"}}]
YML
TOLLGATE_DATABASE=off TOLLGATE_DECLARATIVE_CONFIG="$WORK/kong.yml" TOLLGATE_WORKER_THREADS=1 \
TOLLGATE_PROXY_LISTEN=127.0.0.1:$TG_PORT TOLLGATE_ADMIN_LISTEN=off TOLLGATE_STATUS_LISTEN=off \
TOLLGATE_ACCESS_LOG=off TOLLGATE_LOG_LEVEL=warn TOLLGATE_PREFIX="$WORK/tg" \
  taskset -c 0 "$TOLLGATE" run & TG=$!; PIDS+=($TG)
wait_port $TG_PORT

# Sanity: each proxy answers each scenario as intended.
for port in $NGINX_PORT $TG_PORT; do
  curl -s -o /dev/null "http://127.0.0.1:$port/cache"
  [ "$(curl -s "http://127.0.0.1:$port/static/small.txt" | wc -c)" = 512 ] || { echo "static on $port broken" >&2; exit 1; }
  head=$(curl -s -D - -o /dev/null -H 'Accept-Encoding: gzip' "http://127.0.0.1:$port/gzip")
  grep -qi '^content-encoding: gzip' <<<"$head" || { echo "gzip on $port broken: $head" >&2; exit 1; }
done
head=$(curl -s -D - -o /dev/null "http://127.0.0.1:$TG_PORT/cache")
grep -qi '^x-cache-status: hit' <<<"$head" || { echo "tollgate cache not hit" >&2; exit 1; }

cat >"$WORK/gzip.lua" <<'LUA'
wrk.headers["Accept-Encoding"] = "gzip"
LUA
: >"$WORK/results"
NG=$(family "$NGINX_PID")
for r in $(seq "$ROUNDS"); do
  echo "== round $r/$ROUNDS: ${CONNS} connections, ${DURATION}s each"
  for s in cache static/small.txt gzip; do
    lua=""; [ "$s" = gzip ] && lua="$WORK/gzip.lua"
    measure "nginx ${s%%/*}" "http://127.0.0.1:$NGINX_PORT/$s" "$NG" "$lua"
    measure "tollgate ${s%%/*}" "http://127.0.0.1:$TG_PORT/$s" "$TG" "$lua"
  done
done
median_results

TITLE="Caching, static files, compression"
without_section "$TITLE" >"$WORK/md"
{
  cat "$WORK/md"
  echo "## $TITLE"
  echo
  echo "Produced by \`bench/caching.sh\` ($(date -u +%Y-%m-%d), ${DURATION}s × ${ROUNDS} interleaved rounds, ${CONNS} connections, median)."
  echo "nginx backend (one worker, CPU 1, with wrk); each proxy one worker on CPU 0. Cache: every request a hit"
  echo "(nginx proxy_cache on disk/page cache, tollgate proxy-cache memory). Static: a 512-byte file. Gzip: 7.5 KiB of text, level 1."
  echo
  echo "| scenario | nginx req/s | tollgate req/s | req/s ratio | p99 ratio | CPU/req ratio | target |"
  echo "|---|---:|---:|---:|---:|---:|---|"
  for s in cache static gzip; do
    echo "| $s | $(field "nginx $s" 2) | $(field "tollgate $s" 2) | $(ratio "$(field "tollgate $s" 2)" "$(field "nginx $s" 2)") | $(ratio "$(field "tollgate $s" 4)" "$(field "nginx $s" 4)") | $(ratio "$(field "tollgate $s" 5)" "$(field "nginx $s" 5)") | req/s ≥ 1.0 |"
  done
  echo
} >"$OUT_MD"
cat "$WORK/results"
awk -v t="## $TITLE" '$0==t{p=1} p' "$OUT_MD"
