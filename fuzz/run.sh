#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan+UBSan) in build-fuzz/ and runs each for SECONDS,
# one after the other, starting from its committed seeds (fuzz/corpus/NAME/) plus whatever
# earlier runs added in build-fuzz/corpus/NAME/ (kept between runs; remove it to start over).
# Prints one line per target and exits 1 if any target found a crash, a leak, a timeout, an
# out-of-memory or a sanitizer report, or could not run; the reproducer and the full log are
# kept in build-fuzz/artifacts/.
#
# Usage: fuzz/run.sh [SECONDS=60] [TARGET...]        (targets: fuzz/fuzz_*.c)
# Environment: FUZZ_BUILD (build directory, default build-fuzz), FUZZ_ARGS (extra libFuzzer
# flags, e.g. "-runs=1000000"), FUZZ_FRESH=1 (ignore the kept corpus).
set -uo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
shift || true
case "$secs" in ''|*[!0-9]*) echo "usage: fuzz/run.sh [SECONDS] [TARGET...]" >&2; exit 2 ;; esac
dir=${FUZZ_BUILD:-build-fuzz}

command -v clang >/dev/null || { echo "fuzz: clang is not installed"; exit 1; }
# libFuzzer's runtime is in libclang-rt-14-dev on Debian 12; fail with the fix, not a link error.
if ! echo 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n){(void)d;(void)n;return 0;}' |
     clang -x c -fsanitize=fuzzer -o /dev/null - 2>/dev/null; then
  echo "fuzz: clang cannot link -fsanitize=fuzzer (install libclang-rt-14-dev)"; exit 1
fi
# A build directory set up without -Dfuzz=true (or by gcc) is reconfigured, not trusted.
if [ -f "$dir/build.ninja" ] && ! meson introspect --buildoptions "$dir" 2>/dev/null |
     python3 -c 'import json,sys; o={x["name"]:x["value"] for x in json.load(sys.stdin)}; sys.exit(0 if o.get("fuzz") is True else 1)'; then
  echo "fuzz: $dir is not a fuzz build; set up again"; rm -rf "$dir"
fi
if [ ! -f "$dir/build.ninja" ]; then
  CC=clang meson setup "$dir" -Dfuzz=true --buildtype=debugoptimized \
    -Db_sanitize=address,undefined -Db_lundef=false >"$dir.setup.log" 2>&1 ||
    { echo "fuzz: setup failed (see $dir.setup.log)"; exit 1; }
  rm -f "$dir.setup.log"
fi
ninja -C "$dir" >"$dir/fuzz-build.log" 2>&1 || { echo "fuzz: build failed"; tail -20 "$dir/fuzz-build.log"; exit 1; }

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for f in fuzz/fuzz_*.c; do [ -e "$f" ] && targets+=("$(basename "$f" .c)"); done
fi
[ ${#targets[@]} -gt 0 ] || { echo "fuzz: no targets"; exit 1; }
mkdir -p "$dir/artifacts" "$dir/corpus"
# allocator_may_return_null: a failed allocation must be handled, not abort the run;
# the suppressions are the known libvips/glib one-time allocations (tests/lsan.supp).
export ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1:abort_on_error=0:${ASAN_OPTIONS_EXTRA:-}
export LSAN_OPTIONS=suppressions=$PWD/tests/lsan.supp:print_suppressions=0
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
fail=0
for t in "${targets[@]}"; do
  exe="$dir/fuzz/$t"
  if [ ! -x "$exe" ]; then echo "$t: FAILED (not built: is it in fuzz/meson.build?)"; fail=1; continue; fi
  work="$dir/corpus/$t"
  [ "${FUZZ_FRESH:-0}" = 1 ] && rm -rf "$work"
  mkdir -p "$work"
  seeds=()
  [ -d "fuzz/corpus/$t" ] && seeds=("fuzz/corpus/$t") || echo "$t: warning: no committed seeds in fuzz/corpus/$t"
  log="$dir/artifacts/$t.log"
  rm -f "$dir/artifacts/$t-"*
  start=$(date +%s)
  # The outer timeout catches a target that hangs outside libFuzzer's own clock (start-up).
  # shellcheck disable=SC2086
  timeout -k 10 $((secs + 120)) "$exe" "$work" "${seeds[@]}" -max_total_time="$secs" -timeout=10 \
    -rss_limit_mb=2048 -malloc_limit_mb=2048 -artifact_prefix="$dir/artifacts/$t-" \
    -print_final_stats=1 ${FUZZ_ARGS:-} >"$log" 2>&1
  rc=$?
  took=$(( $(date +%s) - start ))
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*')
  units=$(find "$work" -type f | wc -l)
  rate=$(( ${execs:-0} / (took > 0 ? took : 1) ))
  if [ $rc -eq 0 ] && [ -n "$execs" ]; then
    echo "$t: ok, ${execs} executions in ${took} s (${rate}/s), coverage ${cov:-?} edges, corpus ${units} units"
  else
    why="exit $rc"
    [ $rc -eq 124 ] || [ $rc -eq 137 ] && why="hung (killed after $((secs + 120)) s)"
    grep -q 'ERROR: libFuzzer: timeout' "$log" && why="an input took > 10 s"
    grep -q 'out-of-memory' "$log" && why="out of memory"
    grep -q 'ERROR: LeakSanitizer' "$log" && why="leak"
    grep -q 'ERROR: AddressSanitizer\|runtime error:\|deadly signal' "$log" && why="crash / sanitizer report"
    art=$(ls "$dir/artifacts/$t-"* 2>/dev/null | head -1)
    echo "$t: FAILED ($why) after ${execs:-?} executions; log $log${art:+, reproducer $art}"
    grep -m1 -A25 'ERROR:\|runtime error:' "$log" | head -30
    fail=1
  fi
done
exit $fail
