#!/usr/bin/env bash
# Starts a three-node cluster on loopback (configs/cluster/node-{a,b,c}.ini,
# storage under var/cluster/), waits until every node sees the other two up,
# drives it with one pulse-sim per node (the devices spread over the three),
# verifies, and leaves the nodes running so you can look around.
#   scripts/cluster.sh            start (restarts nodes it started before)
#   scripts/cluster.sh stop       stop them (SIGTERM; pids in var/cluster/*.pid)
# Environment: PULSE_BUILD_DIR (default build), DEVICES per simulator (100),
# RATE per device (20), DURATION (10s).
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${PULSE_BUILD_DIR:-build}
nodes=(a b c)
mkdir -p var/cluster

stop_nodes() {
  for n in "${nodes[@]}"; do
    local pidfile=var/cluster/node-$n.pid
    if [[ -f $pidfile ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
      kill "$(cat "$pidfile")"
      for _ in $(seq 100); do kill -0 "$(cat "$pidfile")" 2>/dev/null || break; sleep 0.1; done
    fi
    rm -f "$pidfile"
  done
}

if [[ ${1:-} == stop ]]; then
  stop_nodes
  exit 0
fi
[[ -x $build_dir/node/pulse-node ]] || PULSE_BUILD_DIR=$build_dir ./scripts/setup.sh
stop_nodes

for n in "${nodes[@]}"; do
  rm -f var/cluster/node-$n.out
  "$build_dir/node/pulse-node" --config-file=configs/cluster/node-$n.ini \
    >var/cluster/node-$n.out 2>var/cluster/node-$n.log &
  echo $! >var/cluster/node-$n.pid
  for _ in $(seq 100); do
    grep -q "listening on" var/cluster/node-$n.out 2>/dev/null && break
    kill -0 "$(cat var/cluster/node-$n.pid)" 2>/dev/null || { cat var/cluster/node-$n.log; exit 1; }
    sleep 0.1
  done
  grep "listening on" var/cluster/node-$n.out
done
addr() { local line; line=$(grep "listening on" "var/cluster/node-$1.out"); echo "${line##* }"; }

# Joined: /readyz answers 200 on every node and each sees three members up.
for n in "${nodes[@]}"; do
  ok=0
  for _ in $(seq 100); do
    if curl -sf "http://$(addr "$n")/readyz" >/dev/null &&
       [[ $(curl -sf "http://$(addr "$n")/api/v1/cluster" | grep -o '"live":[0-9]*' | head -1) == '"live":3' ]]; then
      ok=1; break
    fi
    sleep 0.1
  done
  ((ok)) || { echo "node-$n did not join the cluster:"; curl -s "http://$(addr "$n")/api/v1/cluster"; exit 1; }
done
echo "cluster joined: node-a, node-b, node-c"

sims=()
for n in "${nodes[@]}"; do
  "$build_dir/sim/pulse-sim" --node="$(addr "$n")" --prefix="sim-$n-" --devices="${DEVICES:-100}" \
    --rate="${RATE:-20}" --duration="${DURATION:-10s}" --ramp-up=1s --quiet --verify \
    --report="var/cluster/sim-$n.json" >"var/cluster/sim-$n.out" 2>&1 &
  sims+=($!)
done
rc=0
for i in "${!sims[@]}"; do
  if wait "${sims[$i]}"; then echo "pulse-sim on node-${nodes[$i]}: verified"
  else rc=1; echo "pulse-sim on node-${nodes[$i]}: FAILED (var/cluster/sim-${nodes[$i]}.out)"; fi
done
to=$(( $(date +%s) * 1000 + 60000 )); from=$(( to - 3600000 ))
cat <<MSG

The three nodes are still running (pids in var/cluster/*.pid, logs in var/cluster/node-*.log). Look at:
  http://$(addr a)/api/v1/cluster        members as node-a sees them (also on $(addr b), $(addr c))
  http://$(addr a)/readyz                ready once the node has joined
  http://$(addr a)/                      dashboard of node-a
  http://$(addr b)/api/v1/devices        devices stored on node-b
  http://$(addr a)/api/v1/devices/sim-a-0/aggregate?metric=voltage&step=1m&from=$from&to=$to
  var/cluster/sim-{a,b,c}.json           the simulators' reports
Try: kill -9 \$(cat var/cluster/node-c.pid), then watch node-c go down (and come
back after you rerun its pulse-node line) on /api/v1/cluster.
Stop the cluster:  scripts/cluster.sh stop
MSG
exit $rc
