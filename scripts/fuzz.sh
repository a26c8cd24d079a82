#!/usr/bin/env bash
# Builds the libFuzzer targets of fuzz/ (clang-14, ASan + UBSan, into
# build-fuzz/ or $PULSE_FUZZ_BUILD_DIR) and runs each for a bounded time.
# Fails on the first crash, sanitizer report, leak, timeout or broken
# invariant, and says how to reproduce it.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]    (default 60 s; targets: wire_frame wire_body query_api ws_frame line_protocol)
#
# Inputs that reach new coverage are kept in build-fuzz/corpus/<target>/ (the
# committed seeds in fuzz/corpus/ are only read), so repeated runs go deeper.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-60}
shift || true
targets=("$@")
((${#targets[@]})) || targets=(wire_frame wire_body query_api ws_frame line_protocol)

./scripts/setup.sh --fuzz --no-build
build_dir=${PULSE_FUZZ_BUILD_DIR:-build-fuzz}
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_COMPILER=clang++-14 -DPULSE_FUZZ=ON >/dev/null
cmake --build "$build_dir" -j "$(nproc)" --target fuzz_targets

export ASAN_SYMBOLIZER_PATH=${ASAN_SYMBOLIZER_PATH:-/usr/lib/llvm-14/bin/llvm-symbolizer}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}
failed=()
for t in "${targets[@]}"; do
  dict=fuzz/wire.dict
  [[ $t == query_api ]] && dict=fuzz/query.dict
  [[ $t == line_protocol ]] && dict=fuzz/line_protocol.dict
  work="$build_dir/corpus/$t"
  artifacts="$build_dir/artifacts/$t"
  mkdir -p "$work" "$artifacts"
  log="$build_dir/fuzz-$t.log"
  echo "fuzz: $t for ${seconds}s (log: $log)"
  # -timeout: one input taking 10 s is a hang; -rss_limit_mb: a parse that
  # balloons memory is a bug too. Extra flags: $PULSE_FUZZ_ARGS.
  if "$build_dir/fuzz/fuzz_$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
      -dict="$dict" -artifact_prefix="$artifacts/" -print_final_stats=1 \
      ${PULSE_FUZZ_ARGS:-} "$work" "fuzz/corpus/$t" >"$log" 2>&1; then
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
    # libFuzzer's own count: the work dir also keeps inputs it later reduced.
    corpus=$(sed -n 's/.*DONE .* corp: \([0-9]*\/[0-9A-Za-z]*\).*/\1/p' "$log")
    echo "fuzz: $t ok: $execs inputs ($rate/s), corpus $corpus"
  else
    echo "fuzz: $t FAILED; the end of $log:"
    tail -n 60 "$log"
    echo "fuzz: reproduce with: $build_dir/fuzz/fuzz_$t $artifacts/<crash-file>"
    ls "$artifacts"
    failed+=("$t")
  fi
done
if ((${#failed[@]})); then
  echo "fuzz: FAILED: ${failed[*]}"
  exit 1
fi
echo "fuzz: ${#targets[@]} passed, 0 failed"
