#!/usr/bin/env bash
# The main job, from a bare clone: install deps, build, make a model, serve it with uflowd
# and score an image over HTTP (plus the same with the CLI).
# (Until training lands the model is a seeded random one: its scores are not meaningful,
# the pipeline is.)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
[ -f build/build.ninja ] || meson setup build --buildtype=release >/dev/null
ninja -C build >/dev/null
mkdir -p out
build/cli/uflow create --out out/demo.safetensors --backbone resnet18 --input-size 256 --seed 1 --name demo
build/cli/uflow inspect out/demo.safetensors

echo "== uflow predict (CLI) =="
build/cli/uflow predict --model out/demo.safetensors --heatmap-dir out --mask-dir out \
  tests/golden/inputs/defect_640x480.jpg tests/golden/inputs/texture_300x280.png

echo "== uflowd (HTTP) =="
PORT=${UFLOW_DEMO_PORT:-18080}
build/server/uflowd --model demo=out/demo.safetensors --listen 127.0.0.1:$PORT --workers 1 \
  --threads-per-worker 2 >out/uflowd.log 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  build/server/uflowd --healthcheck "http://127.0.0.1:$PORT/readyz" && break
  sleep 0.1
done
curl -sS --fail-with-body -H 'Content-Type: image/jpeg' \
  --data-binary @tests/golden/inputs/defect_640x480.jpg \
  "http://127.0.0.1:$PORT/v1/models/demo/predict?heatmap=false&mask=true"
echo
kill -TERM $pid
wait $pid && echo "uflowd drained and exited 0 (log: out/uflowd.log)"
trap - EXIT
