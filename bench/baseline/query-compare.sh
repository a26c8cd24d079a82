#!/usr/bin/env bash
# Query latency of Pulse against InfluxDB 1.x on the same data, end to end:
# a fresh influxd (influx.sh) and a fresh pulse-node, each on a temp dir and
# a loopback port; loads DEVICES x SECONDS one-second readings into both
# (bench/query_bench.py), checks that both answer every query alike, then
# times every query on both. Everything it started is stopped on exit.
#   bench/baseline/query-compare.sh [DEVICES] [SECONDS] [N] [CLIENTS]
# defaults: 10 devices, 3600 s, 200 queries each, 1 client. Needs
# bench/baseline/setup.sh (influxd) and a build (build/node/pulse-node, or
# $PULSE_BUILD_DIR). Prints one JSON line per query and target.
set -euo pipefail
cd "$(dirname "$0")/../.."

devices=${1:-10}
seconds=${2:-3600}
n=${3:-200}
clients=${4:-1}
node_bin=${PULSE_BUILD_DIR:-build}/node/pulse-node
[[ -x $node_bin ]] || { echo "query-compare: $node_bin not built" >&2; exit 1; }

work=$(mktemp -d /tmp/pulse-query-compare.XXXXXX)
node_pid=""
cleanup() {
  [[ -n $node_pid ]] && kill -TERM "$node_pid" 2>/dev/null && wait "$node_pid" 2>/dev/null || true
  bench/baseline/influx.sh stop "$work/influx" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

influx_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
bench/baseline/influx.sh start "$work/influx" "$influx_port" >/dev/null

"$node_bin" --config-file=configs/pulse-node.ini --net.port=0 --storage.path="$work/pulse/db" \
  --log.level=warn >"$work/pulse.out" 2>"$work/pulse.err" &
node_pid=$!
pulse_port=""
for _ in $(seq 1 300); do
  pulse_port=$(sed -n 's/^pulse-node .* listening on .*:\([0-9]*\)$/\1/p' "$work/pulse.out")
  [[ -n $pulse_port ]] && break
  kill -0 "$node_pid" 2>/dev/null || { cat "$work/pulse.err" >&2; exit 1; }
  sleep 0.1
done
[[ -n $pulse_port ]] || { echo "query-compare: pulse-node did not start" >&2; exit 1; }

qb=bench/query_bench.py
python3 $qb load-influx --port "$influx_port" --devices "$devices" --seconds "$seconds"
python3 $qb load-pulse --url "http://127.0.0.1:$pulse_port" --devices "$devices" --seconds "$seconds"
status=0
python3 $qb compare --pulse-port "$pulse_port" --influx-port "$influx_port" || status=1
for q in device_1h_1m device_1d_1h device_1d_raw device_30d_1h fleet_1h_1m; do
  python3 $qb time --target pulse --port "$pulse_port" --query $q --n "$n" --clients "$clients" 2>/dev/null || status=1
  python3 $qb time --target influx --port "$influx_port" --query $q --n "$n" --clients "$clients" 2>/dev/null || status=1
done
exit $status
