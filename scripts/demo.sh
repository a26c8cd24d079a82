#!/usr/bin/env bash
# Sets up, builds, starts a node on configs/pulse-node.ini (embedded RocksDB
# under var/), drives it with a short pulse-sim run, verifies, and leaves the
# node running so you can look around. Stop it with: kill $(cat var/pulse-node.pid)
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
build_dir=${PULSE_BUILD_DIR:-build}
mkdir -p var
if [[ -f var/pulse-node.pid ]] && kill -0 "$(cat var/pulse-node.pid)" 2>/dev/null; then
  kill "$(cat var/pulse-node.pid)"; sleep 1
fi
rm -f var/pulse-node.out  # an old start-up line must not be taken for this one
"$build_dir/node/pulse-node" --config-file=configs/pulse-node.ini >var/pulse-node.out 2>var/pulse-node.log &
echo $! >var/pulse-node.pid
for _ in $(seq 100); do
  grep -q "listening on" var/pulse-node.out 2>/dev/null && break
  kill -0 "$(cat var/pulse-node.pid)" 2>/dev/null || { cat var/pulse-node.log; exit 1; }
  sleep 0.1
done
line=$(grep "listening on" var/pulse-node.out)
echo "$line"
addr=${line##* }
"$build_dir/sim/pulse-sim" --config-file=configs/pulse-sim.ini --node="$addr" --devices=100 --rate=50 --duration=5s --ramp-up=1s --verify --report=var/sim-report.json
to=$(( $(date +%s) * 1000 + 60000 )); from=$(( to - 3600000 ))
cat <<MSG

The node is still running (pid $(cat var/pulse-node.pid), log in var/pulse-node.log). Look at:
  http://$addr/                         dashboard
  http://$addr/api/v1/devices           devices
  http://$addr/api/v1/devices/sim-meter-0/aggregate?metric=voltage&step=1m&from=$from&to=$to
  http://$addr/metrics                  Prometheus metrics
  var/sim-report.json                   the simulator's report
Replay the real OCPP data:  $build_dir/sim/pulse-sim replay tests/data/meter_values_dump_10k.xlsx --node=$addr --verify
Stop the node:              kill \$(cat var/pulse-node.pid)
MSG
