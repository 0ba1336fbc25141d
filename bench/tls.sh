#!/usr/bin/env bash
# TLS on the proxy listener, tollgate vs nginx, same certificate (ECDSA
# P-256), both proxying to the same nginx backend over keep-alive HTTP/1.1.
#
# 1. handshakes: h2load opens CONNS_HS new connections at once, one request
#    each (full TLS 1.3 handshakes, no resumption): connections/s and the
#    proxy's CPU per connection.
# 2. h2 over TLS: h2load, 50 connections, 10 streams each, DURATION seconds:
#    requests/s and the proxy's CPU per request.
# Proxies on CPU 0 (one worker each); h2load and the backend on CPU 1.
# Median of ROUNDS interleaved rounds; writes a "TLS" section to
# docs/benchmarks.md.
#
# Usage: bench/tls.sh      (DURATION=5 ROUNDS=3 CONNS_HS=1000 by default)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DURATION=${DURATION:-5}
ROUNDS=${ROUNDS:-3}
CONNS_HS=${CONNS_HS:-1000}
CONNS=50
OUT_MD=${OUT_MD:-$ROOT/docs/benchmarks.md}
WORK=$(mktemp -d /tmp/tollgate-tls-bench.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
need() { command -v "$1" >/dev/null 2>&1; }
if ! need nginx || ! need h2load || ! need openssl || ! need taskset; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx nghttp2-client openssl util-linux >/dev/null
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
cargo build --release --quiet
TOLLGATE=$ROOT/target/release/tollgate
TICK=$(getconf CLK_TCK)
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"

BACKEND=18790 NGINX_PORT=18791 TG_PORT=18792
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=localhost \
  -addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null

mkdir -p "$WORK/backend" "$WORK/proxy"
cat >"$WORK/backend/nginx.conf" <<CONF
worker_processes 1; daemon off; error_log $WORK/backend/error.log; pid $WORK/backend/nginx.pid;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
  server { listen 127.0.0.1:$BACKEND; location / { return 200 "hello\n"; } } }
CONF
taskset -c 1 "$NGINX" -p "$WORK/backend" -c "$WORK/backend/nginx.conf" 2>/dev/null & PIDS+=($!)
wait_port $BACKEND

cat >"$WORK/proxy/nginx.conf" <<CONF
worker_processes 1; daemon off; error_log $WORK/proxy/error.log; pid $WORK/proxy/nginx.pid;
worker_rlimit_nofile 16384;
events { worker_connections 8192; }
http {
  access_log off; keepalive_requests 1000000;
  upstream backend { server 127.0.0.1:$BACKEND; keepalive 64; }
  server {
    listen 127.0.0.1:$NGINX_PORT ssl;
    http2 on;
    ssl_certificate $WORK/cert.pem; ssl_certificate_key $WORK/key.pem;
    ssl_protocols TLSv1.2 TLSv1.3;
    location / { proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
CONF
# nginx before 1.25 has no "http2 on": fall back to "listen … ssl http2".
if ! "$NGINX" -t -p "$WORK/proxy" -c "$WORK/proxy/nginx.conf" >/dev/null 2>&1; then
  sed -i "s|listen 127.0.0.1:$NGINX_PORT ssl;|listen 127.0.0.1:$NGINX_PORT ssl http2;|; /http2 on;/d" "$WORK/proxy/nginx.conf"
fi
ulimit -n 16384 || true
taskset -c 0 "$NGINX" -p "$WORK/proxy" -c "$WORK/proxy/nginx.conf" 2>/dev/null &
NGINX_PID=$!; PIDS+=($NGINX_PID)
wait_port $NGINX_PORT

cat >"$WORK/kong.yml" <<YML
_format_version: "3.0"
services:
- name: backend
  url: http://127.0.0.1:$BACKEND
  routes: [{name: all, paths: [/]}]
YML
TOLLGATE_DATABASE=off TOLLGATE_DECLARATIVE_CONFIG="$WORK/kong.yml" TOLLGATE_WORKER_THREADS=1 \
TOLLGATE_PROXY_LISTEN="127.0.0.1:$TG_PORT http2 ssl" TOLLGATE_SSL_CERT="$WORK/cert.pem" TOLLGATE_SSL_CERT_KEY="$WORK/key.pem" \
TOLLGATE_ADMIN_LISTEN=off TOLLGATE_STATUS_LISTEN=off TOLLGATE_ACCESS_LOG=off TOLLGATE_LOG_LEVEL=warn \
TOLLGATE_PREFIX="$WORK/tg" taskset -c 0 "$TOLLGATE" run & TG=$!; PIDS+=($TG)
wait_port $TG_PORT

# h2load_run NAME URL PIDS ARGS... -> a result line: name|req/s|-|-|cpu µs per request|rss
h2load_run() {
  local name=$1 url=$2 pids=$3; shift 3
  local before after
  before=$(cpu_ticks $pids)
  taskset -c 1 h2load "$@" "$url" >"$WORK/h2load.txt" 2>&1 || true
  after=$(cpu_ticks $pids)
  local rps done_n
  rps=$(awk '/^finished in/{print $4}' "$WORK/h2load.txt")
  done_n=$(awk '/^requests:/{print $8}' "$WORK/h2load.txt")
  local cpu_us
  cpu_us=$(awk -v a="$after" -v b="$before" -v t="$TICK" -v n="${done_n:-0}" 'BEGIN{ if (n>0) printf "%.2f", (a-b)/t*1e6/n; else print "nan" }')
  printf '%s|%s|0|0|%s|%s|\n' "$name" "${rps:-0}" "$cpu_us" "$(rss_kib $pids)" >>"$WORK/results"
  printf '  %-26s %10s req/s  cpu/req %8s us  (%s done)\n' "$name" "${rps:-0}" "$cpu_us" "${done_n:-0}"
}

: >"$WORK/results"
NG=$(family "$NGINX_PID")
# Warm up both.
taskset -c 1 h2load -n 2000 -c 10 "https://127.0.0.1:$NGINX_PORT/" >/dev/null 2>&1 || true
taskset -c 1 h2load -n 2000 -c 10 "https://127.0.0.1:$TG_PORT/" >/dev/null 2>&1 || true
for r in $(seq "$ROUNDS"); do
  echo "== round $r/$ROUNDS"
  h2load_run "nginx handshakes" "https://127.0.0.1:$NGINX_PORT/" "$NG" -n "$CONNS_HS" -c "$CONNS_HS" -m 1
  h2load_run "tollgate handshakes" "https://127.0.0.1:$TG_PORT/" "$TG" -n "$CONNS_HS" -c "$CONNS_HS" -m 1
  h2load_run "nginx h2 requests" "https://127.0.0.1:$NGINX_PORT/" "$NG" -D "$DURATION" -c "$CONNS" -m 10
  h2load_run "tollgate h2 requests" "https://127.0.0.1:$TG_PORT/" "$TG" -D "$DURATION" -c "$CONNS" -m 10
done
median_results

without_section TLS >"$WORK/md"
{
  cat "$WORK/md"
  echo "## TLS"
  echo
  echo "Produced by \`bench/tls.sh\` ($(date -u +%Y-%m-%d), median of ${ROUNDS} interleaved rounds; $($NGINX -v 2>&1 | sed 's/.*: //'), $(h2load --version 2>&1 | head -1))."
  echo "Same ECDSA P-256 certificate; each proxy one worker on CPU 0, proxying to one nginx backend; h2load and the backend on CPU 1."
  echo "Handshakes: ${CONNS_HS} new connections at once, one request each (full handshakes). h2: ${CONNS} connections × 10 streams for ${DURATION}s."
  echo
  echo "| scenario | nginx /s | tollgate /s | ratio | nginx CPU µs each | tollgate CPU µs each | CPU ratio |"
  echo "|---|---:|---:|---:|---:|---:|---:|"
  for s in handshakes "h2 requests"; do
    n=$(field "nginx $s" 2); t=$(field "tollgate $s" 2); nc=$(field "nginx $s" 5); tc=$(field "tollgate $s" 5)
    echo "| $s | $n | $t | $(ratio "$t" "$n") | $nc | $tc | $(ratio "$tc" "$nc") |"
  done
  echo
  echo "Target: ≥ 1.0× nginx for both."
  echo
} >"$OUT_MD"
cat "$WORK/results"
awk '/^## TLS/{p=1} /^## / && !/^## TLS/{p=0} p' "$OUT_MD"
