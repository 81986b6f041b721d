#!/usr/bin/env bash
# http_bench.sh — uflowd under load with wrk, against the library alone (`uflow bench`), in
# one run. Starts uflowd on 127.0.0.1 (ephemeral port) with the fixture model, POSTs a
# 640x480 JPEG at concurrency 1, 2 and 8 (with and without the heatmap PNG), and prints
# throughput, p50/p99 latency and the HTTP overhead at concurrency 1 versus `uflow bench
# --threads 1` (which times uf_ctx_run only: no JPEG decode, resize, PNG encode or HTTP).
#
#   bench/http_bench.sh                 # build/ of the source tree, 10 s per point
#   DURATION=5 WORKERS=1 BUILD=/tmp/b bench/http_bench.sh
#
# Needs wrk (Debian package `wrk`): installed with apt-get when running as root, otherwise
# the script says how. Not a test: numbers depend on the machine and its load.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$ROOT/build}
DURATION=${DURATION:-10}
WORKERS=${WORKERS:-$(nproc)}
CONCS=${CONCS:-"1 2 8"}
MODEL=$ROOT/tests/golden/resnet18_256_s4.safetensors
IMAGE=$ROOT/tests/golden/inputs/defect_640x480.jpg
UFLOWD=$BUILD/server/uflowd
UFLOW=$BUILD/cli/uflow

if ! command -v wrk >/dev/null; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    echo "wrk missing: apt-get install -y wrk" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
  else
    echo "wrk is not installed: sudo apt-get install wrk   (Debian/Ubuntu package 'wrk')" >&2
    exit 1
  fi
fi
for f in "$UFLOWD" "$UFLOW"; do
  [ -x "$f" ] || { echo "missing $f: build first (ninja -C $BUILD)" >&2; exit 1; }
done

TMP=$(mktemp -d /tmp/uflowd_bench_XXXXXX)
PID=
cleanup() {
  if [ -n "$PID" ]; then kill -TERM "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; fi
  rm -rf "$TMP"
}
trap cleanup EXIT

# wrk: POST the JPEG; print one parseable line at the end (latencies in ms)
cat > "$TMP/post.lua" <<LUA
local f = assert(io.open("$IMAGE", "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "image/jpeg"
done = function(summary, latency, requests)
  local bad = summary.errors.status + summary.errors.connect + summary.errors.read +
              summary.errors.write + summary.errors.timeout
  io.write(string.format("RESULT %d %.3f %.3f %.3f %.3f %d\n", summary.requests, summary.duration / 1e6,
           latency:percentile(50) / 1e3, latency:percentile(99) / 1e3, latency.mean / 1e3, bad))
end
LUA

"$UFLOWD" --model fixture="$MODEL" --listen 127.0.0.1:0 --port-file "$TMP/port" \
  --workers "$WORKERS" --threads-per-worker 1 --queue-size 256 --log-format json 2>"$TMP/uflowd.log" &
PID=$!
for _ in $(seq 1 300); do [ -s "$TMP/port" ] && break; sleep 0.1; done
PORT=$(cat "$TMP/port")
for _ in $(seq 1 300); do
  "$UFLOWD" --healthcheck "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break; sleep 0.1
done
URL="http://127.0.0.1:$PORT/v1/models/fixture/predict"

lib_bench() { "$UFLOW" bench --model "$MODEL" --threads 1 --iters 30 --warmup 3 --json; }
field() { python3 -c "import json,sys; print(json.loads(sys.stdin.read())['$1'])"; }

echo "# uflowd HTTP benchmark: $(nproc) cores, $WORKERS workers x 1 thread, ${DURATION}s per point"
echo "# model $(basename "$MODEL"), body $(basename "$IMAGE") ($(stat -c %s "$IMAGE") bytes)"
LIB1=$(lib_bench)
LIB_P50=$(echo "$LIB1" | field p50_ms)
echo "uflow bench --threads 1: p50 $LIB_P50 ms, $(echo "$LIB1" | field images_per_s) img/s (uf_ctx_run only)"
printf '%-8s %-6s %10s %10s %10s %10s %7s\n' heatmap conc req/s p50_ms p99_ms mean_ms errors
declare -A P50
for hm in false true; do
  for c in $CONCS; do
    t=$(( c < 2 ? 1 : 2 ))
    wrk -t "$t" -c "$c" -d "${DURATION}s" --latency -s "$TMP/post.lua" "$URL?heatmap=$hm" >"$TMP/wrk.out" 2>&1
    read -r _ n secs p50 p99 mean bad < <(grep '^RESULT' "$TMP/wrk.out")
    P50[$hm.$c]=$p50
    printf '%-8s %-6s %10.2f %10.1f %10.1f %10.1f %7d\n' "$hm" "$c" "$(awk "BEGIN{print $n / $secs}")" "$p50" "$p99" "$mean" "$bad"
  done
done
LIB2=$(lib_bench)
LIB_P50B=$(echo "$LIB2" | field p50_ms)
echo "uflow bench --threads 1 (again, after the load): p50 $LIB_P50B ms"
REF=$(awk "BEGIN{print ($LIB_P50 + $LIB_P50B) / 2}")
for hm in false true; do
  [ -n "${P50[$hm.1]:-}" ] || continue
  printf 'HTTP overhead at concurrency 1, heatmap=%s: p50 %.1f ms vs library %.1f ms: +%.1f ms (%+.1f %%)\n' "$hm" \
    "${P50[$hm.1]}" "$REF" "$(awk "BEGIN{print ${P50[$hm.1]} - $REF}")" "$(awk "BEGIN{print 100 * (${P50[$hm.1]} - $REF) / $REF}")"
done
# where the time goes inside the server (one request's timing_ms, from the daemon's answer)
python3 - "$URL" "$IMAGE" <<'PY' || true
import json, sys, urllib.request
url, img = sys.argv[1], open(sys.argv[2], "rb").read()
for hm in ("false", "true"):
    req = urllib.request.Request(f"{url}?heatmap={hm}", data=img, headers={"Content-Type": "image/jpeg"})
    t = json.load(urllib.request.build_opener(urllib.request.ProxyHandler({})).open(req))["timing_ms"]
    print(f"server timing_ms heatmap={hm}: " + ", ".join(f"{k} {v:.1f}" for k, v in t.items()))
PY
