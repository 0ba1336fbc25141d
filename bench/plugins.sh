#!/usr/bin/env bash
# Requests/s and proxy CPU per request through a route with key-auth, jwt
# (HS256 and RS256), basic-auth, and rate-limiting (policy local, policy
# redis against a local redis-server, and redis batched with sync_rate 0.1;
# limits never reached), each as a ratio
# to the same service with no plugin. One worker pinned to CPU 0; wrk and the nginx backend on CPU 1.
# Rounds are interleaved and the median is reported (this VM is noisy).
# Appends a "Plugins" section to docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
WORK=$(mktemp -d /tmp/tollgate-plugin-bench.XXXXXX)
DURATION=${DURATION:-5}
ROUNDS=${ROUNDS:-3}
PIDS=()
cleanup() { for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
need() { command -v "$1" >/dev/null 2>&1; }
if ! need nginx || ! need wrk || ! need python3 || ! need openssl || ! need redis-server; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx wrk python3 openssl redis-server >/dev/null
fi
cargo build --release --quiet
wait_port() { for _ in $(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.05; done; return 1; }
cat >"$WORK/backend.conf" <<CONF
daemon off; worker_processes 1; error_log $WORK/b.log; pid $WORK/b.pid;
events { worker_connections 4096; }
http { access_log off; server { listen 127.0.0.1:18580; location / { return 200 "ok\n"; } } }
CONF
taskset -c 1 nginx -p "$WORK" -c "$WORK/backend.conf" 2>/dev/null & PIDS+=($!)
wait_port 18580
taskset -c 1 redis-server --port 18583 --bind 127.0.0.1 --save "" --appendonly no >/dev/null & PIDS+=($!)
wait_port 18583
TOLLGATE_DATABASE=sqlite TOLLGATE_PREFIX="$WORK/tg" TOLLGATE_WORKER_THREADS=1 \
TOLLGATE_PROXY_LISTEN=127.0.0.1:18581 TOLLGATE_ADMIN_LISTEN=127.0.0.1:18582 TOLLGATE_STATUS_LISTEN=off \
TOLLGATE_ACCESS_LOG=off TOLLGATE_LOG_LEVEL=error taskset -c 0 "$ROOT/target/release/tollgate" run & TG=$!; PIDS+=($TG)
wait_port 18582
A=http://127.0.0.1:18582
post() { curl -sf -o /dev/null -X POST "$A$1" "${@:2}"; }
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$WORK/rsa.pem" 2>/dev/null
openssl pkey -in "$WORK/rsa.pem" -pubout -out "$WORK/rsa.pub" 2>/dev/null
for name in none key jwths jwtrs basic rllocal rlredis rlbatch; do
  post /services --data name=$name --data url=http://127.0.0.1:18580
  post /services/$name/routes --data "paths[]=/$name"
done
post /consumers --data username=u
post /consumers/u/key-auth --data key=bench-key
post /consumers/u/basic-auth --data username=u --data password=pw
post /consumers/u/jwt --data key=hs-iss --data secret=bench-secret-bench-secret-000000
post /consumers/u/jwt --data key=rs-iss --data algorithm=RS256 --data-urlencode "rsa_public_key@$WORK/rsa.pub"
post /services/key/plugins --data name=key-auth
post /services/basic/plugins --data name=basic-auth
post /services/jwths/plugins --data name=jwt
post /services/jwtrs/plugins --data name=jwt
post /services/rllocal/plugins --data name=rate-limiting --data config.minute=1000000000
post /services/rlredis/plugins --data name=rate-limiting --data config.minute=1000000000 \
  --data config.policy=redis --data config.redis.host=127.0.0.1 --data config.redis.port=18583
post /services/rlbatch/plugins --data name=rate-limiting --data config.minute=1000000000 \
  --data config.policy=redis --data config.redis.host=127.0.0.1 --data config.redis.port=18583 \
  --data config.sync_rate=0.1
# Tokens (no expiry claims verified by default).
HS=$(python3 - <<'PY'
import base64, hmac, hashlib, json
b = lambda d: base64.urlsafe_b64encode(json.dumps(d, separators=(",", ":")).encode()).rstrip(b"=").decode()
m = b({"alg": "HS256", "typ": "JWT"}) + "." + b({"iss": "hs-iss"})
s = base64.urlsafe_b64encode(hmac.new(b"bench-secret-bench-secret-000000", m.encode(), hashlib.sha256).digest()).rstrip(b"=").decode()
print(m + "." + s)
PY
)
RSM=$(python3 -c 'import base64,json; b=lambda d: base64.urlsafe_b64encode(json.dumps(d,separators=(",",":")).encode()).rstrip(b"=").decode(); print(b({"alg":"RS256","typ":"JWT"})+"."+b({"iss":"rs-iss"}))')
RSS=$(printf '%s' "$RSM" | openssl dgst -sha256 -sign "$WORK/rsa.pem" | base64 -w0 | tr '+/' '-_' | tr -d '=')
RS="$RSM.$RSS"
BASIC=$(printf 'u:pw' | base64)

measure() { # name path header -> "rps cpu_us"
  local b a out n r
  b=$(sed 's/.*) //' /proc/$TG/stat | awk '{print $12+$13}')
  out=$(taskset -c 1 wrk -t1 -c50 -d"${DURATION}s" -H "$3" "http://127.0.0.1:18581$2/x")
  a=$(sed 's/.*) //' /proc/$TG/stat | awk '{print $12+$13}')
  n=$(echo "$out" | awk '/requests in/{print $1}'); r=$(echo "$out" | awk '/Requests\/sec/{print $2}')
  if echo "$out" | grep -q "Non-2xx"; then echo "warning: $1 got non-2xx answers" >&2; fi
  awk -v a="$a" -v b="$b" -v n="$n" -v r="$r" -v t="$(getconf CLK_TCK)" 'BEGIN{printf "%s %.2f\n", r, (a-b)/t*1e6/n}'
}
taskset -c 1 wrk -t1 -c50 -d2s http://127.0.0.1:18581/none/x >/dev/null
: >"$WORK/res"
run_one() {
  case $1 in
    0) echo "none $(measure none /none 'x-none: 1')" ;;
    1) echo "key-auth $(measure key /key 'apikey: bench-key')" ;;
    2) echo "jwt-HS256 $(measure jwths /jwths "authorization: Bearer $HS")" ;;
    3) echo "jwt-RS256 $(measure jwtrs /jwtrs "authorization: Bearer $RS")" ;;
    4) echo "basic-auth $(measure basic /basic "authorization: Basic $BASIC")" ;;
    5) echo "rate-limiting-local $(measure rllocal /rllocal 'x-none: 1')" ;;
    6) echo "rate-limiting-redis $(measure rlredis /rlredis 'x-none: 1')" ;;
    7) echo "rate-limiting-redis-sync_rate $(measure rlbatch /rlbatch 'x-none: 1')" ;;
  esac
}
# The order rotates every round, so no scenario always runs first or right
# after another one (runs on this VM show position effects).
for round in $(seq 0 $((ROUNDS - 1))); do
  for i in 0 1 2 3 4 5 6 7; do run_one $(((i + round) % 8)) >>"$WORK/res"; done
done
cat "$WORK/res"
# Ratios are taken within each round (a plugin run against the no-plugin run
# just before it, so slow drifts of this VM cancel out), then the median over
# rounds is reported, with the median absolute figures.
awk '{ n=$1; k[n]++; r[n, k[n]]=$2; c[n, k[n]]=$3; if (!(n in seen)) { seen[n]=1; order[++m]=n } }
  function med(arr, n, cnt,   i, j, a, t) { for (i=1;i<=cnt;i++) a[i]=arr[n,i]+0; for (i=1;i<=cnt;i++) for (j=i+1;j<=cnt;j++) if (a[j]<a[i]) {t=a[i];a[i]=a[j];a[j]=t}; return a[int((cnt+1)/2)] }
  END { for (i=1;i<=m;i++) { n=order[i]; for (j=1;j<=k[n];j++) { rr[n,j]=r[n,j]/r["none",j]; cr[n,j]=c[n,j]/c["none",j] }
          printf "%s|%.0f|%.2f|%.2f|%.2f\n", n, med(r,n,k[n]), med(c,n,k[n]), med(rr,n,k[n]), med(cr,n,k[n]) } }' "$WORK/res" >"$WORK/table"
OUT_MD=${OUT_MD:-$ROOT/docs/benchmarks.md}
touch "$OUT_MD"
awk '/^## Plugins/{skip=1} /^## / && !/^## Plugins/{skip=0} !skip' "$OUT_MD" >"$WORK/md"
{
  cat "$WORK/md"
  echo "## Plugins"
  echo
  echo "Produced by \`bench/plugins.sh\` ($(date -u +%Y-%m-%d), ${DURATION}s × ${ROUNDS} interleaved rounds; one worker on CPU 0)."
  echo "Ratios are the median over rounds of each round's plugin run against that round's no-plugin run;"
  echo "the order of the runs rotates every round."
  echo
  echo "| route | req/s | proxy CPU µs/req | req/s ratio to no plugin | CPU ratio |"
  echo "|---|---:|---:|---:|---:|"
  while IFS='|' read -r n r c rr cr; do echo "| $n | $r | $c | $rr | $cr |"; done <"$WORK/table"
  echo
  echo "Targets: auth plugins ≥ 0.9; rate-limiting local ≥ 0.95, redis with sync_rate batching ≥ 0.8."
  echo "Redis runs on the load generator's core (CPU 1); its CPU time is not in the proxy's figure."
  echo
} >"$OUT_MD"
cat "$WORK/table"
