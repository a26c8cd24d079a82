#!/usr/bin/env bash
# Installs the Debian packages Pulse builds with (only those missing) and
# builds it into build/ (or $PULSE_BUILD_DIR). Used by demo.sh, test.sh and CI.
# The browser test (tests/browser) needs Debian's chromium and Node.js + npm
# (installed when missing; a Node.js that is already there, e.g. from
# NodeSource with its own npm, is kept) and runs `npm ci` in tests/browser.
#   --fuzz      also install clang and libFuzzer (scripts/fuzz.sh)
#   --no-build  install packages only
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(cmake ninja-build g++ ccache pkg-config
  libcaf-dev libboost1.81-dev librocksdb-dev nlohmann-json3-dev libspdlog-dev
  catch2 libsimdjson-dev libzip-dev zlib1g-dev libpugixml-dev curl chromium)
# Node.js and npm only when the commands are missing: Debian's npm conflicts
# with a NodeSource nodejs, which brings its own npm.
command -v node >/dev/null 2>&1 || packages+=(nodejs)
command -v npm >/dev/null 2>&1 || packages+=(npm)
build=1
for arg in "$@"; do
  case $arg in
    # libFuzzer and clang's sanitizer runtimes are in libclang-rt-14-dev, which
    # clang-14 only recommends (and recommends are not installed here);
    # llvm-14 brings llvm-symbolizer for readable stack traces.
    --fuzz) packages+=(clang-14 libclang-rt-14-dev llvm-14) ;;
    --no-build) build=0 ;;
    *) echo "setup: unknown argument $arg" >&2; exit 2 ;;
  esac
done
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

# playwright-core for the browser test, from tests/browser/package-lock.json;
# again only when node_modules is missing or older than the lock file.
browser=tests/browser
if [[ ! $browser/node_modules/.package-lock.json -nt $browser/package-lock.json ]]; then
  echo "setup: npm ci in $browser"
  (cd $browser && npm ci --no-audit --no-fund --loglevel=error && touch node_modules/.package-lock.json)
fi

((build)) || exit 0
build_dir=${PULSE_BUILD_DIR:-build}
build_type=${PULSE_BUILD_TYPE:-RelWithDebInfo}
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE="$build_type" ${PULSE_CMAKE_ARGS:-} >/dev/null
cmake --build "$build_dir" -j "$(nproc)"
