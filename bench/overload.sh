#!/usr/bin/env bash
# Overload: offer a node twice what it can take, for a bounded time, and show
# that it stays up, that its memory stays bounded, and that every reading sent
# is acked or explicitly refused (pulse-sim --verify: acked == stored).
#   1. capacity C: 1,000 devices x BATCH readings per frame (default 1), as
#      fast as acks come back with 200 readings in flight per device (the
#      node saturated). The node runs on core 0, pulse-sim on core 1.
#   2. overload: the same devices paced at 2 x C in all, with a large window,
#      so that the node's back-pressure (session.max-unacked, busy shards,
#      batch.max-pending) has to hold the excess
# Prints offered and acked rates, refusals, reconnects, sheds and the node's
# peak RSS. Usage: bench/overload.sh [DURATION] [FACTOR]
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-20s}
factor=${2:-2}
devices=${DEVICES:-1000}
batch=${BATCH:-1}
# The node on one core, the simulator on the other: on a 2-core machine the
# simulator could not otherwise offer twice what the node takes.
node_cpu="taskset -c 0"
sim_cpu="taskset -c 1"
build=${PULSE_BUILD_DIR:-build}
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$tmp"' EXIT

start_node() {
  rm -rf "$tmp/db" "$tmp/node.out"
  $node_cpu "$build/node/pulse-node" --config-file=configs/pulse-node.ini --net.port=0 \
    --storage.path="$tmp/db" --log.level=warn >"$tmp/node.out" 2>"$tmp/node.err" &
  node_pid=$!
  for _ in $(seq 100); do grep -q "listening on" "$tmp/node.out" && break; sleep 0.1; done
  addr=$(grep "listening on" "$tmp/node.out" | awk '{print $NF}')
}

stop_node() { kill -TERM "$node_pid"; wait "$node_pid" || true; }

start_node
$sim_cpu "$build/sim/pulse-sim" --node="$addr" --devices="$devices" --batch="$batch" --rate=0 --window=200 \
  --ramp-up=2s --duration="$duration" --quiet --report="$tmp/capacity.json" >"$tmp/sim1.out" 2>&1 ||
  cat "$tmp/sim1.out"
stop_node
capacity=$(python3 -c "import json;print(json.load(open('$tmp/capacity.json'))['throughput_per_s'])")
rate=$(python3 -c "print(round($factor * $capacity / $devices, 3))")

start_node
# Peak RSS of the node, sampled while the overload runs (VmHWM at the end too).
(while kill -0 "$node_pid" 2>/dev/null; do
   grep VmRSS "/proc/$node_pid/status" 2>/dev/null | awk '{print $2}' >>"$tmp/rss"; sleep 0.5
 done) &
sim_rc=0
# A long drain: the excess the node held off (in the simulator's queues and
# the sockets) is taken after the run, so that every reading ends acked or refused.
$sim_cpu "$build/sim/pulse-sim" --node="$addr" --devices="$devices" --batch="$batch" --rate="$rate" --window=5000 \
  --duration="$duration" --drain=120s --verify --quiet --report="$tmp/overload.json" >"$tmp/sim2.out" 2>&1 ||
  sim_rc=$?
hwm=$(awk '/VmHWM/{print $2}' "/proc/$node_pid/status")
healthz=$(curl -s -o /dev/null -w '%{http_code}' "http://$addr/healthz" || echo down)
metrics=$(curl -s "http://$addr/metrics" || true)
stop_node
python3 - "$tmp" "$capacity" "$factor" "$hwm" "$healthz" "$sim_rc" "$metrics" <<'PY'
import json, sys
tmp, capacity, factor, hwm, healthz, sim_rc, metrics = sys.argv[1:8]
r = json.load(open(f"{tmp}/overload.json"))
rss = [int(x) for x in open(f"{tmp}/rss").read().split()] if r else []
m = {l.split()[0]: float(l.split()[1]) for l in metrics.splitlines() if l and not l.startswith("#") and len(l.split()) == 2}
secs = r["elapsed_s"] if "elapsed_s" in r else None
print(f"capacity C: {float(capacity):,.0f} readings/s (node on 1 core, simulator on the other; window 200)")
print(f"overload run: paced at {factor} x C = {float(factor) * float(capacity):,.0f}/s; sent {r['sent']:,} "
      f"readings ({r['sent'] / r['elapsed_s']:,.0f}/s offered), acked {r['acked']:,} "
      f"({r['throughput_per_s']:,.0f}/s)")
print(f"  refused (errors by code): {r['errors']}, reconnects: {r.get('reconnects', 0)}, "
      f"connections shed (1013): {m.get('pulse_connections_shed_total', 0):.0f}")
print(f"  sent - acked - refused: {r['sent'] - r['acked'] - r.get('rejected', 0):,} "
      f"(unconfirmed after the drain); ack latency p50 {r['latency_ms']['p50']:.0f} ms, "
      f"max {r['latency_ms']['max']:.0f} ms (the queue the overload built)")
print(f"  node peak RSS: {int(hwm) / 1024:.0f} MiB (VmHWM); sampled max {max(rss) / 1024 if rss else 0:.0f} MiB")
print(f"  node after the run: /healthz {healthz}; pulse-sim exit {sim_rc}; "
      f"verify mismatches {r.get('verify', {}).get('mismatches', 'n/a')}")
PY
