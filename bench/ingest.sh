#!/usr/bin/env bash
# Ingest throughput and ack latency of one node, measured with pulse-sim on
# the same machine:
#   (a) 1,000 devices x 1 reading per frame   (b) 100 devices x 100 readings per frame
# Each scenario runs RUNS times against a fresh node on a temp dir; the
# medians are printed. Usage: bench/ingest.sh [RUNS] [DURATION]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
duration=${2:-10s}
build=${PULSE_BUILD_DIR:-build}
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$tmp"' EXIT

scenario() {  # name, then pulse-sim options
  local name=$1; shift
  for i in $(seq "$runs"); do
    rm -rf "$tmp/db" "$tmp/node.out"  # an old start-up line must not be read as this one
    "$build/node/pulse-node" --config-file=configs/pulse-node.ini --net.port=0 \
      --storage.path="$tmp/db" --log.level=warn >"$tmp/node.out" 2>"$tmp/node.err" &
    local pid=$!
    for _ in $(seq 100); do grep -q "listening on" "$tmp/node.out" && break; sleep 0.1; done
    local addr; addr=$(grep "listening on" "$tmp/node.out" | awk '{print $NF}')
    "$build/sim/pulse-sim" --node="$addr" --duration="$duration" --quiet \
      --report="$tmp/$name-$i.json" "$@" >"$tmp/sim.out" 2>&1 || { cat "$tmp/sim.out"; }
    kill -TERM $pid; wait $pid || true
  done
  python3 - "$name" "$tmp" "$runs" <<'PY'
import json, statistics, sys
name, tmp, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
rs = [json.load(open(f"{tmp}/{name}-{i}.json")) for i in range(1, runs + 1)]
med = lambda k: statistics.median(r[k] for r in rs)
lat = lambda k: statistics.median(r["latency_ms"][k] for r in rs)
print(f"{name}: acked {med('throughput_per_s'):,.0f} readings/s (runs: "
      + ", ".join(f"{r['throughput_per_s']:,.0f}" for r in rs)
      + f"), ack latency p50 {lat('p50'):.2f} ms p99 {lat('p99'):.2f} ms, "
      + f"unacked {sum(r['sent'] - r['acked'] for r in rs)}, errors {sum(sum(r['errors'].values()) for r in rs)}")
PY
}

scenario a-1000x1 --devices=1000 --batch=1 --rate=0 --window=${WINDOW_A:-8} --ramp-up=2s
scenario b-100x100 --devices=100 --batch=100 --rate=0 --window=${WINDOW_B:-400}
