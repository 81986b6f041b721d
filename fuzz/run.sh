#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan+UBSan) in build-fuzz/ and runs each for SECONDS on
# a scratch copy of its committed seed corpus. Exit 1 if any target finds a crash, a leak or a
# sanitizer report (the reproducer is kept in build-fuzz/artifacts/).
# Usage: fuzz/run.sh [SECONDS=60] [TARGET...]
set -uo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
shift || true
dir=build-fuzz
if [ ! -f "$dir/build.ninja" ]; then
  CC=clang meson setup "$dir" -Dfuzz=true --buildtype=debugoptimized \
    -Db_sanitize=address,undefined -Db_lundef=false >/dev/null || { echo "fuzz setup failed"; exit 1; }
fi
ninja -C "$dir" >/dev/null || { echo "fuzz build failed"; exit 1; }
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for f in fuzz/*.c; do targets+=("$(basename "$f" .c)"); done
fi
mkdir -p "$dir/artifacts"
export ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
fail=0
for t in "${targets[@]}"; do
  exe="$dir/fuzz/$t"
  [ -x "$exe" ] || { echo "$t: not built"; fail=1; continue; }
  work=$(mktemp -d)
  [ -d "fuzz/corpus/$t" ] && cp -r "fuzz/corpus/$t/." "$work/"
  log="$dir/artifacts/$t.log"
  "$exe" "$work" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix="$dir/artifacts/$t-" -print_final_stats=1 >"$log" 2>&1
  rc=$?
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$')
  if [ $rc -eq 0 ]; then
    echo "$t: ok, ${execs:-?} executions in ${secs}s"
  else
    echo "$t: FAILED (exit $rc), see $log"; tail -30 "$log"; fail=1
  fi
  rm -rf "$work"
done
exit $fail
