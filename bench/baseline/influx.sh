#!/usr/bin/env bash
# Runs a private InfluxDB 1.x (Debian's influxd) for the benchmarks.
#   influx.sh start DIR PORT   config, data, meta and WAL in DIR; HTTP on
#                              127.0.0.1:PORT; waits for /ping, creates the
#                              database "pulse", prints influxd's pid
#   influx.sh stop DIR         stops the influxd started on DIR
# The log is DIR/influxd.log. Only the HTTP listener and the RPC listener
# (snapshots/backup, which influxd always opens; bound to a free loopback
# port here) are open; reporting, UDP, graphite, collectd, opentsdb and the
# _internal monitor database are off. Everything else is influxd's default,
# including wal-fsync-delay = 0s (the WAL is fsynced before a write returns).
# INFLUX_COLD (environment): cache-snapshot-write-cold-duration, default 10m0s.
# INFLUX_MAX_VALUES_PER_TAG, INFLUX_MAX_SERIES (environment): max-values-per-tag
# and max-series-per-database, default influxd's (100000, 1000000); 0 = no
# limit (bench/run.sh's cardinality scenario sets both to 0).
set -euo pipefail

source "$(dirname "$0")/../lib.sh"  # free_port

usage() { echo "usage: $0 start DIR PORT | stop DIR" >&2; exit 2; }

start() {
  local dir=$1 port=$2
  [[ $port =~ ^[0-9]+$ ]] || usage
  command -v influxd >/dev/null || { echo "influx.sh: influxd not installed (run bench/baseline/setup.sh)" >&2; exit 1; }
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  if [[ -f $dir/influxd.pid ]] && kill -0 "$(cat "$dir/influxd.pid")" 2>/dev/null; then
    echo "influx.sh: influxd already running on $dir (pid $(cat "$dir/influxd.pid"))" >&2
    exit 1
  fi
  local rpc_port
  rpc_port=$(free_port)
  cat >"$dir/influxdb.conf" <<CONF
reporting-enabled = false
bind-address = "127.0.0.1:$rpc_port"

[meta]
  dir = "$dir/meta"
  retention-autocreate = true
  logging-enabled = false

[data]
  dir = "$dir/data"
  wal-dir = "$dir/wal"
  index-version = "inmem"
  wal-fsync-delay = "0s"
  # How long a shard takes no writes before its in-memory cache is written
  # out as a TSM file (default 10m0s; INFLUX_COLD=10s makes data loaded for
  # a query benchmark reach TSM files, where it would be in production).
  cache-snapshot-write-cold-duration = "${INFLUX_COLD:-10m0s}"
  query-log-enabled = false
  max-values-per-tag = ${INFLUX_MAX_VALUES_PER_TAG:-100000}
  max-series-per-database = ${INFLUX_MAX_SERIES:-1000000}

[monitor]
  store-enabled = false

[http]
  enabled = true
  bind-address = "127.0.0.1:$port"
  auth-enabled = false
  log-enabled = false
  pprof-enabled = false
  unix-socket-enabled = false

[logging]
  level = "warn"
  suppress-logo = true

[ifql]
  enabled = false

[[graphite]]
  enabled = false

[[collectd]]
  enabled = false

[[opentsdb]]
  enabled = false

[[udp]]
  enabled = false
CONF
  # setsid: influxd outlives this script and a ^C to the caller's terminal.
  setsid influxd run -config "$dir/influxdb.conf" -pidfile "$dir/influxd.pid" \
    </dev/null >>"$dir/influxd.log" 2>&1 &
  local pid=$!
  local deadline=$((SECONDS + 60)) code
  while :; do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "influx.sh: influxd exited during start-up; the end of $dir/influxd.log:" >&2
      tail -n 20 "$dir/influxd.log" >&2
      exit 1
    fi
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$port/ping" || true)
    [[ $code == 204 ]] && break
    if ((SECONDS >= deadline)); then
      echo "influx.sh: influxd did not answer /ping with 204 within 60 s (last: $code)" >&2
      kill "$pid" 2>/dev/null || true
      exit 1
    fi
    sleep 0.2
  done
  code=$(curl -s -o "$dir/create-db.out" -w '%{http_code}' --max-time 10 -XPOST \
    "http://127.0.0.1:$port/query" --data-urlencode 'q=CREATE DATABASE pulse')
  if [[ $code != 200 ]] || grep -q '"error"' "$dir/create-db.out"; then
    echo "influx.sh: CREATE DATABASE pulse failed ($code): $(cat "$dir/create-db.out")" >&2
    kill "$pid" 2>/dev/null || true
    exit 1
  fi
  echo "$pid" >"$dir/influxd.pid.start"
  echo "$pid"
}

stop() {
  local dir=$1 pid=""
  for f in "$dir/influxd.pid" "$dir/influxd.pid.start"; do
    [[ -f $f ]] && { pid=$(cat "$f"); break; }
  done
  [[ -n $pid ]] || { echo "influx.sh: no influxd pid in $dir" >&2; exit 1; }
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    local deadline=$((SECONDS + 15))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then
      echo "influx.sh: influxd $pid still up after 15 s, killing it" >&2
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$dir/influxd.pid" "$dir/influxd.pid.start"
}

case ${1:-} in
  start) (($# == 3)) || usage; start "$2" "$3" ;;
  stop) (($# == 2)) || usage; stop "$2" ;;
  *) usage ;;
esac
