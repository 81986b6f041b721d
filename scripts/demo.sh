#!/usr/bin/env bash
# The main job, from a bare clone: install deps, build, make a model, score an image.
# (Until the daemon and the trained demo model land, the model is a seeded random one:
# its scores are not meaningful, the pipeline is.)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
[ -f build/build.ninja ] || meson setup build --buildtype=release >/dev/null
ninja -C build >/dev/null
mkdir -p out
build/cli/uflow create --out out/demo.safetensors --backbone resnet18 --input-size 256 --seed 1 --name demo
build/cli/uflow inspect out/demo.safetensors
build/cli/uflow predict --model out/demo.safetensors --heatmap-dir out \
  tests/golden/inputs/defect_640x480.jpg tests/golden/inputs/texture_300x280.png
