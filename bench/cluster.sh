#!/usr/bin/env bash
# bench/cluster.sh: what a three-node cluster on loopback costs and holds.
#
#   bench/cluster.sh cost    node CPU per reading acked (pulse-loadgen, 1000 connections x 1
#                            reading per frame, 4 frames in flight, MEASURE s after WARMUP s):
#                            a single node, then a 3-node cluster entered only at node-a
#                            (2/3 of the devices are owned elsewhere, so forwarded); the
#                            cluster's figure is the CPU of all three nodes per reading.
#                            CLUSTER_ARGS go to the cluster's nodes, e.g.
#                            CLUSTER_ARGS=--cluster.replicas=2 for two copies of each reading.
#   bench/cluster.sh scale   DEVICES (50,000) simulated devices over SIMS (6) pulse-sim
#                            processes, two per node (this machine allows 20,000 open files
#                            per process: a node holds DEVICES/3 connections), each device
#                            sending RATE (0.2) readings/s for DURATION (60s) after a RAMP
#                            (60s) ramp-up; prints connections held, readings/s acked, errors
#                            and RSS per node, and the simulators' totals. CLUSTER_ARGS
#                            as for cost. Each simulator connects from a loopback address
#                            of its own (pulse-sim --source=127.0.0.N).
#
# Every node runs on a fresh temp dir and is stopped (SIGTERM) on exit. Needs a
# build (build/ or PULSE_BUILD_DIR): pulse-node, pulse-sim, pulse-loadgen.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${PULSE_BUILD_DIR:-build}
node_bin=$build/node/pulse-node
sim_bin=$build/sim/pulse-sim
lg_bin=$build/bench/pulse-loadgen
MEASURE=${MEASURE:-8}
WARMUP=${WARMUP:-2}
RUNS=${RUNS:-3}
work=$(mktemp -d /tmp/pulse-cluster-bench.XXXXXX)
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start NAME [ARGS]: a node on a fresh dir; sets NODE_PID and NODE_ADDR.
start() {
  local name=$1; shift
  local out=$work/$name.out
  "$node_bin" --node.name="$name" --net.port=0 --storage.path="$work/$name" --log.level=warn \
    --net.max-connections=25000 "$@" >"$out" 2>"$work/$name.log" &
  NODE_PID=$!
  pids+=("$NODE_PID")
  for _ in $(seq 200); do
    grep -q "listening on" "$out" 2>/dev/null && break
    kill -0 "$NODE_PID" 2>/dev/null || { cat "$work/$name.log" >&2; exit 1; }
    sleep 0.05
  done
  NODE_ADDR=$(grep -o 'listening on .*' "$out" | awk '{print $3}')
}

stop_all() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  pids=()
}

# cluster: three members on fresh dirs; A_PID/B_PID/C_PID, A_ADDR/B_ADDR/C_ADDR.
cluster() {
  local pa pb pc
  pa=$(free_port); pb=$(free_port); pc=$(free_port)
  start node-a --cluster.port="$pa" "$@"; A_PID=$NODE_PID; A_ADDR=$NODE_ADDR
  start node-b --cluster.port="$pb" --cluster.seeds="[\"127.0.0.1:$pa\"]" "$@"; B_PID=$NODE_PID; B_ADDR=$NODE_ADDR
  start node-c --cluster.port="$pc" --cluster.seeds="[\"127.0.0.1:$pa\"]" "$@"; C_PID=$NODE_PID; C_ADDR=$NODE_ADDR
  for addr in "$A_ADDR" "$B_ADDR" "$C_ADDR"; do
    for _ in $(seq 200); do
      [[ $(curl -sf "http://$addr/api/v1/cluster" | grep -o '"live":[0-9]*' | head -1) == '"live":3' ]] && break
      sleep 0.05
    done
  done
}

field() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }

cost() {
  echo "node CPU per reading acked, 1000 connections x 1 reading/frame, 4 in flight, ${MEASURE}s, $RUNS runs${CLUSTER_ARGS:+, cluster: $CLUSTER_ARGS}"
  echo "| run | single node readings/s | single node us/reading | 3 nodes via node-a readings/s | 3 nodes us/reading (a + b + c) |"
  echo "|---|---|---|---|---|"
  local run one three
  for run in $(seq "$RUNS"); do
    start single
    one=$("$lg_bin" --node="$NODE_ADDR" --node-pid="$NODE_PID" --connections=1000 --batch=1 \
      --inflight=4 --duration="${MEASURE}s" --warmup="${WARMUP}s" --json --quiet 2>/dev/null)
    stop_all
    # shellcheck disable=SC2086  # CLUSTER_ARGS: several words
    cluster ${CLUSTER_ARGS:-}
    three=$("$lg_bin" --node="$A_ADDR" --node-pid="$A_PID" --also-pid="$B_PID" --also-pid="$C_PID" \
      --connections=1000 --batch=1 --inflight=4 --duration="${MEASURE}s" --warmup="${WARMUP}s" \
      --json --quiet 2>/dev/null)
    stop_all
    local a_us also_us
    a_us=$(field "['node_cpu_us_per_reading']" <<<"$three")
    also_us=$(field "['also_cpu_us_per_reading']" <<<"$three")
    printf '| %s | %.0f | %.2f | %.0f | %.2f (%.2f + %.2f) |\n' "$run" \
      "$(field "['readings_per_s']" <<<"$one")" "$(field "['node_cpu_us_per_reading']" <<<"$one")" \
      "$(field "['readings_per_s']" <<<"$three")" "$(python3 -c "print($a_us + $also_us)")" \
      "$a_us" "$also_us"
  done
}

rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
metric() {  # ADDR NAME: the value of a Prometheus counter or gauge
  curl -sf "http://$1/metrics" | awk -v n="$2" '$1 == n {v = $2} END {print v + 0}'
}

scale() {
  local devices=${DEVICES:-50000} sims=${SIMS:-6} rate=${RATE:-0.2} duration=${DURATION:-60s}
  local ramp=${RAMP:-60s}
  local per=$(( (devices + sims - 1) / sims ))
  echo "$devices devices over $sims pulse-sim processes ($per each), $rate readings/s each, ramp $ramp, run $duration"
  # shellcheck disable=SC2086  # CLUSTER_ARGS: several words
  cluster --net.idle-timeout=600s ${CLUSTER_ARGS:-}
  local addrs=("$A_ADDR" "$B_ADDR" "$C_ADDR") node_pids=("$A_PID" "$B_PID" "$C_PID") names=(node-a node-b node-c)
  local sim_pids=() i
  for i in $(seq 0 $((sims - 1))); do
    local n=$(( devices - i * per )); (( n > per )) && n=$per
    # Each simulator connects from an address of its own (127.0.0.2, .3, ...):
    # towards one node address and port, Linux gives connect() only about
    # half of ip_local_port_range per source address (~14,000 here).
    "$sim_bin" --node="${addrs[$((i % 3))]}" --source="127.0.0.$((i + 2))" --prefix="scale-$i-" \
      --devices="$n" --rate="$rate" \
      --duration="$duration" --ramp-up="$ramp" --drain=30s --window=10 --quiet \
      --report="$work/sim-$i.json" >"$work/sim-$i.out" 2>&1 &
    sim_pids+=($!)
  done
  # Mid-run, after the ramp: connections held and RSS per node; readings/s
  # from the acks counted over 10 s.
  local ramp_s=${ramp%s}
  sleep $(( ramp_s + 10 ))
  declare -A in0 st0
  for i in 0 1 2; do
    in0[$i]=$(metric "${addrs[$i]}" pulse_readings_in_total)
    st0[$i]=$(metric "${addrs[$i]}" pulse_readings_stored_total)
  done
  sleep 10
  echo "| node | connections | readings/s taken in | readings/s stored (owner) | RSS MB | errors |"
  echo "|---|---|---|---|---|---|"
  for i in 0 1 2; do
    local in1 st1
    in1=$(metric "${addrs[$i]}" pulse_readings_in_total)
    st1=$(metric "${addrs[$i]}" pulse_readings_stored_total)
    printf '| %s | %s | %.0f | %.0f | %.0f | %s |\n' "${names[$i]}" \
      "$(metric "${addrs[$i]}" pulse_connections_open)" \
      "$(python3 -c "print(($in1 - ${in0[$i]}) / 10)")" "$(python3 -c "print(($st1 - ${st0[$i]}) / 10)")" \
      "$(python3 -c "print($(rss_kb "${node_pids[$i]}") / 1024)")" \
      "$(curl -sf "http://${addrs[$i]}/metrics" | awk '/^pulse_errors_total/ {s += $2} END {print s + 0}')"
  done
  local rc=0
  for i in "${!sim_pids[@]}"; do wait "${sim_pids[$i]}" || rc=1; done
  python3 - "$work" "$sims" <<'PY'
import json, sys
work, sims = sys.argv[1], int(sys.argv[2])
tot = {"connected": 0, "sent": 0, "acked": 0, "unconfirmed": 0, "gave_up": 0}
p99 = []
for i in range(sims):
    try:
        r = json.load(open(f"{work}/sim-{i}.json"))
    except Exception as e:
        print(f"sim {i}: no report ({e})"); continue
    for k in tot: tot[k] += r.get(k, 0) or 0
    p99.append(r.get("latency_ms", {}).get("p99"))
print("simulators: " + ", ".join(f"{k} {v:,}" for k, v in tot.items()) + f"; ack p99 ms per sim {p99}")
PY
  return $rc
}

case ${1:-} in
  cost) cost ;;
  scale) scale ;;
  *) echo "usage: bench/cluster.sh cost|scale" >&2; exit 2 ;;
esac
