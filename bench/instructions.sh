#!/usr/bin/env bash
# Deterministic companion to proxy-vs-nginx.sh: userspace instructions per
# proxied request, counted by valgrind's callgrind for tollgate and nginx
# (one worker each, same backend, 20,000 keep-alive requests over 50
# connections from h2load after a 2,000-request warm-up). Unlike wall-clock
# CPU time on a shared VM, these counts repeat run to run. Kernel work is not
# counted (both proxies make the same 2 writev + 2 recvfrom per request).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
WORK=$(mktemp -d /tmp/tollgate-instr.XXXXXX)
N=${N:-20000}
PIDS=()
cleanup() { for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
need() { command -v "$1" >/dev/null 2>&1; }
if ! need nginx || ! need h2load || ! need valgrind; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx nghttp2-client valgrind >/dev/null
fi
cargo build --profile profiling --quiet
wait_port() { for _ in $(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }

cat >"$WORK/backend.conf" <<CONF
daemon off; worker_processes 1; error_log $WORK/b.log; pid $WORK/b.pid;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
  server { listen 127.0.0.1:18180; location / { return 200 "hello from the backend\n"; } } }
CONF
nginx -p "$WORK" -c "$WORK/backend.conf" 2>/dev/null & PIDS+=($!)
wait_port 18180
cat >"$WORK/proxy.conf" <<CONF
master_process off; daemon off; worker_processes 1; error_log $WORK/p.log; pid $WORK/p.pid;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
  upstream backend { server 127.0.0.1:18180; keepalive 64; }
  server { listen 127.0.0.1:18181; location / { proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection ""; } } }
CONF
cat >"$WORK/kong.yml" <<YML
_format_version: "3.0"
services:
- name: backend
  url: http://127.0.0.1:18180
  routes: [{name: all, paths: [/]}]
YML

count() { # LABEL PORT CMD... -> instructions per request
  local label=$1 port=$2; shift 2
  valgrind --tool=callgrind --callgrind-out-file="$WORK/$label.cg" "$@" 2>"$WORK/$label.vg" &
  local pid=$!; PIDS+=($pid)
  wait_port "$port"
  h2load --h1 -n 2000 -c 50 "http://127.0.0.1:$port/" >/dev/null 2>&1
  callgrind_control -z "$pid" >/dev/null 2>&1
  h2load --h1 -n "$N" -c 50 "http://127.0.0.1:$port/" 2>&1 | grep -q "$N succeeded" || echo "warning: not all requests succeeded for $label" >&2
  callgrind_control -d "$pid" >/dev/null 2>&1
  sleep 1; kill "$pid"; wait "$pid" 2>/dev/null || true
  local total; total=$(callgrind_annotate "$WORK/$label.cg.1" 2>/dev/null | awk '/PROGRAM TOTALS/{gsub(",","",$1); print $1; exit}')
  echo $((total / N))
}
NG=$(count nginx 18181 nginx -p "$WORK" -c "$WORK/proxy.conf")
TG=$(TOLLGATE_DATABASE=off TOLLGATE_DECLARATIVE_CONFIG="$WORK/kong.yml" TOLLGATE_WORKER_THREADS=1 \
  TOLLGATE_PROXY_LISTEN=127.0.0.1:18182 TOLLGATE_ADMIN_LISTEN=off TOLLGATE_STATUS_LISTEN=off \
  TOLLGATE_ACCESS_LOG=off TOLLGATE_LOG_LEVEL=warn TOLLGATE_PREFIX="$WORK/tg" \
  count tollgate 18182 "$ROOT/target/profiling/tollgate" run)
RATIO=$(awk -v a="$TG" -v b="$NG" 'BEGIN{printf "%.2f", a/b}')
echo "userspace instructions per proxied request: nginx $NG, tollgate $TG, ratio $RATIO"
# Replace the "Instruction counts" section of docs/benchmarks.md.
OUT_MD=${OUT_MD:-$ROOT/docs/benchmarks.md}
touch "$OUT_MD"
awk '/^## Instruction counts/{skip=1} /^## / && !/^## Instruction counts/{skip=0} !skip' "$OUT_MD" >"$WORK/md"
{
  cat "$WORK/md"
  echo "## Instruction counts"
  echo
  echo "Produced by \`bench/instructions.sh\` ($(date -u +%Y-%m-%d)): userspace instructions per proxied request under"
  echo "callgrind, $N keep-alive requests over 50 connections, one worker each. Repeatable run to run."
  echo
  echo "| proxy | instructions / request |"
  echo "|---|---:|"
  echo "| nginx $($(command -v nginx) -v 2>&1 | sed 's/.*\///') | $NG |"
  echo "| tollgate | $TG |"
  echo "| ratio | $RATIO |"
} >"$OUT_MD"
