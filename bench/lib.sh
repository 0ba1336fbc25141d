# Shared helpers for the benchmarks (sourced; expects WORK, CONNS, DURATION
# and TICK to be set by the caller).

cpu_ticks() { # sum utime+stime over the given pids (all threads included)
  local t=0 p
  for p in "$@"; do
    [ -r "/proc/$p/stat" ] || continue
    # fields after the ")" of comm: utime is 14th, stime 15th field overall
    t=$((t + $(sed 's/.*) //' "/proc/$p/stat" | awk '{print $12 + $13}')))
  done
  echo "$t"
}
rss_kib() { local t=0 p; for p in "$@"; do t=$((t + $(awk '/VmRSS/{print $2}' "/proc/$p/status" 2>/dev/null || echo 0))); done; echo "$t"; }
family() { echo "$1"; pgrep -P "$1" || true; } # nginx master + workers
wait_port() { for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 not up" >&2; return 1; }

# run_wrk NAME URL [LUA] -> sets RPS P50 P99 REQS
run_wrk() {
  local url=$1 lua=${2:-} args=()
  [ -n "$lua" ] && args=(-s "$lua")
  taskset -c 1 wrk -t1 -c"$CONNS" -d2s "${args[@]}" "$url" >/dev/null # warm-up
  taskset -c 1 wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency "${args[@]}" "$url" >"$WORK/wrk.txt"
  RPS=$(awk '/Requests\/sec/{print $2}' "$WORK/wrk.txt")
  REQS=$(awk '/requests in/{print $1}' "$WORK/wrk.txt")
  P50=$(awk '$1=="50%"{print $2}' "$WORK/wrk.txt")
  P99=$(awk '$1=="99%"{print $2}' "$WORK/wrk.txt")
  ERRS=$(awk '/Non-2xx|Socket errors/{print}' "$WORK/wrk.txt" | tr '\n' ' ')
}
to_ms() { # wrk latency (e.g. 812.00us, 1.05ms, 1.2s) -> ms
  awk -v v="$1" 'BEGIN{ if (v ~ /us$/) {sub(/us$/,"",v); print v/1000} else if (v ~ /ms$/) {sub(/ms$/,"",v); print v+0} else if (v ~ /s$/) {sub(/s$/,"",v); print v*1000} else print v }'
}
# measure NAME URL "PIDS" [LUA] -> one result line in $WORK/results
measure() {
  local name=$1 url=$2 pids=$3 lua=${4:-}
  local before after
  before=$(cpu_ticks $pids)
  run_wrk "$url" "$lua"
  after=$(cpu_ticks $pids)
  local cpu_us
  cpu_us=$(awk -v a="$after" -v b="$before" -v t="$TICK" -v n="$REQS" 'BEGIN{ if (n>0) printf "%.2f", (a-b)/t*1e6/n; else print "nan" }')
  local rss; rss=$(rss_kib $pids)
  printf '%s|%s|%s|%s|%s|%s|%s\n' "$name" "$RPS" "$(to_ms "$P50")" "$(to_ms "$P99")" "$cpu_us" "$rss" "$ERRS" >>"$WORK/results"
  printf '  %-22s %10s req/s  p50 %8s  p99 %8s  cpu/req %6s us  rss %6s KiB %s\n' "$name" "$RPS" "$P50" "$P99" "$cpu_us" "$rss" "$ERRS"
}

# median_results: replaces $WORK/results (one line per scenario and round)
# with the median of each column per scenario; keeps all rounds in
# $WORK/all-rounds.
median_results() {
  awk -F'|' '
    { n=$1; if (!(n in seen)) { seen[n]=1; order[++k]=n } cnt[n]++; for (c=2; c<=6; c++) v[n, c, cnt[n]] = $c }
    function median(n, c,   m, i, j, a, t) {
      m = cnt[n]; for (i=1; i<=m; i++) a[i] = v[n, c, i] + 0
      for (i=1; i<=m; i++) for (j=i+1; j<=m; j++) if (a[j] < a[i]) { t=a[i]; a[i]=a[j]; a[j]=t }
      return (m % 2) ? a[(m+1)/2] : (a[m/2] + a[m/2+1]) / 2
    }
    END { for (i=1; i<=k; i++) { n=order[i]; printf "%s|%.0f|%.3f|%.3f|%.2f|%.0f|\n", n, median(n,2), median(n,3), median(n,4), median(n,5), median(n,6) } }
  ' "$WORK/results" >"$WORK/median"
  mv "$WORK/results" "$WORK/all-rounds"
  mv "$WORK/median" "$WORK/results"
}

# field NAME COLUMN: one column of a scenario's line in $WORK/results.
field() { awk -F'|' -v n="$1" -v f="$2" '$1==n{print $f}' "$WORK/results"; }
# ratio A B: A/B with two decimals.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b>0) printf "%.2f", a/b; else print "n/a" }'; }
# without_section TITLE: $OUT_MD with its "## TITLE" section left out (the
# caller writes it anew at the end).
without_section() {
  touch "$OUT_MD"
  awk -v t="## $1" '$0==t{skip=1; next} /^## /{skip=0} !skip' "$OUT_MD"
}
