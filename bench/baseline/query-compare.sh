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
source bench/lib.sh

devices=${1:-10}
seconds=${2:-3600}
n=${3:-200}
clients=${4:-1}

work=$(mktemp -d /tmp/pulse-query-compare.XXXXXX)
cleanup() {
  stop_all
  bench/baseline/influx.sh stop "$work/influx" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

influx_port=$(free_port)
bench/baseline/influx.sh start "$work/influx" "$influx_port" >/dev/null

start_pulse_node "$work/pulse"
pulse_port=$NODE_PORT

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
