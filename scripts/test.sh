#!/usr/bin/env bash
# Sets up, builds and runs the whole test suite (unit + integration against
# real pulse-node processes on loopback).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
build_dir=${PULSE_BUILD_DIR:-build}
ctest --test-dir "$build_dir" --output-on-failure -j "$(nproc)" --timeout 600 "$@"
