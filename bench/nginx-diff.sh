#!/usr/bin/env bash
# Differential check of the nginx front door: the same nginx configuration
# served by real nginx and by `tollgate run --nginx-conf`, the same requests
# sent to both, statuses and the backend's answer (which backend, which URI)
# compared. Prints each disagreement and the agreement rate.
#
# Backends: one nginx (loopback ports 18801-18804) answering
# "<name> <uri>" so the answer shows where a request went and with what URI.
#
# Usage: bench/nginx-diff.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
WORK=$(mktemp -d /tmp/tollgate-nginx-diff.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
if ! command -v nginx >/dev/null 2>&1 || ! command -v curl >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx curl >/dev/null
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
cargo build --release --quiet
TOLLGATE=$ROOT/target/release/tollgate
. "$ROOT/bench/lib.sh"

mkdir -p "$WORK/backends" "$WORK/nginx"
cat >"$WORK/backends/nginx.conf" <<CONF
worker_processes 1; daemon off; error_log $WORK/backends/error.log; pid $WORK/backends/nginx.pid;
events {}
http { access_log off; default_type text/plain;
  server { listen 127.0.0.1:18801; location / { return 200 "main \$request_uri\n"; } }
  server { listen 127.0.0.1:18802; location / { return 200 "php \$request_uri\n"; } }
  server { listen 127.0.0.1:18803; location / { return 200 "static \$request_uri\n"; } }
  server { listen 127.0.0.1:18804; location / { return 200 "exact \$request_uri\n"; } }
}
CONF
"$NGINX" -p "$WORK/backends" -c "$WORK/backends/nginx.conf" 2>/dev/null & PIDS+=($!)
wait_port 18801

# The configuration under test (no main-context directives: nginx needs
# its own events/pid lines, added below for nginx only).
cat >"$WORK/site.conf" <<'CONF'
upstream pool { server 127.0.0.1:18801; server 127.0.0.1:18804; }
server {
  listen 127.0.0.1:18810;
  server_name example.com;
  location / { proxy_pass http://127.0.0.1:18801; }
  location /api/ { proxy_pass http://127.0.0.1:18801/v2/; }
  location /v1 { proxy_pass http://127.0.0.1:18801/legacy; }
  location ~ \.php$ { proxy_pass http://127.0.0.1:18802; }
  location ~* \.(png|jpg)$ { proxy_pass http://127.0.0.1:18803; }
  location ^~ /static/ { proxy_pass http://127.0.0.1:18803; }
  location = /exact { proxy_pass http://127.0.0.1:18804; }
  location /pool/ { proxy_pass http://pool/; }
}
server {
  listen 127.0.0.1:18810;
  server_name other.test *.wild.test;
  location / { proxy_pass http://127.0.0.1:18804; }
}
CONF
cat >"$WORK/nginx/nginx.conf" <<CONF
worker_processes 1; daemon off; error_log $WORK/nginx/error.log; pid $WORK/nginx/nginx.pid;
events {}
http { access_log off; include $WORK/site.conf; }
CONF
"$NGINX" -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" 2>/dev/null & PIDS+=($!)
wait_port 18810
cp "$WORK/site.conf" "$WORK/tollgate.conf"
sed -i 's/127.0.0.1:18810/127.0.0.1:18811/' "$WORK/tollgate.conf"
TOLLGATE_PREFIX="$WORK/tg" TOLLGATE_ADMIN_LISTEN=off TOLLGATE_STATUS_LISTEN=off TOLLGATE_ACCESS_LOG=off \
TOLLGATE_LOG_LEVEL=warn "$TOLLGATE" run --nginx-conf "$WORK/tollgate.conf" & PIDS+=($!)
wait_port 18811

total=0 agree=0
while read -r host path; do
  [ -z "$host" ] && continue
  a=$(curl -s -o "$WORK/a" -w '%{http_code}' -H "Host: $host" "http://127.0.0.1:18810$path"; echo " $(head -c 200 "$WORK/a")")
  b=$(curl -s -o "$WORK/b" -w '%{http_code}' -H "Host: $host" "http://127.0.0.1:18811$path"; echo " $(head -c 200 "$WORK/b")")
  total=$((total + 1))
  if [ "$a" = "$b" ]; then agree=$((agree + 1)); else printf 'DIFF %s %s\n  nginx:    %s\n  tollgate: %s\n' "$host" "$path" "$a" "$b"; fi
done <<'REQ'
example.com /
example.com /index.html
example.com /api/users
example.com /api/
example.com /api
example.com /v1
example.com /v1/x
example.com /v1x
example.com /blog/index.php
example.com /static/app.php
example.com /static/logo.png
example.com /img/logo.PNG
example.com /img/logo.png?x=1
example.com /exact
example.com /exact/
example.com /exactly
example.com /pool/a
example.com /pool/b
example.com /a/../api/users
example.com /a//b
example.com /%7Euser/
example.com /search?q=a%20b&x=1
other.test /
other.test /api/users
x.wild.test /deep/path
unknown.test /
unknown.test /api/users
REQ
echo "agreement: $agree / $total"
