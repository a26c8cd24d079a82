#!/usr/bin/env bash
# Smoke test of the baseline stack: a fresh influxd (influx.sh) and
# gateway.js on loopback ports, then client-smoke.js (10 connections x 100
# readings by default; any further arguments go to it), which checks that
# every reading was acked and that InfluxDB counts them all. Everything it
# started is stopped on exit. Needs bench/baseline/setup.sh.
#   bench/baseline/smoke.sh [client-smoke.js options]
set -euo pipefail
cd "$(dirname "$0")"
source ../lib.sh

work=$(mktemp -d /tmp/pulse-baseline-smoke.XXXXXX)
cleanup() {
  stop_all
  ./influx.sh stop "$work/influx" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

influx_port=$(free_port)
./influx.sh start "$work/influx" "$influx_port" >/dev/null

start_listening gateway '^gateway listening on \(.*:[0-9]*\)$' "$work/gateway.out" "$work/gateway.err" 10 \
  node gateway.js --port 0 --influx "http://127.0.0.1:$influx_port"
gw_port=$LISTEN_PORT

timeout 120 node client-smoke.js --gateway "ws://127.0.0.1:$gw_port/ws" \
  --influx "http://127.0.0.1:$influx_port" "$@"
