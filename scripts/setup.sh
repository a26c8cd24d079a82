#!/usr/bin/env bash
# Installs the Debian packages Pulse builds with (only those missing) and
# builds it into build/ (or $PULSE_BUILD_DIR). Used by demo.sh, test.sh and CI.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(cmake ninja-build g++ ccache pkg-config
  libcaf-dev libboost1.81-dev librocksdb-dev nlohmann-json3-dev libspdlog-dev
  catch2 libsimdjson-dev libzip-dev libpugixml-dev curl)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  sudo_cmd=()
  [[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

build_dir=${PULSE_BUILD_DIR:-build}
build_type=${PULSE_BUILD_TYPE:-RelWithDebInfo}
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE="$build_type" ${PULSE_CMAKE_ARGS:-} >/dev/null
cmake --build "$build_dir" -j "$(nproc)"
