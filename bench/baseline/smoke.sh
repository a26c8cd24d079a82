#!/usr/bin/env bash
# Smoke test of the baseline stack: a fresh influxd (influx.sh) and
# gateway.js on loopback ports, then client-smoke.js (10 connections x 100
# readings by default; any further arguments go to it), which checks that
# every reading was acked and that InfluxDB counts them all. Everything it
# started is stopped on exit. Needs bench/baseline/setup.sh.
#   bench/baseline/smoke.sh [client-smoke.js options]
set -euo pipefail
cd "$(dirname "$0")"

work=$(mktemp -d /tmp/pulse-baseline-smoke.XXXXXX)
gw_pid=""
cleanup() {
  [[ -n $gw_pid ]] && kill -TERM "$gw_pid" 2>/dev/null && wait "$gw_pid" 2>/dev/null || true
  ./influx.sh stop "$work/influx" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
influx_port=$(free_port)
./influx.sh start "$work/influx" "$influx_port" >/dev/null

node gateway.js --port 0 --influx "http://127.0.0.1:$influx_port" >"$work/gateway.out" 2>"$work/gateway.err" &
gw_pid=$!
gw_port=""
for _ in $(seq 1 100); do
  gw_port=$(sed -n 's/^gateway listening on .*:\([0-9]*\)$/\1/p' "$work/gateway.out")
  [[ -n $gw_port ]] && break
  kill -0 "$gw_pid" 2>/dev/null || { cat "$work/gateway.err" >&2; exit 1; }
  sleep 0.1
done
[[ -n $gw_port ]] || { echo "smoke: gateway did not start" >&2; exit 1; }

timeout 120 node client-smoke.js --gateway "ws://127.0.0.1:$gw_port/ws" \
  --influx "http://127.0.0.1:$influx_port" "$@"
