#!/usr/bin/env bash
# Builds and runs every test; ends with one line "N passed, N failed[, N skipped]".
# Usage: scripts/test.sh [BUILD_DIR] [extra meson setup options...]
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh || exit 1
dir=${1:-build}
shift || true
if [ ! -f "$dir/build.ninja" ]; then
  meson setup "$dir" "$@" >/dev/null || { echo "meson setup failed"; echo "0 passed, 1 failed"; exit 1; }
fi
ninja -C "$dir" || { echo "build failed"; echo "0 passed, 1 failed"; exit 1; }
meson test -C "$dir" --print-errorlogs --num-processes 1
rc=$?
python3 tools/test_summary.py "$dir/meson-logs/testlog.json"
exit $rc
