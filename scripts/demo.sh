#!/usr/bin/env bash
# The main job, from a bare clone: install deps, build, make the demo data set (CC0 brick
# photograph + synthetic defects), train a U-Flow model on the good crops, evaluate and
# calibrate it, serve it with uflowd and score a defective and a good image over HTTP.
# Everything lands in out/. UFLOW_DEMO_EPOCHS (default 20) trades time for quality.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
[ -f build/build.ninja ] || meson setup build --buildtype=release >/dev/null
ninja -C build >/dev/null
U=build/cli/uflow
D=out/demo-data
M=out/demo.safetensors
mkdir -p out

echo "== 1. data: good brick crops to train on, held-out good and defective crops with masks =="
$U gen-demo --out "$D" --seed 1 --train 100 --force

echo "== 2. train (random-init ResNet-18 backbone: no ImageNet weights can be downloaded here) =="
t0=$(date +%s)
$U train --data "$D/train/good" --out "$M" --input-size 256 --epochs "${UFLOW_DEMO_EPOCHS:-20}" \
  --batch-size 8 --seed 1 --name brick-demo --checkpoint-every 0
echo "trained in $(( $(date +%s) - t0 )) s"

echo "== 3. evaluate on the held-out test set and store the thresholds in the model =="
$U eval --model "$M" --good "$D/test/good" --anomalous "$D/test/defect" \
  --masks "$D/ground_truth/defect" --json out/demo-eval.json --calibrate | sed -n '1,12p'
echo "(every number and per-image rows: out/demo-eval.json)"

BAD=$D/test/defect/0000_scratch.png
GOOD=$D/test/good/0000.png
echo "== 4. heatmaps and overlays (uflow predict) =="
$U predict --model "$M" --heatmap-dir out/demo-maps "$BAD" "$GOOD"

echo "== 5. serve with uflowd and score over HTTP =="
PORT=${UFLOW_DEMO_PORT:-18080}
build/server/uflowd --model demo="$M" --listen 127.0.0.1:$PORT --workers 1 \
  --threads-per-worker 2 >out/uflowd.log 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  build/server/uflowd --healthcheck "http://127.0.0.1:$PORT/readyz" && break
  sleep 0.1
done
for img in "$BAD" "$GOOD"; do
  echo "POST $img"
  curl -sS --fail-with-body -H 'Content-Type: image/png' --data-binary @"$img" \
    "http://127.0.0.1:$PORT/v1/models/demo/predict?heatmap=false"
  echo
done
kill -TERM $pid
wait $pid && echo "uflowd drained and exited 0 (log: out/uflowd.log)"
trap - EXIT
echo "heatmap/overlay PNGs: out/demo-maps/0000_scratch.overlay.png (the scratch is red), out/demo-maps/0000.overlay.png (good)"
