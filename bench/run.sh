#!/usr/bin/env bash
# bench/run.sh: Pulse's benchmark suite in one command.
#
#   bench/run.sh [--runs N] [--only 1,3,5] [--big] [--out FILE]
#
# Runs the scenarios below (all by default), each figure RUNS times (default
# 3; --runs N or a bare N or RUNS=N in the environment), prints medians as
# markdown tables as it goes and writes them, with the exact commands, the
# machine (nproc, load average at start, kernel) and any problem seen, to
# bench/results/<YYYY-MM-DD>.md (or --out FILE). Every scenario starts a fresh
# pulse-node on a temp dir (and a fresh influxd + gateway.js for the
# baseline) and stops it with SIGTERM; everything started is stopped on exit.
#
#   1 node CPU per reading acked (pulse-loadgen --node-pid), 1000x1, 2000x10,
#     100x100, 4 frames in flight; Pulse and the Node.js ws + InfluxDB baseline
#   2 pulse-sim on the same box: 1000x1, 100x100, 10000x1; readings/s and
#     pulse-sim's CPU per frame
#   3 ack latency p50/p99 at half of the 1000x1 maximum (from 1, or measured)
#   4 node RSS per idle connection, 10,000 connections (pulse-loadgen --hold)
#   5 queries: 100 devices x 86,400 s in Pulse and InfluxDB, answers compared,
#     p50/p99 of 200 requests; one device over 30 days; 100 concurrent
#     clients; a fleet of 10,000 devices (Pulse only); on-disk bytes/reading
#   6 growth (only with --big): ingest rate and query latency into an empty
#     store vs one holding BIG_N readings (default 100,000,000); without
#     --big only the on-disk bytes per reading of the query dataset
#   7 cores: the node pinned to 1 core vs 2 cores (taskset), 100x100 and 1000x1
#   8 recovery: restart after kill -9 of a node holding 10M readings; shard
#     restart under the supervisor (debug.fault-injection)
#   9 cardinality (bench/cardinality.py): CARD_DEVICES devices x 2 readings,
#     POST bodies of 5,000 readings from 2 writers, side by side with InfluxDB
#     fed the same as line protocol (its max-values-per-tag and
#     max-series-per-database set to 0 so that it takes every series), and
#     over WebSocket (100 connections, array frames of 1,000 readings of as
#     many devices); node RSS, fleet aggregates over every device and over a
#     prefix of 10,000, device pages, restart time
#
# Needs a build (build/, or PULSE_BUILD_DIR): pulse-node, pulse-sim,
# pulse-loadgen. Runs bench/baseline/setup.sh (influxdb, npm ws) when the
# baseline is needed and missing. Durations and sizes can be changed in the
# environment (defaults in brackets): MEASURE [8] and WARMUP [2] seconds of
# pulse-loadgen (1, 3), SIM_DURATION [8] (2), CORES_MEASURE [6] (7),
# HOLD_CONNECTIONS [10000] and HOLD_SECONDS [5] (4), Q_DEVICES [100],
# Q_SECONDS [86400], Q_N [200], Q_CLIENTS [100], Q_CLIENTS_N [2000],
# LONG_INTERVAL_MS [60000] (the 30-day device: 43,200 readings one minute
# apart; 1000 gives 2,592,000 one-second readings), FLEET_DEVICES [10000],
# FLEET_SECONDS [3600], FLEET_INFLUX [0] (1: load the fleet into InfluxDB
# too) (5), BIG_N [100000000] (6), RECOVERY_N [10000000] (8),
# CARD_DEVICES ["100000 1000000"] (9),
# PULSE_NODE_CONFIG [configs/pulse-node.ini].
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

usage() {
  sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
  exit "${1:-2}"
}

runs=${RUNS:-3}
only=1,2,3,4,5,6,7,8,9
big=0
out=""
argv_text="bench/run.sh${*:+ $*}"
while (($#)); do
  case $1 in
    --runs) runs=${2:?--runs needs a number}; shift 2 ;;
    --runs=*) runs=${1#*=}; shift ;;
    --only) only=${2:?--only needs a list}; shift 2 ;;
    --only=*) only=${1#*=}; shift ;;
    --big) big=1; shift ;;
    --out) out=${2:?--out needs a file}; shift 2 ;;
    --out=*) out=${1#*=}; shift ;;
    -h | --help) usage 0 ;;
    [0-9]*) runs=$1; shift ;;
    *) echo "run.sh: unknown argument '$1'" >&2; usage 2 ;;
  esac
done
[[ $runs =~ ^[1-9][0-9]*$ ]] || { echo "run.sh: --runs must be a positive integer" >&2; exit 2; }
[[ $only =~ ^[1-9](,[1-9])*$ ]] || { echo "run.sh: --only takes scenario numbers 1-9, e.g. 1,3,5" >&2; exit 2; }
selected() { [[ ,$only, == *,$1,* ]]; }

MEASURE=${MEASURE:-8}
WARMUP=${WARMUP:-2}
SIM_DURATION=${SIM_DURATION:-8}
CORES_MEASURE=${CORES_MEASURE:-6}
HOLD_CONNECTIONS=${HOLD_CONNECTIONS:-10000}
HOLD_SECONDS=${HOLD_SECONDS:-5}
Q_DEVICES=${Q_DEVICES:-100}
Q_SECONDS=${Q_SECONDS:-86400}
Q_N=${Q_N:-200}
Q_CLIENTS=${Q_CLIENTS:-100}
Q_CLIENTS_N=${Q_CLIENTS_N:-2000}
LONG_INTERVAL_MS=${LONG_INTERVAL_MS:-60000}
FLEET_DEVICES=${FLEET_DEVICES:-10000}
FLEET_SECONDS=${FLEET_SECONDS:-3600}
FLEET_INFLUX=${FLEET_INFLUX:-0}
BIG_N=${BIG_N:-100000000}
RECOVERY_N=${RECOVERY_N:-10000000}
CARD_DEVICES=${CARD_DEVICES:-100000 1000000}
START_MS=1767225600000               # 2026-01-01T00:00:00Z, query_bench.py's default
THIRTY_DAYS_MS=2592000000
LONG_READINGS=$((THIRTY_DAYS_MS / LONG_INTERVAL_MS))
LONG_START_MS=$((START_MS - THIRTY_DAYS_MS))  # before the fleet's hour: fleet answers are unchanged

NODE_BIN=$PULSE_BUILD_DIR/node/pulse-node
SIM=$PULSE_BUILD_DIR/sim/pulse-sim
LOADGEN=$PULSE_BUILD_DIR/bench/pulse-loadgen
QB=bench/query_bench.py
CLK_TCK=$(getconf CLK_TCK)

for b in "$NODE_BIN" "$SIM" "$LOADGEN"; do
  [[ -x $b ]] || { echo "run.sh: $b is not built (cmake --build $PULSE_BUILD_DIR, or scripts/setup.sh)" >&2; exit 1; }
done
for c in jq python3 curl taskset /usr/bin/time; do
  command -v "$c" >/dev/null || { echo "run.sh: $c is needed" >&2; exit 1; }
done
if selected 1 || selected 3 || selected 4 || selected 5 || selected 9; then
  if ! command -v influxd >/dev/null || ! command -v node >/dev/null || [[ ! -d bench/baseline/node_modules/ws ]]; then
    echo "run.sh: the baseline stack is missing: running bench/baseline/setup.sh"
    bench/baseline/setup.sh
  fi
fi

day=$(date +%F)
out=${out:-bench/results/$day.md}
mkdir -p "$(dirname "$out")"
work=$(mktemp -d /tmp/pulse-bench.XXXXXX)
raw=$work/raw.jsonl
problems=$work/problems.txt
: >"$raw"
: >"$problems"
RUN=1

# Stops what this shell (or scenario subshell) started, the processes whose
# pids were written to $work/pids and every influxd started on a dir listed
# in $work/influx.dirs.
stop_everything() {
  stop_all
  local pid d
  if [[ -f $work/pids ]]; then  # nodes started by the restart probe (scenario 8), if it failed
    while read -r pid; do
      grep -q pulse-node "/proc/$pid/cmdline" 2>/dev/null && kill -TERM "$pid" 2>/dev/null || true
    done <"$work/pids"
    : >"$work/pids"
  fi
  if [[ -f $work/influx.dirs ]]; then
    while read -r d; do
      [[ -f $d/influxd.pid || -f $d/influxd.pid.start ]] && bench/baseline/influx.sh stop "$d" >/dev/null 2>&1 || true
    done <"$work/influx.dirs"
  fi
  return 0
}
scenario_pid=""
on_signal() {  # pass it on to the running scenario, which stops what it started
  trap '' INT TERM
  if [[ -n $scenario_pid ]]; then
    kill -TERM "$scenario_pid" 2>/dev/null || true
    # Its children too (pulse-loadgen, pulse-sim, query_bench.py, nodes): the
    # subshell acts on the signal only once its current command has ended.
    pkill -TERM -P "$scenario_pid" 2>/dev/null || true
    wait "$scenario_pid" 2>/dev/null || true
  fi
  exit 130
}
trap 'stop_everything; rm -rf "$work"' EXIT
trap on_signal INT TERM

# The binaries and the node's config are copied once, so that a rebuild (or an
# edit of the config) while the suite runs changes nothing it measures. The
# commands in the results show the original paths.
ORIG_BUILD=$PULSE_BUILD_DIR
ORIG_CONFIG=$PULSE_NODE_CONFIG
build_time=$(date -u -r "$NODE_BIN" '+%Y-%m-%d %H:%M UTC')
stale=$(find storage actors net node wire sim configs -newer "$NODE_BIN" -type f 2>/dev/null | head -n 5 | tr '\n' ' ' || true)
stale=${stale% }
mkdir -p "$work/build/node" "$work/build/sim" "$work/build/bench"
cp "$NODE_BIN" "$work/build/node/"
cp "$SIM" "$work/build/sim/"
cp "$LOADGEN" "$work/build/bench/"
cp "$PULSE_NODE_CONFIG" "$work/pulse-node.ini"
PULSE_BUILD_DIR=$work/build
PULSE_NODE_CONFIG=$work/pulse-node.ini
NODE_BIN=$PULSE_BUILD_DIR/node/pulse-node
SIM=$PULSE_BUILD_DIR/sim/pulse-sim
LOADGEN=$PULSE_BUILD_DIR/bench/pulse-loadgen
if ! start_pulse_node "$work/preflight" >/dev/null 2>"$work/preflight.err"; then
  echo "run.sh: pulse-node does not start with $ORIG_CONFIG:" >&2
  cat "$work/preflight.err" >&2
  exit 1
fi
stop_proc "$NODE_PID" || { echo "run.sh: pulse-node did not stop cleanly on SIGTERM" >&2; exit 1; }
rm -rf "$work/preflight"

# --- helpers ------------------------------------------------------------------

say() { printf '%s\n' "$*"; }
note() {  # a problem worth reporting: printed now and listed in the results
  printf '%s\n' "$*" >>"$problems"
  printf 'PROBLEM: %s\n' "$*" >&2
}
# Commands of the first run of each scenario go into the results.
logcmd() {
  ((RUN == 1)) || return 0
  local s=$1
  shift
  local line
  line=$(printf '%q ' "$@")
  line=${line//\\,/,}  # printf %q escapes commas, which need no quoting here
  printf '%s\n' "${line% }" >>"$work/cmds.$s"
}
logline() { ((RUN == 1)) && printf '%s\n' "${*:2}" >>"$work/cmds.$1" || true; }
record() {  # META_JSON JSON: one measurement, with its labels, into raw.jsonl
  if ! jq -c --argjson m "$1" '. + $m' <<<"$2" >>"$raw" 2>/dev/null; then
    note "bad measurement $1: $(head -c 300 <<<"$2")"
  fi
}
proc_cpu_us() {  # utime+stime of PID in microseconds
  local f
  f=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
  awk -v t="$CLK_TCK" '{printf "%d\n", ($12 + $13) * 1000000 / t}' <<<"$f"
}
wait_quiet() {  # PID MIN_S MAX_S: at least MIN_S, then until PID uses < 3% of a core over 1 s
  local pid=$1 min=$2 max=$3 t=0 a b
  sleep "$min"
  t=$min
  while ((t < max)) && kill -0 "$pid" 2>/dev/null; do
    a=$(proc_cpu_us "$pid")
    sleep 1
    b=$(proc_cpu_us "$pid")
    t=$((t + 1))
    ((b - a < 30000)) && break
  done
}
dir_bytes() { du -sb "$@" 2>/dev/null | awk '{s += $1} END {print s + 0}'; }
# Bytes in RocksDB's write-ahead log files (NNNNNN.log) under DIR: readings not
# yet flushed into SST files are there, and the files go once they are.
wal_bytes() { find "$1" -name '[0-9]*.log' -printf '%s\n' 2>/dev/null | awk '{s += $1} END {print s + 0}'; }
metric() {  # ADDR NAME: a counter from /metrics
  curl -s --max-time 10 "http://$1/metrics" | awk -v n="$2" '$1 == n {print $2; exit}'
}

node_start() {  # SCEN DIR [ARGS]: a fresh pulse-node, its command logged
  local s=$1
  shift
  start_pulse_node "$@" || { note "scenario $s: pulse-node did not start ($NODE_CMD)"; return 1; }
  logline "$s" "$NODE_CMD"
}
node_stop() {  # SCEN LABEL DIR: SIGTERM to NODE_PID; a bad exit or anything on stderr is a problem
  local rc=0
  stop_proc "$NODE_PID" 30 2>"$work/stop.err" || rc=$?
  if ((rc == 124)); then
    note "scenario $1 ($2): pulse-node did not exit within 30 s of SIGTERM and was killed ($NODE_CMD): $(cat "$work/stop.err")"
  elif ((rc != 0)); then
    note "scenario $1 ($2): pulse-node exited with status $rc after SIGTERM ($NODE_CMD)"
  fi
  if [[ -s $3/node.err ]]; then
    note "scenario $1 ($2): pulse-node wrote to stderr: $(head -n 3 "$3/node.err" | cut -c1-200 | tr '\n' '|')"
  fi
  return 0
}

baseline_start() {  # SCEN DIR: a fresh influxd + gateway.js; sets BASE_*
  local s=$1 dir=$2 port
  port=$(free_port)
  mkdir -p "$dir"
  echo "$dir/influx" >>"$work/influx.dirs"
  BASE_INFLUX_PID=$(bench/baseline/influx.sh start "$dir/influx" "$port") ||
    { note "scenario $s: influxd did not start"; return 1; }

  logline "$s" "bench/baseline/influx.sh start $dir/influx $port"
  start_listening gateway '^gateway listening on \(.*:[0-9]*\)$' "$dir/gw.out" "$dir/gw.err" 30 \
    node bench/baseline/gateway.js --port 0 --influx "http://127.0.0.1:$port" ||
    { note "scenario $s: gateway.js did not start"; return 1; }
  BASE_GW_PID=$LISTEN_PID
  BASE_GW_ADDR=$LISTEN_ADDR
  logline "$s" "node bench/baseline/gateway.js --port 0 --influx http://127.0.0.1:$port"
}
baseline_stop() {  # SCEN LABEL DIR
  local rc=0
  stop_proc "$BASE_GW_PID" 30 || rc=$?
  ((rc == 0)) || note "scenario $1 ($2): gateway.js exited with status $rc after SIGTERM"
  bench/baseline/influx.sh stop "$3/influx" >/dev/null 2>&1 || true
}

# pulse-loadgen with --json: records its figures under META and prints a line.
lg() {  # SCEN META_JSON ARGS...
  local s=$1 meta=$2 rc=0 res
  shift 2
  logcmd "$s" "$LOADGEN" "$@" --json
  res=$("$LOADGEN" "$@" --json 2>"$work/lg.err") || rc=$?
  if ! jq -e . >/dev/null 2>&1 <<<"$res"; then
    note "scenario $s $meta: pulse-loadgen printed no figures (exit $rc): $(tail -n 3 "$work/lg.err" | tr '\n' '|')"
    return 0
  fi
  ((rc == 0)) || note "scenario $s $meta: pulse-loadgen exit $rc: $(grep -v 'connected,\|first frame acked' "$work/lg.err" | tail -n 3 | tr '\n' '|')"
  record "$meta" "$(jq -c --argjson rc "$rc" '. + {rc: $rc}' <<<"$res")"
  jq -r --argjson m "$meta" '"  \($m | [.sys, .shape, .cores, .phase] | map(select(. != null)) | join(" ")) run \($m.run): " +
    (if .hold then "\(.live_at_end) connections held, node RSS +\(.node_rss_kb_per_connection) KiB each"
     else "\(.readings_per_s | floor) readings/s, CPU \(.node_cpu_us_per_reading) + \(.also_cpu_us_per_reading // 0) us/reading, ack p50 \(.p50_ms) ms p99 \(.p99_ms) ms, lost \(.lost), errors \(.errors)" end)' <<<"$res"
}

# query_bench.py time: records its figures under META.
qtime() {  # SCEN META_JSON TARGET PORT QUERY [ARGS]
  local s=$1 meta=$2 target=$3 port=$4 q=$5 res rc=0
  shift 5
  logcmd "$s" python3 "$QB" time --target "$target" --port "$port" --query "$q" "$@"
  res=$(python3 "$QB" time --target "$target" --port "$port" --query "$q" "$@" 2>"$work/qb.err") || rc=$?
  if ((rc != 0)) || ! jq -e . >/dev/null 2>&1 <<<"$res"; then
    note "scenario $s: query_bench time $target $q failed (exit $rc): $(tail -n 2 "$work/qb.err" | tr '\n' '|')"
    [[ -n $res ]] && jq -e . >/dev/null 2>&1 <<<"$res" && record "$meta" "$res"
    return 0
  fi
  record "$meta" "$res"
  jq -r --argjson m "$meta" '"  \($m.label) \(.target) run \($m.run): p50 \(.p50_ms) ms, p99 \(.p99_ms) ms (\(.n) requests, \(.clients) clients, \(.errors) errors)"' <<<"$res"
}

# query_bench.py load-*: records the load rate under META.
qload() {  # SCEN META_JSON load-pulse|load-influx ARGS
  local s=$1 meta=$2 res rc=0
  shift 2
  logcmd "$s" python3 "$QB" "$@"
  res=$(python3 "$QB" "$@" 2>"$work/qb.err") || rc=$?
  if ((rc != 0)) || ! jq -e . >/dev/null 2>&1 <<<"$res"; then
    note "scenario $s: query_bench $1 failed (exit $rc): $(tail -n 2 "$work/qb.err" | tr '\n' '|')"
    return 1
  fi
  record "$meta" "$res"
  jq -r --argjson m "$meta" '"  loaded \(.loaded) readings into \(.target) (\($m.label)) in \(.seconds) s: \(.readings_per_s) readings/s"' <<<"$res"
}

median_of() {  # JQ_FILTER: the median of the numbers it selects from raw.jsonl
  jq -s "[.[] | $1] | map(select(. != null)) | sort | if length == 0 then empty
         elif length % 2 == 1 then .[length / 2 | floor] else (.[length / 2 - 1] + .[length / 2]) / 2 end" "$raw"
}

# --- rendering ----------------------------------------------------------------

RENDER_PY=$(cat <<'PY'
import json, os, re, statistics, sys

raw, scen, work, runs = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
RUNS = f"{runs} runs" if runs > 1 else "1 run"
env = json.loads(sys.argv[5])
recs = [json.loads(l) for l in open(raw) if l.strip()]
R = [r for r in recs if r.get("s") == scen]
out = []
w = out.append


def sel(**kw):
    return [r for r in R if all(r.get(k) == v for k, v in kw.items())]


def vals(rs, key):
    v = []
    for r in rs:
        x = r
        for part in key.split("."):
            x = x.get(part) if isinstance(x, dict) else None
        if x is not None:
            v.append(x)
    return v


def med(rs, key):
    v = vals(rs, key)
    return statistics.median(v) if v else None


def f_rate(x):
    return "n/a" if x is None else f"{x:,.0f}"


def f_num(x, nd=2):
    return "n/a" if x is None else f"{x:,.{nd}f}"


def f_ms(x):
    if x is None:
        return "n/a"
    return f"{x:.3f}" if x < 1 else f"{x:.2f}" if x < 10 else f"{x:.1f}" if x < 100 else f"{x:,.0f}"


def runs_of(rs, key, fmt):
    v = vals(rs, key)
    return " / ".join(fmt(x) for x in v) if len(v) > 1 else ""


def cell(rs, key, fmt, lower=None):
    m = med(rs, key)
    r = runs_of(rs, key, fmt)
    return fmt(m) + (f" ({r})" if r else "")


def ratio(a, b, nd=2):
    return "n/a" if a is None or b is None or b == 0 else f"{a / b:.{nd}f}"


def paired_ratios(pa, pb, key):
    """Pulse / baseline per run (both measured back to back in run k)."""
    ra = {r["run"]: r for r in pa}
    rb = {r["run"]: r for r in pb}
    out = []
    for k in sorted(set(ra) & set(rb)):
        a, b = vals([ra[k]], key), vals([rb[k]], key)
        if a and b and b[0]:
            out.append(a[0] / b[0])
    return out


def ratio_cell(pa, pb, key):
    a, b = med(pa, key), med(pb, key)
    pr = paired_ratios(pa, pb, key)
    s = ratio(a, b)
    if len(pr) > 1:
        s += " (per run " + " / ".join(f"{x:.2f}" for x in pr) + ")"
    return s


def sum_key(r):
    a, b = r.get("node_cpu_us_per_reading"), r.get("also_cpu_us_per_reading")
    return None if a is None else a + (b or 0)


for r in R:
    r["cpu_total"] = sum_key(r) if "node_cpu_us_per_reading" in r else None


def pulse_disk(d):
    """du of storage.path per reading, and how much of it is RocksDB's WAL."""
    n = d["readings"]
    s = (f"{d['pulse_bytes'] / n:.1f} bytes/reading ({d['pulse_bytes'] / 2**20:,.0f} MiB, du of storage.path, "
         f"of which {d.get('pulse_wal_bytes', 0) / 2**20:,.0f} MiB are RocksDB WAL files, kept until its "
         f"memtables are flushed to SST files; the other files: {(d['pulse_bytes'] - d.get('pulse_wal_bytes', 0)) / n:.1f} "
         f"bytes/reading)")
    if d.get("pulse_bytes_stopped"):
        s += (f", {d['pulse_bytes_stopped'] / n:.1f} after SIGTERM "
              f"({d.get('pulse_wal_bytes_stopped', 0) / 2**20:,.0f} MiB of WAL files)")
    return s

title = {
    1: "1. Node CPU per reading acked, external client (pulse-loadgen)",
    2: "2. pulse-sim on the same box",
    3: "3. Ack latency at half of the maximum rate (1000 x 1)",
    4: "4. Node RSS per idle connection",
    5: "5. Queries (query_bench.py, keep-alive)",
    6: "6. Growth and on-disk size",
    7: "7. Cores: the node pinned to 1 core vs 2 cores",
    8: "8. Recovery",
    9: "9. Cardinality: " + ", ".join(f"{n:,}" for n in sorted({r["devices"] for r in R})) + " devices",
}[scen]
w(f"## {title}\n")

if scen == 1:
    w(f"N connections (one device each) x B readings per frame, 4 frames in flight per connection, "
      f"{env['MEASURE']} s measured after {env['WARMUP']} s of warm-up; a fresh node (or a fresh "
      f"influxd + gateway.js) per run, Pulse and baseline back to back in each run. CPU per reading "
      f"acked: Pulse = pulse-node; baseline = gateway.js (`--node-pid`) + influxd (`--also-pid`), "
      f"both from /proc/PID/stat over the measured interval. Medians of {RUNS} (runs in brackets).\n")
    w("| shape | system | readings/s acked | CPU us/reading | ack p50 / p99 ms | loadgen us/frame | lost / errors |")
    w("|---|---|---|---|---|---|---|")
    for shape, label in (("1000x1", "1000 x 1"), ("2000x10", "2000 x 10"), ("100x100", "100 x 100")):
        p, b = sel(shape=shape, sys="pulse"), sel(shape=shape, sys="baseline")
        if not p and not b:
            continue
        w(f"| {label} | Pulse | {cell(p, 'readings_per_s', f_rate)} | {cell(p, 'cpu_total', f_num)} | "
          f"{f_ms(med(p, 'p50_ms'))} / {f_ms(med(p, 'p99_ms'))} | {f_num(med(p, 'client_cpu_us_per_frame'))} | "
          f"{sum(vals(p, 'lost'))} / {sum(vals(p, 'errors'))} |")
        w(f"| | baseline | {cell(b, 'readings_per_s', f_rate)} | {cell(b, 'cpu_total', f_num)} "
          f"(gateway {f_num(med(b, 'node_cpu_us_per_reading'))} + influxd {f_num(med(b, 'also_cpu_us_per_reading'))}) | "
          f"{f_ms(med(b, 'p50_ms'))} / {f_ms(med(b, 'p99_ms'))} | {f_num(med(b, 'client_cpu_us_per_frame'))} | "
          f"{sum(vals(b, 'lost'))} / {sum(vals(b, 'errors'))} |")
        w(f"| | **Pulse / baseline** | **{ratio_cell(p, b, 'readings_per_s')}** | {ratio_cell(p, b, 'cpu_total')} | | | |")
    w("")

elif scen == 2:
    w(f"`pulse-sim --rate=0` (every device keeps its window of readings in flight), {env['SIM_DURATION']} s, "
      f"a fresh node per run; readings/s is pulse-sim's `throughput_per_s` (acked / (duration + ramp-up)). "
      f"pulse-sim CPU per frame = user+sys of the whole pulse-sim process (`/usr/bin/time`, start-up, "
      f"ramp-up and drain included) / frames sent; node CPU per reading = pulse-node's utime+stime over "
      f"the same span / readings acked. Medians of {RUNS}.\n")
    w("| shape | readings/s acked | pulse-sim CPU us/frame | node CPU us/reading | ack p50 / p99 ms | connected | reconnects / unconfirmed / errors | exit codes |")
    w("|---|---|---|---|---|---|---|---|")
    for shape, label in (("1000x1", "1000 devices x 1 reading/frame, window 8"),
                         ("100x100", "100 x 100, window 400"),
                         ("10000x1", "10,000 x 1, window 4, ramp-up 5 s, --io-threads=2")):
        p = sel(shape=shape)
        if not p:
            continue
        w(f"| {label} | {cell(p, 'throughput_per_s', f_rate)} | {cell(p, 'sim_cpu_us_per_frame', f_num)} | "
          f"{f_num(med(p, 'node_cpu_us_per_reading'))} | {f_ms(med(p, 'latency_ms.p50'))} / {f_ms(med(p, 'latency_ms.p99'))} | "
          f"{f_rate(med(p, 'connected'))} | {sum(vals(p, 'reconnects'))} / {sum(vals(p, 'unconfirmed'))} / "
          f"{sum(vals(p, 'error_count'))} | {' '.join(str(x) for x in vals(p, 'rc'))} |")
    w("")

elif scen == 3:
    w(f"1,000 connections x 1 reading per frame, paced with `--rate` (frames/s per connection) at half "
      f"of the 1000 x 1 maximum of scenario 1 (or of a calibration run when 1 was not selected), "
      f"64 frames in flight allowed, {env['MEASURE']} s measured after {env['WARMUP']} s. "
      f"Each system at half of its own maximum. Medians of {RUNS}.\n")
    w("| system | maximum readings/s | offered readings/s | sent readings/s | acked readings/s | ack p50 ms | p99 ms | p99 / p50 | p999 ms | max ms | server CPU us/reading (cores) |")
    w("|---|---|---|---|---|---|---|---|---|---|---|")
    rows = {}
    for sys_, label in (("pulse", "Pulse"), ("baseline", "baseline")):
        p = sel(sys=sys_, phase="paced")
        if not p:
            continue
        rows[sys_] = p
        p50, p99 = med(p, "p50_ms"), med(p, "p99_ms")
        w(f"| {label} | {f_rate(med(p, 'max_rate'))} | {f_rate(med(p, 'offered'))} | {f_rate(med(p, 'sent_readings_per_s'))} | {cell(p, 'readings_per_s', f_rate)} | "
          f"{cell(p, 'p50_ms', f_ms)} | {cell(p, 'p99_ms', f_ms)} | {ratio(p99, p50, 1)} | {f_ms(med(p, 'p999_ms'))} | {f_ms(med(p, 'max_ms'))} | "
          f"{f_num(med(p, 'cpu_total'))} ({f_num(med(p, 'node_cpu_cores'))}{' + ' + f_num(med(p, 'also_cpu_cores')) if sys_ == 'baseline' else ''}) |")
    if len(rows) == 2:
        p, b = rows["pulse"], rows["baseline"]
        w(f"| **Pulse / baseline** | {ratio(med(p, 'max_rate'), med(b, 'max_rate'))} | | | | "
          f"**{ratio_cell(p, b, 'p50_ms')}** | **{ratio_cell(p, b, 'p99_ms')}** | | | | |")
    for sys_, p in rows.items():
        off, sent, acked = med(p, "offered") or 0, med(p, "sent_readings_per_s") or 0, med(p, "readings_per_s") or 0
        if sent < 0.97 * off:
            w("")
            w(f"{sys_}: pulse-loadgen sent {sent:,.0f} readings/s of the {off:,.0f} offered (it could not keep "
              f"the pace on this machine: one send() per paced frame).")
        elif acked < 0.97 * sent:
            w("")
            w(f"{sys_}: {acked:,.0f} readings/s acked of {sent:,.0f} sent: the server fell behind at this rate. "
              f"Paced frames arrive one per TCP segment, each costing a read and an ack write, whereas "
              f"with 4 frames in flight (scenario 1) reads and acks coalesce; the CPU per reading is in the last column.")
    cal = [r for r in R if r.get("phase") == "calibrate"]
    if cal:
        w("")
        w("Maximum measured here (scenario 1 not selected): " +
          ", ".join(f"{r['sys']} {r['readings_per_s']:,.0f} readings/s" for r in cal) + ".")
    w("")

elif scen == 4:
    w(f"`pulse-loadgen --hold`: {env['HOLD_CONNECTIONS']:,} WebSocket connections (one device each) "
      f"opened at 5,000/s, each sends one reading and waits for its ack, then all stay idle: 3 s to settle, then "
      f"{env['HOLD_SECONDS']} s measured (pings answered). VmRSS of the server process (pulse-node; for the "
      f"baseline the gateway.js process, influxd not counted) before the first connect and at the end "
      f"of the hold: (held - before) / connections. Medians of {RUNS}.\n")
    w("| system | connections held | VmRSS before MiB | VmRSS held MiB | KiB per connection | idle CPU (cores) | failed / lost |")
    w("|---|---|---|---|---|---|---|")
    rows = {}
    for sys_, label in (("pulse", "Pulse (pulse-node)"), ("baseline", "baseline (gateway.js)")):
        p = sel(sys=sys_)
        if not p:
            continue
        rows[sys_] = p
        mib = lambda x: "n/a" if x is None else f"{x / 1024:,.1f}"
        w(f"| {label} | {f_rate(med(p, 'live_at_end'))} | {mib(med(p, 'node_rss_before_kb'))} | "
          f"{mib(med(p, 'node_rss_end_kb'))} | {cell(p, 'node_rss_kb_per_connection', f_num)} | "
          f"{f_num(med(p, 'node_cpu_cores'), 3)} | {sum(vals(p, 'failed'))} / {sum(vals(p, 'lost'))} |")
    if len(rows) == 2:
        w(f"| **Pulse / baseline** | | | | {ratio_cell(rows['pulse'], rows['baseline'], 'node_rss_kb_per_connection')} | | |")
    w("")

elif scen == 5:
    ld = {r["label"]: r for r in R if r.get("kind") == "load"}
    w(f"One pulse-node and one influxd (INFLUX_COLD=10s, so that the data reaches TSM files), loaded once "
      f"with the same data by `query_bench.py` (Pulse: POST /api/v1/readings, NDJSON bodies of 50,000 lines; "
      f"InfluxDB: line protocol, 5,000 lines per write; 2 connections at once for both): "
      f"{env['Q_DEVICES']} devices (`q-0`..) x {env['Q_SECONDS']:,} one-second readings from 2026-01-01, "
      f"plus one device `long-0` with {env['LONG_READINGS']:,} readings {env['LONG_INTERVAL_MS'] // 1000} s apart "
      f"over the 30 days before 2026-01-01 (so the fleet's hour is unchanged). Both were left to settle "
      f"(CPU idle) before timing. Every query: {env['Q_N']} requests over one keep-alive connection, "
      f"p50/p99 in ms from the client (Python); the data is loaded once and the timings repeated: medians of {RUNS}.\n")
    if ld:
        w("| load | readings | Pulse readings/s | InfluxDB readings/s |")
        w("|---|---|---|---|")
        for lab in ("main", "long"):
            p, i = ld.get(f"{lab}-pulse"), ld.get(f"{lab}-influx")
            if p or i:
                n = (p or i)["loaded"]
                w(f"| {str(env['Q_DEVICES']) + ' x ' + format(env['Q_SECONDS'], ',') if lab == 'main' else 'long-0 (30 days)'} | {n:,} | "
                  f"{f_rate(p and p['readings_per_s'])} | {f_rate(i and i['readings_per_s'])} |")
        w("")
    cmp_ = [r for r in R if r.get("kind") == "compare"]
    if cmp_:
        ok = all(r.get("ok") for r in cmp_)
        w(f"Answers compared once (`query_bench.py compare`): {'all agree' if ok else 'DISAGREE'} "
          f"({len(cmp_)} queries; largest relative difference {max(r.get('max_rel_diff', 0) for r in cmp_):.1e}"
          + "".join(f"; {r['query']}: {r.get('problems') or r.get('error')}" for r in cmp_ if not r.get("ok")) + ").\n")
    disk = [r for r in R if r.get("kind") == "disk"]
    if disk:
        d = disk[0]
        w(f"On disk after loading {d['readings']:,} readings ({env['Q_DEVICES']} x {env['Q_SECONDS']:,} and long-0), settled: "
          f"Pulse {pulse_disk(d)}; InfluxDB {d['influx_bytes'] / d['readings']:.1f} bytes/reading "
          f"({d['influx_bytes'] / 2**20:,.0f} MiB, data + wal, its cache written out to TSM files).\n")
    w("| query | Pulse p50 ms | Pulse p99 ms | InfluxDB p50 ms | InfluxDB p99 ms | Pulse / InfluxDB (p50) | buckets |")
    w("|---|---|---|---|---|---|---|")
    labels = [("device_1d_raw", "device, 1 day, count/sum/avg (raw)"),
              ("device_30d_1h", f"device long-0, 30 days, step 1h ({env['LONG_READINGS']:,} readings)"),
              ("fleet_1h_1m", f"fleet, 1 hour, step 1m, {env['Q_DEVICES']} devices"),
              ("device_1h_1m", "device, 1 hour, step 1m (1 client)"),
              ("device_1h_1m_c", f"device, 1 hour, step 1m, {env['Q_CLIENTS']} concurrent clients ({env['Q_CLIENTS_N']} requests)"),
              ("fleet10k_1h_1h", f"fleet, 1 hour, step 1h, {env['FLEET_DEVICES']:,} devices x {env['FLEET_SECONDS']:,} s")]
    for key, label in labels:
        p, i = sel(label=key, target="pulse"), sel(label=key, target="influx")
        if not p and not i:
            continue
        buckets = med(p or i, "buckets")
        w(f"| {label} | {cell(p, 'p50_ms', f_ms)} | {cell(p, 'p99_ms', f_ms)} | "
          f"{cell(i, 'p50_ms', f_ms) if i else 'not run'} | {cell(i, 'p99_ms', f_ms) if i else 'not run'} | "
          f"{ratio_cell(p, i, 'p50_ms') if i else 'n/a'} | {'n/a' if buckets is None else int(buckets)} |")
    pc, ic = sel(label="device_1h_1m_c", target="pulse"), sel(label="device_1h_1m_c", target="influx")
    if pc:
        w("")
        w(f"{env['Q_CLIENTS']} concurrent clients (threads of one Python process, which is itself busy on "
          f"this 2-core machine, so these figures include client-side queueing): Pulse p99 / p50 = "
          f"{ratio(med(pc, 'p99_ms'), med(pc, 'p50_ms'), 1)}, {f_rate(med(pc, 'queries_per_s'))} queries/s"
          + (f"; InfluxDB p99 / p50 = {ratio(med(ic, 'p99_ms'), med(ic, 'p50_ms'), 1)}, "
             f"{f_rate(med(ic, 'queries_per_s'))} queries/s" if ic else "") + ".")
    fl = [r for r in R if r.get("kind") == "fleet10k"]
    if fl:
        f = fl[0]
        w("")
        w(f"Fleet of {f['devices']:,} devices: a separate fresh pulse-node loaded with {f['loaded']:,} readings "
          f"({f_rate(f.get('readings_per_s'))} readings/s by POST, 3 connections); count over the hour "
          f"{f.get('count')} (expected {f['devices'] * min(f['seconds'], 3600):,}). "
          + ("InfluxDB was loaded too (FLEET_INFLUX=1)." if env["FLEET_INFLUX"] == "1" else
             "InfluxDB not run for this one (FLEET_INFLUX=0): loading the same "
             f"{f['loaded']:,} points at InfluxDB's rate above would take ~{f['loaded'] / max(1, (ld.get('main-influx') or {}).get('readings_per_s', 250000)) / 60:.0f} min "
             "and each query scans every raw point (no rollups), so 200 of them would not fit the time budget."))
    w("")

elif scen == 6:
    disk = [r for r in recs if r.get("s") == 5 and r.get("kind") == "disk"] + [r for r in R if r.get("kind") == "disk"]
    if disk:
        d = disk[0]
        w(f"On-disk bytes per reading of the query dataset ({d['readings']:,} readings, once settled): "
          f"Pulse {pulse_disk(d)}"
          + (f"; InfluxDB {d['influx_bytes'] / d['readings']:.1f}" if d.get("influx_bytes") else "") + ".\n")
    if not env["BIG"]:
        w("Growth not run: it needs `--big` (off by default; BIG_N readings, default 100,000,000; BIG_N=... sets N).\n")
    else:
        g = R
        n = env["BIG_N"]
        w(f"Ingest rate (pulse-loadgen 100 x 100, 4 in flight, {env['MEASURE']} s after {env['WARMUP']} s) "
          f"into an empty store (a fresh node per run) vs into one node after it was loaded (POST, "
          f"100 devices) with N = {n:,} readings; query p50 ({env['Q_N']} requests) on the same node "
          f"when it held 1,000,000 readings and when it held N. Medians of {RUNS}.\n")
        w("| measure | at empty / 1M | at N | N / empty |")
        w("|---|---|---|---|")
        e, f_ = sel(phase="empty"), sel(phase="full")
        w(f"| ingest readings/s (100 x 100) | {cell(e, 'readings_per_s', f_rate)} | {cell(f_, 'readings_per_s', f_rate)} | "
          f"{ratio(med(f_, 'readings_per_s'), med(e, 'readings_per_s'))} |")
        w(f"| node CPU us/reading | {f_num(med(e, 'node_cpu_us_per_reading'))} | {f_num(med(f_, 'node_cpu_us_per_reading'))} | "
          f"{ratio(med(f_, 'node_cpu_us_per_reading'), med(e, 'node_cpu_us_per_reading'))} |")
        for q in ("device_1h_1m", "device_1d_raw", "fleet_1h_1m"):
            a, b = sel(label=q, at="1M"), sel(label=q, at="N")
            if a or b:
                w(f"| {q} p50 ms | {cell(a, 'p50_ms', f_ms)} | {cell(b, 'p50_ms', f_ms)} | {ratio(med(b, 'p50_ms'), med(a, 'p50_ms'))} |")
        for r in (x for x in R if x.get("kind") == "load"):
            w(f"| POST load {r['label']} | | {r['loaded']:,} readings at {r['readings_per_s']:,} readings/s | |")
        dk = [x for x in R if x.get("kind") == "bigdisk"]
        if dk:
            d = dk[0]
            w(f"| on disk, bytes/reading | | {d['bytes'] / d['readings']:.1f} ({d['readings']:,} readings stored, {d['bytes'] / 2**30:.2f} GiB; "
              f"{d.get('wal_bytes', 0) / 2**20:,.0f} MiB of it RocksDB WAL files) | |")
    w("")

elif scen == 7:
    w(f"pulse-loadgen unpinned, 4 frames in flight, {env['CORES_MEASURE']} s measured after {env['WARMUP']} s; "
      f"the node started under `taskset -c 0` (1 core) or `taskset -c 0,1` (2 cores). Medians of {RUNS}.\n")
    w("| shape | 1 core readings/s | 2 cores readings/s | 2 cores / 1 core | node CPU us/reading 1 core / 2 cores | node cores used 1 / 2 |")
    w("|---|---|---|---|---|---|")
    for shape, label in (("100x100", "100 x 100"), ("1000x1", "1000 x 1")):
        a, b = sel(shape=shape, cores="1"), sel(shape=shape, cores="2")
        if not a and not b:
            continue
        w(f"| {label} | {cell(a, 'readings_per_s', f_rate)} | {cell(b, 'readings_per_s', f_rate)} | "
          f"{ratio(med(b, 'readings_per_s'), med(a, 'readings_per_s'))} | {f_num(med(a, 'node_cpu_us_per_reading'))} / "
          f"{f_num(med(b, 'node_cpu_us_per_reading'))} | {f_num(med(a, 'node_cpu_cores'))} / {f_num(med(b, 'node_cpu_cores'))} |")
    w("")

elif scen == 8:
    rec = sel(kind="recovery")
    w(f"Restart: a fresh node is loaded with {env['RECOVERY_N']:,} readings (100 devices, POST, NDJSON bodies "
      f"of 50,000 lines, 2 connections), killed with `kill -9` as soon as the last POST was answered, "
      f"and a new node is started on the same directory; times from its exec to its listening line and "
      f"to `/readyz` 200 (polled every 1 ms). Then on that node (started with "
      f"`--debug.fault-injection=true`): `POST /admin/shards/0/crash`, and `/readyz` and "
      f"`pulse_shard_restarts_total` polled every 1 ms until the counter went up and /readyz is 200, "
      f"then one reading per device POSTed (all shards). Medians of {RUNS} (one fresh load each).\n")
    w("| measurement | median | runs |")
    w("|---|---|---|")
    rowsdef = [("load rate by POST (readings/s)", "load_readings_per_s", f_rate),
               ("restart: exec to listening line (ms)", "listen_ms", f_ms),
               ("restart: exec to /readyz 200 (ms)", "ready_ms", f_ms),
               ("shard crash: to pulse_shard_restarts_total + 1 (ms)", "crash_counted_ms", f_ms),
               ("shard crash: to back (counter up and /readyz 200) (ms)", "crash_back_ms", f_ms),
               ("shard crash: to the first POST after it answered 200 (ms)", "crash_write_ms", f_ms),
               ("node exit status after SIGTERM", "exit_status", str)]
    for label, key, fmt in rowsdef:
        v = vals(rec, key)
        if v:
            m = statistics.median(v) if fmt is not str else v[0]
            w(f"| {label} | {fmt(m)} | {' / '.join(fmt(x) for x in v)} |")
    for r in rec:
        if not r.get("count_ok", True) or r.get("error"):
            w(f"\nRun {r['run']}: {r.get('error') or ''} counts after restart: {r.get('counts')}")
    saw = [r.get("saw_not_ready") for r in rec]
    if rec:
        w(f"\nStored counts checked after each restart (devices q-0, q-50, q-99; expected {env['RECOVERY_N'] // 100:,} each): "
          f"{'all as expected' if all(r.get('count_ok') for r in rec) else 'MISMATCH'}. "
          f"/readyz answered 503 during the shard restart in {sum(1 for s in saw if s)} of {len(saw)} runs.")
        first = sum(1 for r in rec if r.get("crash_polls") == 1)
        if first:
            w(f"In {first} of {len(rec)} runs the shard was back at the first poll (a GET /metrics and a "
              f"GET /readyz right after the crash was answered): the shard-crash times are then upper bounds.")
    w("")

if scen == 9:
    w(f"Cardinality: every device sends 2 readings (voltage, current) one pass after the other, "
      f"as JSON arrays of 5,000 readings POSTed by 2 writers (each waits for its 200), then "
      f"the same readings as line protocol to a fresh InfluxDB 1.6 (max-values-per-tag and "
      f"max-series-per-database set to 0, so that it takes every series; Pulse's figures come "
      f"first, on an idle InfluxDB). WebSocket: 100 connections, array frames of 1,000 readings "
      f"of as many devices, each frame's acks awaited before the next (a frame shed as overloaded, 1013, is sent again on a new connection). Rates from first send to "
      f"last answer; node CPU = utime+stime of pulse-node over the load / readings; RSS after "
      f"the load. Queries on the loaded node, medians: a fleet aggregate over every device for "
      f"the hour (step 1h), over the prefix c000 (10,000 devices), pages of 1,000 from "
      f"/api/v1/devices at the start, middle and end of the list. Restart: exec of a node on the "
      f"loaded directory to its listening line. Medians of {RUNS}.\n")
    w("| devices | Pulse POST readings/s | InfluxDB points/s | ratio | Pulse WebSocket readings/s | node CPU us/reading POST / WS | node RSS MiB POST / WS | fleet all ms | prefix 10k ms | page ms (worst of 3) | restart ms |")
    w("|---|---|---|---|---|---|---|---|---|---|---|")
    for n in sorted({r["devices"] for r in R}):
        p, q = sel(kind="post", devices=n), sel(kind="ws", devices=n)
        pages = [max(v["ms"] for v in r["queries"]["device_pages"].values()) for r in p if r.get("queries")]
        def m(rs, k, fmt=lambda x: f"{x:,.0f}"):
            v = med(rs, k)
            return fmt(v) if v is not None else "n/a"
        w(f"| {n:,} | {m(p, 'pulse.readings_per_s')} | {m(p, 'influx.points_per_s')} | {m(p, 'ratio', lambda x: f'{x:.2f}x')} | "
          f"{m(q, 'pulse.readings_per_s')} | {m(p, 'pulse.cpu_us_per_reading', lambda x: f'{x:.1f}')} / {m(q, 'pulse.cpu_us_per_reading', lambda x: f'{x:.1f}')} | "
          f"{m(p, 'pulse.rss_bytes', lambda x: f'{x / 1048576:,.0f}')} / {m(q, 'pulse.rss_bytes', lambda x: f'{x / 1048576:,.0f}')} | "
          f"{m(p, 'queries.fleet_all_ms', lambda x: f'{x:,.1f}')} | {m(p, 'queries.fleet_prefix_10k_ms', lambda x: f'{x:.1f}')} | "
          f"{(f'{statistics.median(pages):.1f}' if pages else 'n/a')} | {m(p, 'restart_ms')} |")
    w("\nTargets (issue 13, 1,000,000 devices): >= 300,000 readings/s; >= 2x InfluxDB at 100,000 devices; "
      "RSS <= 1.5 GiB; fleet over all <= 1 s; prefix of 10,000 <= 20 ms; pages <= 20 ms; restart <= 10 s.")
    fails = [r for r in R if r.get("pulse", {}).get("failures") or r.get("influx", {}).get("failures")]
    for r in fails:
        w(f"\nRun {r['run']} ({r['kind']}, {r['devices']:,}): failures: Pulse {r['pulse'].get('failures')} "
          f"{r['pulse'].get('first_failure', '')} InfluxDB {r.get('influx', {}).get('failures')} {r.get('influx', {}).get('first_failure', '')}")
    w("")

cmds = os.path.join(work, f"cmds.{scen}")
if os.path.exists(cmds):
    seen, lines = set(), []
    for l in open(cmds):
        l = l.rstrip("\n").replace(work + "/build/", env["ORIG_BUILD"] + "/")
        l = l.replace(work + "/pulse-node.ini", env["ORIG_CONFIG"]).replace(work, "$TMP")
        if l and l not in seen:
            seen.add(l)
            lines.append(l)
    w("Commands (first run; ports, pids and $TMP paths differ per run):\n")
    w("```sh")
    out.extend(lines)
    w("```")
    w("")
print("\n".join(out))
PY
)

render() {  # SCEN: prints the scenario's section and keeps it for the results file
  local env_json
  env_json=$(jq -n --arg MEASURE "$MEASURE" --arg WARMUP "$WARMUP" --arg SIM_DURATION "$SIM_DURATION" \
    --arg CORES_MEASURE "$CORES_MEASURE" --argjson HOLD_CONNECTIONS "$HOLD_CONNECTIONS" \
    --arg HOLD_SECONDS "$HOLD_SECONDS" --argjson Q_DEVICES "$Q_DEVICES" --argjson Q_SECONDS "$Q_SECONDS" \
    --arg Q_N "$Q_N" --arg Q_CLIENTS "$Q_CLIENTS" --arg Q_CLIENTS_N "$Q_CLIENTS_N" \
    --argjson LONG_READINGS "$LONG_READINGS" --argjson LONG_INTERVAL_MS "$LONG_INTERVAL_MS" \
    --argjson FLEET_DEVICES "$FLEET_DEVICES" --argjson FLEET_SECONDS "$FLEET_SECONDS" \
    --arg FLEET_INFLUX "$FLEET_INFLUX" --argjson BIG "$big" --argjson BIG_N "$BIG_N" \
    --argjson RECOVERY_N "$RECOVERY_N" --arg ORIG_BUILD "$ORIG_BUILD" --arg ORIG_CONFIG "$ORIG_CONFIG" '$ARGS.named')
  python3 -c "$RENDER_PY" "$raw" "$1" "$work" "$runs" "$env_json" | tee "$work/section.$1.md"
}

# --- scenarios ----------------------------------------------------------------

scenario_1() {
  local shape c b k d
  for shape in "1000 1 4" "2000 10 4" "100 100 4"; do
    read -r c b k <<<"$shape"
    for RUN in $(seq "$runs"); do
      d=$work/s1/pulse-$c-$RUN
      node_start 1 "$d" || continue
      lg 1 "{\"s\":1,\"sys\":\"pulse\",\"shape\":\"${c}x$b\",\"run\":$RUN}" --node="$NODE_ADDR" \
        --node-pid="$NODE_PID" --connections="$c" --batch="$b" --inflight="$k" \
        --duration="${MEASURE}s" --warmup="${WARMUP}s"
      node_stop 1 "pulse ${c}x$b run $RUN" "$d"
      rm -rf "$d"
      d=$work/s1/base-$c-$RUN
      baseline_start 1 "$d" || continue
      lg 1 "{\"s\":1,\"sys\":\"baseline\",\"shape\":\"${c}x$b\",\"run\":$RUN}" --node="$BASE_GW_ADDR" \
        --node-pid="$BASE_GW_PID" --also-pid="$BASE_INFLUX_PID" --connections="$c" --batch="$b" \
        --inflight="$k" --duration="${MEASURE}s" --warmup="${WARMUP}s"
      baseline_stop 1 "baseline ${c}x$b run $RUN" "$d"
      rm -rf "$d"
    done
  done
}

scenario_2() {
  local spec name args extra d rc cpu0 cpu1 meta
  for spec in "1000x1|--devices=1000 --batch=1 --rate=0 --window=8 --ramp-up=2s|" \
    "100x100|--devices=100 --batch=100 --rate=0 --window=400 --ramp-up=1s|" \
    "10000x1|--devices=10000 --batch=1 --rate=0 --window=4 --ramp-up=5s --io-threads=2|--net.max-connections=12000"; do
    IFS='|' read -r name args extra <<<"$spec"
    for RUN in $(seq "$runs"); do
      d=$work/s2/$name-$RUN
      # shellcheck disable=SC2086 # word splitting of the option lists is intended
      node_start 2 "$d" $extra || continue
      cpu0=$(proc_cpu_us "$NODE_PID")
      rc=0
      # shellcheck disable=SC2086
      logcmd 2 /usr/bin/time -f '%U %S' -o "$d/time.txt" "$SIM" --node="$NODE_ADDR" --duration="${SIM_DURATION}s" \
        --quiet --report="$d/report.json" $args
      # shellcheck disable=SC2086
      /usr/bin/time -f '%U %S' -o "$d/time.txt" "$SIM" --node="$NODE_ADDR" --duration="${SIM_DURATION}s" \
        --quiet --report="$d/report.json" $args >"$d/sim.out" 2>&1 || rc=$?
      cpu1=$(proc_cpu_us "$NODE_PID")
      node_stop 2 "pulse-sim $name run $RUN" "$d"
      ((rc == 0)) || note "scenario 2 ($name run $RUN): pulse-sim exit $rc: $(grep -i 'problem\|error\|gave' "$d/sim.out" | head -n 3 | tr '\n' '|')"
      if [[ -s $d/report.json ]]; then
        meta="{\"s\":2,\"shape\":\"$name\",\"run\":$RUN,\"rc\":$rc}"
        record "$meta" "$(jq -c --arg t "$(tail -n 1 "$d/time.txt")" --argjson ncpu $((cpu1 - cpu0)) '
          del(.per_device) | ($t | split(" ") | map(tonumber) | add) as $cpu |
          . + {sim_cpu_s: $cpu, sim_cpu_us_per_frame: (if .frames_sent > 0 then $cpu * 1e6 / .frames_sent else null end),
               node_cpu_us_per_reading: (if .acked > 0 then $ncpu / .acked else null end),
               error_count: ([.errors[]] | add // 0)}' "$d/report.json")"
        jq -r '"  \(.shape) run \(.run): \(.throughput_per_s | floor) readings/s, pulse-sim \(.sim_cpu_us_per_frame * 100 | floor / 100) us/frame, node \(.node_cpu_us_per_reading * 100 | floor / 100) us/reading, ack p50 \(.latency_ms.p50) ms p99 \(.latency_ms.p99) ms"' <<<"$(tail -n 1 "$raw")"
      else
        note "scenario 2 ($name run $RUN): pulse-sim wrote no report (exit $rc)"
      fi
      rm -rf "$d"
    done
  done
}

scenario_3() {
  local sys max rate d
  for sys in pulse baseline; do
    max=$(median_of "select(.s == 1 and .sys == \"$sys\" and .shape == \"1000x1\") | .readings_per_s")
    if [[ -z $max ]]; then  # scenario 1 not run: one calibration run
      say "  calibrating the $sys 1000x1 maximum (scenario 1 not selected)"
      RUN=1
      d=$work/s3/cal-$sys
      if [[ $sys == pulse ]]; then
        node_start 3 "$d" || return 1
        lg 3 "{\"s\":3,\"sys\":\"pulse\",\"phase\":\"calibrate\",\"run\":0}" --node="$NODE_ADDR" --node-pid="$NODE_PID" \
          --connections=1000 --batch=1 --inflight=4 --duration="${MEASURE}s" --warmup="${WARMUP}s"
        node_stop 3 "calibration" "$d"
      else
        baseline_start 3 "$d" || return 1
        lg 3 "{\"s\":3,\"sys\":\"baseline\",\"phase\":\"calibrate\",\"run\":0}" --node="$BASE_GW_ADDR" \
          --node-pid="$BASE_GW_PID" --also-pid="$BASE_INFLUX_PID" --connections=1000 --batch=1 --inflight=4 \
          --duration="${MEASURE}s" --warmup="${WARMUP}s"
        baseline_stop 3 "calibration" "$d"
      fi
      rm -rf "$d"
      max=$(median_of "select(.s == 3 and .sys == \"$sys\" and .phase == \"calibrate\") | .readings_per_s")
    fi
    [[ -n $max ]] || { note "scenario 3: no $sys maximum to halve"; continue; }
    rate=$(python3 -c "print(round($max / 2 / 1000, 3))")
    say "  $sys: maximum $max readings/s, pacing 1000 connections at $rate frames/s each"
    for RUN in $(seq "$runs"); do
      d=$work/s3/$sys-$RUN
      local meta
      meta="{\"s\":3,\"sys\":\"$sys\",\"phase\":\"paced\",\"run\":$RUN,\"max_rate\":$max,\"offered\":$(python3 -c "print($rate * 1000)")}"
      if [[ $sys == pulse ]]; then
        node_start 3 "$d" || continue
        lg 3 "$meta" --node="$NODE_ADDR" --node-pid="$NODE_PID" --connections=1000 --batch=1 --inflight=64 \
          --rate="$rate" --duration="${MEASURE}s" --warmup="${WARMUP}s"
        node_stop 3 "paced run $RUN" "$d"
      else
        baseline_start 3 "$d" || continue
        lg 3 "$meta" --node="$BASE_GW_ADDR" --node-pid="$BASE_GW_PID" --also-pid="$BASE_INFLUX_PID" \
          --connections=1000 --batch=1 --inflight=64 --rate="$rate" --duration="${MEASURE}s" --warmup="${WARMUP}s"
        baseline_stop 3 "paced run $RUN" "$d"
      fi
      rm -rf "$d"
    done
  done
}

scenario_4() {
  local d
  for RUN in $(seq "$runs"); do
    d=$work/s4/pulse-$RUN
    if node_start 4 "$d"; then
      lg 4 "{\"s\":4,\"sys\":\"pulse\",\"run\":$RUN}" --node="$NODE_ADDR" --node-pid="$NODE_PID" --hold \
        --connections="$HOLD_CONNECTIONS" --connect-rate=5000 --duration="${HOLD_SECONDS}s" --warmup=3s
      node_stop 4 "hold run $RUN" "$d"
    fi
    rm -rf "$d"
    d=$work/s4/base-$RUN
    if baseline_start 4 "$d"; then
      lg 4 "{\"s\":4,\"sys\":\"baseline\",\"run\":$RUN}" --node="$BASE_GW_ADDR" --node-pid="$BASE_GW_PID" --hold \
        --connections="$HOLD_CONNECTIONS" --connect-rate=5000 --duration="${HOLD_SECONDS}s" --warmup=3s
      baseline_stop 4 "hold run $RUN" "$d"
    fi
    rm -rf "$d"
  done
}

scenario_5() {
  local d=$work/s5 iport pulse_addr pulse_pid influx_pid readings res q
  mkdir -p "$d"
  iport=$(free_port)
  echo "$d/influx" >>"$work/influx.dirs"
  influx_pid=$(INFLUX_COLD=10s bench/baseline/influx.sh start "$d/influx" "$iport") || { note "scenario 5: influxd did not start"; return 1; }
  logline 5 "INFLUX_COLD=10s bench/baseline/influx.sh start $d/influx $iport"
  node_start 5 "$d/pulse" || return 1
  pulse_addr=$NODE_ADDR
  pulse_pid=$NODE_PID
  say "  loading $Q_DEVICES x $Q_SECONDS readings into both, then long-0 ($LONG_READINGS readings over 30 days)"
  qload 5 '{"s":5,"kind":"load","label":"main-pulse"}' load-pulse --url "http://$pulse_addr" \
    --devices "$Q_DEVICES" --seconds "$Q_SECONDS" --parallel 2 || return 1
  qload 5 '{"s":5,"kind":"load","label":"main-influx"}' load-influx --port "$iport" \
    --devices "$Q_DEVICES" --seconds "$Q_SECONDS" --parallel 2 || return 1
  qload 5 '{"s":5,"kind":"load","label":"long-pulse"}' load-pulse --url "http://$pulse_addr" --devices 1 \
    --prefix long- --seconds "$LONG_READINGS" --interval-ms "$LONG_INTERVAL_MS" --start-ms "$LONG_START_MS" || return 1
  qload 5 '{"s":5,"kind":"load","label":"long-influx"}' load-influx --port "$iport" --devices 1 \
    --prefix long- --seconds "$LONG_READINGS" --interval-ms "$LONG_INTERVAL_MS" --start-ms "$LONG_START_MS" || return 1
  readings=$((Q_DEVICES * Q_SECONDS + LONG_READINGS))
  say "  waiting for pulse-node and influxd to settle (CPU idle; influxd writes its cache out after 10 s)"
  wait_quiet "$pulse_pid" 3 60
  wait_quiet "$influx_pid" 12 180
  local stored
  stored=$(metric "$pulse_addr" pulse_readings_stored_total)
  [[ $stored == "$readings" ]] || note "scenario 5: pulse_readings_stored_total is $stored after loading $readings readings"

  logcmd 5 python3 "$QB" compare --pulse-port "$NODE_PORT" --influx-port "$iport" --query all
  res=$(python3 "$QB" compare --pulse-port "$NODE_PORT" --influx-port "$iport" --query all) ||
    note "scenario 5: Pulse and InfluxDB answers differ: $(tr '\n' '|' <<<"$res" | cut -c1-600)"
  while read -r q; do [[ -n $q ]] && record '{"s":5,"kind":"compare"}' "$q"; done <<<"$res"
  logcmd 5 python3 "$QB" compare --pulse-port "$NODE_PORT" --influx-port "$iport" --query device_30d_1h --device long-0 --start-ms "$LONG_START_MS"
  res=$(python3 "$QB" compare --pulse-port "$NODE_PORT" --influx-port "$iport" --query device_30d_1h \
    --device long-0 --start-ms "$LONG_START_MS") ||
    note "scenario 5: Pulse and InfluxDB answers differ for long-0: $(tr '\n' '|' <<<"$res" | cut -c1-600)"
  [[ -n $res ]] && record '{"s":5,"kind":"compare"}' "$(jq -c '.query = "device_30d_1h (long-0)"' <<<"$res")"
  say "  answers compared: $(jq -s -r 'map(select(.s == 5 and .kind == "compare")) | "\(map(select(.ok)) | length) of \(length) agree"' "$raw")"

  local pulse_bytes pulse_wal influx_bytes
  pulse_bytes=$(dir_bytes "$d/pulse/db")
  pulse_wal=$(wal_bytes "$d/pulse/db")
  influx_bytes=$(dir_bytes "$d/influx/data" "$d/influx/wal")

  for RUN in $(seq "$runs"); do
    for spec in "device_1d_raw|device_1d_raw|--n $Q_N" \
      "device_30d_1h|device_30d_1h|--n $Q_N --device long-0 --start-ms $LONG_START_MS" \
      "fleet_1h_1m|fleet_1h_1m|--n $Q_N" \
      "device_1h_1m|device_1h_1m|--n $Q_N" \
      "device_1h_1m_c|device_1h_1m|--n $Q_CLIENTS_N --clients $Q_CLIENTS"; do
      IFS='|' read -r label q args <<<"$spec"
      # shellcheck disable=SC2086
      qtime 5 "{\"s\":5,\"label\":\"$label\",\"run\":$RUN}" pulse "$NODE_PORT" "$q" $args
      # shellcheck disable=SC2086
      qtime 5 "{\"s\":5,\"label\":\"$label\",\"run\":$RUN}" influx "$iport" "$q" $args
    done
  done
  NODE_PID=$pulse_pid
  node_stop 5 "query node" "$d/pulse"
  record '{"s":5,"kind":"disk"}' "{\"readings\":$readings,\"pulse_bytes\":$pulse_bytes,\"pulse_wal_bytes\":$pulse_wal,\"influx_bytes\":$influx_bytes,\"pulse_bytes_stopped\":$(dir_bytes "$d/pulse/db"),\"pulse_wal_bytes_stopped\":$(wal_bytes "$d/pulse/db")}"
  bench/baseline/influx.sh stop "$d/influx" >/dev/null 2>&1 || true
  rm -rf "$d"

  # The 10,000-device fleet, on a node of its own.
  say "  loading $FLEET_DEVICES x $FLEET_SECONDS readings into a fresh node for the fleet query"
  node_start 5 "$d/fleet" || return 1
  res=$(python3 "$QB" load-pulse --url "http://$NODE_ADDR" --devices "$FLEET_DEVICES" --seconds "$FLEET_SECONDS" \
    --parallel 3 2>"$work/qb.err") || { note "scenario 5: fleet load failed: $(tail -n 2 "$work/qb.err")"; return 1; }
  RUN=1 logcmd 5 python3 "$QB" load-pulse --url "http://$NODE_ADDR" --devices "$FLEET_DEVICES" --seconds "$FLEET_SECONDS" --parallel 3
  say "  $res"
  if [[ $FLEET_INFLUX == 1 ]]; then
    iport=$(free_port)
    echo "$d/finflux" >>"$work/influx.dirs"
    influx_pid=$(INFLUX_COLD=10s bench/baseline/influx.sh start "$d/finflux" "$iport") || return 1
    python3 "$QB" load-influx --port "$iport" --devices "$FLEET_DEVICES" --seconds "$FLEET_SECONDS" --parallel 2
    wait_quiet "$influx_pid" 12 300
  fi
  wait_quiet "$NODE_PID" 3 60
  local count
  count=$(curl -s "http://$NODE_ADDR/api/v1/aggregate?metric=voltage&from=$START_MS&to=$((START_MS + 3600000))&fn=count" |
    jq '.buckets[0].count // 0')
  [[ $count == $((FLEET_DEVICES * (FLEET_SECONDS < 3600 ? FLEET_SECONDS : 3600))) ]] ||
    note "scenario 5: the fleet's count over the hour is $count, expected $((FLEET_DEVICES * (FLEET_SECONDS < 3600 ? FLEET_SECONDS : 3600)))"
  record '{"s":5,"kind":"fleet10k"}' "$(jq -c --argjson n "$FLEET_DEVICES" --argjson sec "$FLEET_SECONDS" --argjson c "$count" \
    '. + {devices: $n, seconds: $sec, count: $c}' <<<"$res")"
  for RUN in $(seq "$runs"); do
    qtime 5 "{\"s\":5,\"label\":\"fleet10k_1h_1h\",\"run\":$RUN}" pulse "$NODE_PORT" fleet_1h_1h --n "$Q_N"
    [[ $FLEET_INFLUX == 1 ]] && qtime 5 "{\"s\":5,\"label\":\"fleet10k_1h_1h\",\"run\":$RUN}" influx "$iport" fleet_1h_1h --n "$Q_N"
  done
  node_stop 5 "fleet node" "$d/fleet"
  [[ $FLEET_INFLUX == 1 ]] && bench/baseline/influx.sh stop "$d/finflux" >/dev/null 2>&1
  rm -rf "$d"
}

scenario_6() {
  local d=$work/s6
  if ! jq -s -e 'map(select(.s == 5 and .kind == "disk")) | length > 0' "$raw" >/dev/null; then
    say "  scenario 5 not run: loading $Q_DEVICES x $Q_SECONDS readings into a fresh node for its size"
    node_start 6 "$d/q" || return 1
    qload 6 '{"s":6,"kind":"load","label":"of the query dataset (for its size)"}' load-pulse --url "http://$NODE_ADDR" \
      --devices "$Q_DEVICES" --seconds "$Q_SECONDS" --parallel 2 || return 1
    wait_quiet "$NODE_PID" 3 60
    local bytes wal
    bytes=$(dir_bytes "$d/q/db")
    wal=$(wal_bytes "$d/q/db")
    node_stop 6 "size" "$d/q"
    record '{"s":6,"kind":"disk"}' "{\"readings\":$((Q_DEVICES * Q_SECONDS)),\"pulse_bytes\":$bytes,\"pulse_wal_bytes\":$wal,\"pulse_bytes_stopped\":$(dir_bytes "$d/q/db"),\"pulse_wal_bytes_stopped\":$(wal_bytes "$d/q/db")}"
    rm -rf "$d/q"
  fi
  ((big)) || { say "  growth skipped: it needs --big"; return 0; }

  local per_dev=$((BIG_N / 100)) first=10000
  ((per_dev > first)) || { note "scenario 6: BIG_N must be over 1,000,000"; return 1; }
  for RUN in $(seq "$runs"); do
    node_start 6 "$d/e$RUN" || continue
    lg 6 "{\"s\":6,\"phase\":\"empty\",\"run\":$RUN}" --node="$NODE_ADDR" --node-pid="$NODE_PID" \
      --connections=100 --batch=100 --inflight=4 --duration="${MEASURE}s" --warmup="${WARMUP}s"
    node_stop 6 "empty run $RUN" "$d/e$RUN"
    rm -rf "$d/e$RUN"
  done
  RUN=1
  node_start 6 "$d/big" || return 1
  qload 6 '{"s":6,"kind":"load","label":"first 1,000,000"}' load-pulse --url "http://$NODE_ADDR" \
    --devices 100 --seconds "$first" --parallel 2 || return 1
  wait_quiet "$NODE_PID" 3 60
  for RUN in $(seq "$runs"); do
    for q in device_1h_1m device_1d_raw fleet_1h_1m; do
      qtime 6 "{\"s\":6,\"label\":\"$q\",\"at\":\"1M\",\"run\":$RUN}" pulse "$NODE_PORT" "$q" --n "$Q_N"
    done
  done
  RUN=1
  say "  loading up to $BIG_N readings"
  qload 6 "{\"s\":6,\"kind\":\"load\",\"label\":\"up to N\"}" load-pulse --url "http://$NODE_ADDR" \
    --devices 100 --first "$first" --seconds $((per_dev - first)) --parallel 2 || return 1
  wait_quiet "$NODE_PID" 5 300
  record '{"s":6,"kind":"bigdisk"}' "{\"readings\":$(metric "$NODE_ADDR" pulse_readings_stored_total),\"bytes\":$(dir_bytes "$d/big/db"),\"wal_bytes\":$(wal_bytes "$d/big/db")}"
  for RUN in $(seq "$runs"); do
    for q in device_1h_1m device_1d_raw fleet_1h_1m; do
      qtime 6 "{\"s\":6,\"label\":\"$q\",\"at\":\"N\",\"run\":$RUN}" pulse "$NODE_PORT" "$q" --n "$Q_N"
    done
  done
  for RUN in $(seq "$runs"); do
    lg 6 "{\"s\":6,\"phase\":\"full\",\"run\":$RUN}" --node="$NODE_ADDR" --node-pid="$NODE_PID" \
      --connections=100 --batch=100 --inflight=4 --duration="${MEASURE}s" --warmup="${WARMUP}s" \
      --start-seq=$((RUN * 100000000)) --ts-start=$(($(date +%s) * 1000 - 3600000 - RUN * 100000000))
  done
  node_stop 6 "big node" "$d/big"
  rm -rf "$d"
}

scenario_7() {
  local shape c b cores d
  for shape in "100 100" "1000 1"; do
    read -r c b <<<"$shape"
    for RUN in $(seq "$runs"); do
      for cores in 1 2; do
        d=$work/s7/$c-$cores-$RUN
        # shellcheck disable=SC2054 # 0,1 is taskset's CPU list, one word
        if ((cores == 1)); then NODE_WRAP=(taskset -c 0); else NODE_WRAP=(taskset -c 0,1); fi
        node_start 7 "$d" || continue
        NODE_WRAP=()
        lg 7 "{\"s\":7,\"shape\":\"${c}x$b\",\"cores\":\"$cores\",\"run\":$RUN}" --node="$NODE_ADDR" \
          --node-pid="$NODE_PID" --connections="$c" --batch="$b" --inflight=4 \
          --duration="${CORES_MEASURE}s" --warmup="${WARMUP}s"
        node_stop 7 "${c}x$b on $cores cores run $RUN" "$d"
        rm -rf "$d"
      done
    done
  done
  NODE_WRAP=()
}

PROBE_PY=$(cat <<'PY'
# Times a restarted pulse-node, then a shard crash on it. argv: JSON config.
import http.client, json, os, re, subprocess, sys, time

cfg = json.loads(sys.argv[1])
res = {}
clock = time.perf_counter


def get(conn, path, method="GET", body=None):
    conn.request(method, path, body=body, headers={"Content-Type": "application/x-ndjson"} if body else {})
    r = conn.getresponse()
    return r.status, r.read()


t0 = clock()
node = subprocess.Popen(cfg["cmd"], stdout=open(cfg["out"], "w"), stderr=open(cfg["err"], "w"),
                        stdin=subprocess.DEVNULL)
with open(cfg["pids"], "a") as f:
    f.write(f"{node.pid}\n")
pattern = re.compile(r"^pulse-node .* listening on (.*):(\d+)$", re.M)
addr = None
while addr is None:
    m = pattern.search(open(cfg["out"]).read())
    if m:
        addr = (m.group(1), int(m.group(2)))
        res["listen_ms"] = (clock() - t0) * 1000
        break
    if node.poll() is not None:
        print(json.dumps({"error": f"the restarted node exited with {node.returncode}"}))
        sys.exit(1)
    if clock() - t0 > 600:
        node.kill()
        print(json.dumps({"error": "no listening line within 600 s"}))
        sys.exit(1)
    time.sleep(0.001)

conn = http.client.HTTPConnection(*addr, timeout=30)
while True:
    try:
        status, _ = get(conn, "/readyz")
    except OSError:
        conn.close()
        conn = http.client.HTTPConnection(*addr, timeout=30)
        status = None
    if status == 200:
        res["ready_ms"] = (clock() - t0) * 1000
        break
    if node.poll() is not None or clock() - t0 > 600:
        print(json.dumps({"error": "never ready", **res}))
        sys.exit(1)
    time.sleep(0.001)

# Every acked reading must have survived kill -9.
counts = {}
for d in cfg["check_devices"]:
    status, body = get(conn, f"/api/v1/devices/{d}/aggregate?metric=voltage&fn=count&from=0")
    counts[d] = json.loads(body)["buckets"][0]["count"] if status == 200 and json.loads(body)["buckets"] else status
res["counts"] = counts
res["count_ok"] = all(c == cfg["expect_count"] for c in counts.values())


def restarts():
    status, body = get(conn, "/metrics")
    m = re.search(rb"^pulse_shard_restarts_total (\d+)", body, re.M)
    return int(m.group(1)) if m else None


before = restarts() or 0
status, body = get(conn, "/admin/shards/0/crash", "POST")
tc = clock()
if status != 202:
    res["error"] = f"crash answered {status}: {body[:200]!r}"
else:
    saw_not_ready = False
    polls = 0
    while clock() - tc < 60:
        polls += 1
        n = restarts()
        if n is not None and n > before and "crash_counted_ms" not in res:
            res["crash_counted_ms"] = (clock() - tc) * 1000
        s, _ = get(conn, "/readyz")
        saw_not_ready |= s != 200
        if "crash_counted_ms" in res and s == 200:
            res["crash_back_ms"] = (clock() - tc) * 1000
            break
        time.sleep(0.001)
    res["saw_not_ready"] = saw_not_ready
    res["crash_polls"] = polls
    seq = cfg["expect_count"] + 1
    body = "".join(f'{{"device":"q-{d}","seq":{seq},"ts":{cfg["ts"]},"values":{{"voltage":230.0}}}}\n'
                   for d in range(cfg["devices"]))
    s, b = get(conn, "/api/v1/readings", "POST", body.encode())
    if s == 200:
        res["crash_write_ms"] = (clock() - tc) * 1000
    else:
        res["error"] = f"POST after the shard crash answered {s}: {b[:200]!r}"
conn.close()
node.terminate()
try:
    res["exit_status"] = node.wait(timeout=60)
except subprocess.TimeoutExpired:
    node.kill()
    res["exit_status"] = "killed after 60 s"
print(json.dumps(res))
PY
)

scenario_8() {
  local d res rc per_dev=$((RECOVERY_N / 100))
  for RUN in $(seq "$runs"); do
    d=$work/s8/$RUN
    node_start 8 "$d" || continue
    res=$(python3 "$QB" load-pulse --url "http://$NODE_ADDR" --devices 100 --seconds "$per_dev" --parallel 2 \
      2>"$work/qb.err") || { note "scenario 8: load failed: $(tail -n 2 "$work/qb.err")"; stop_proc "$NODE_PID"; continue; }
    logcmd 8 python3 "$QB" load-pulse --url "http://$NODE_ADDR" --devices 100 --seconds "$per_dev" --parallel 2
    say "  run $RUN: $res; kill -9"
    logline 8 "kill -9 <pid>   # as soon as the load's last POST was answered"
    kill -KILL "$NODE_PID"
    wait "$NODE_PID" 2>/dev/null || true
    local cmd=("$NODE_BIN" --config-file="$PULSE_NODE_CONFIG" --net.port=0 --storage.path="$d/db"
      --log.level=warn --debug.fault-injection=true)
    logcmd 8 "${cmd[@]}"
    logline 8 "# then GET /readyz every 1 ms; POST /admin/shards/0/crash; GET /metrics and /readyz every 1 ms (run.sh's probe)"
    rc=0
    local probe
    probe=$(python3 -c "$PROBE_PY" "$(python3 -c 'import json, sys; print(json.dumps(sys.argv[1:]))' "${cmd[@]}" |
      jq -c --arg out "$d/node2.out" --arg err "$d/node2.err" --arg pids "$work/pids" \
        --argjson expect "$per_dev" --argjson ts $((START_MS + per_dev * 1000)) \
        '{cmd: ., out: $out, err: $err, pids: $pids, expect_count: $expect, devices: 100, ts: $ts,
          check_devices: ["q-0", "q-50", "q-99"]}')") || rc=$?
    if ! jq -e . >/dev/null 2>&1 <<<"$probe"; then
      note "scenario 8 run $RUN: the restart probe failed (exit $rc): $probe"
    else
      record "{\"s\":8,\"kind\":\"recovery\",\"run\":$RUN}" "$(jq -c --argjson r "$res" '. + {load_readings_per_s: $r.readings_per_s}' <<<"$probe")"
      jq -r '"  run \(.run): listening after \(.listen_ms | floor) ms, ready after \(.ready_ms | floor) ms, counts \(.counts); shard crash: counted after \(.crash_counted_ms) ms, back after \(.crash_back_ms) ms, write after \(.crash_write_ms) ms; exit \(.exit_status)"' <<<"$(tail -n 1 "$raw")"
      jq -e '.count_ok and (.exit_status == 0) and (.error == null)' >/dev/null <<<"$probe" ||
        note "scenario 8 run $RUN: $(jq -c '{error, counts, exit_status}' <<<"$probe") ($(head -n 3 "$d/node2.err" | tr '\n' '|'))"
    fi
    grep -v 'injected crash\|crashing on request\|shard 0 died' "$d/node2.err" 2>/dev/null | head -n 3 | grep -q . &&
      note "scenario 8 run $RUN: the restarted pulse-node wrote to stderr: $(grep -v 'injected crash\|crashing on request\|shard 0 died' "$d/node2.err" | head -n 3 | tr '\n' '|')"
    : >"$work/pids"  # the probe waited for its node
    rm -rf "$d"
  done
}

scenario_9() {
  local n d res ires mode addr t0 t1
  for n in $CARD_DEVICES; do
    for RUN in $(seq "$runs"); do
      # POST, with a fresh InfluxDB fed the same readings after Pulse.
      d=$work/s9/$n-$RUN
      node_start 9 "$d" || continue
      mkdir -p "$d/influx"
      echo "$d/influx" >>"$work/influx.dirs"
      local iport
      iport=$(free_port)
      local ipid
      ipid=$(INFLUX_MAX_VALUES_PER_TAG=0 INFLUX_MAX_SERIES=0 bench/baseline/influx.sh start "$d/influx" "$iport") ||
        { note "scenario 9: influxd did not start"; node_stop 9 "$n post" "$d"; continue; }
      logline 9 "INFLUX_MAX_VALUES_PER_TAG=0 INFLUX_MAX_SERIES=0 bench/baseline/influx.sh start $d/influx $iport"
      res=$(python3 bench/cardinality.py --node "$NODE_ADDR" --node-pid "$NODE_PID" --devices "$n" \
        --influx "127.0.0.1:$iport" --influx-pid "$ipid" --json 2>"$work/card.err") ||
        note "scenario 9 ($n devices, POST, run $RUN): $(tail -n 2 "$work/card.err" | tr '\n' '|') $(head -c 300 <<<"$res")"
      logcmd 9 python3 bench/cardinality.py --node "$NODE_ADDR" --node-pid "$NODE_PID" --devices "$n" \
        --influx "127.0.0.1:$iport" --influx-pid "$ipid" --json
      bench/baseline/influx.sh stop "$d/influx" >/dev/null 2>&1 || true
      # Restart on the loaded store: exec to the listening line.
      node_stop 9 "$n post" "$d"
      t0=$(date +%s%N)
      start_pulse_node "$d" || { note "scenario 9: the node did not start again on $n devices"; continue; }
      t1=$(date +%s%N)
      logline 9 "# restart: the same command on the same directory, timed from exec to its listening line"
      if jq -e . >/dev/null 2>&1 <<<"$res"; then
        record "{\"s\":9,\"kind\":\"post\",\"devices\":$n,\"run\":$RUN}" \
          "$(jq -c --argjson ms "$(((t1 - t0) / 1000000))" '. + {restart_ms: $ms}' <<<"$res")"
        jq -r '"  \(.devices) devices, POST: Pulse \(.pulse.readings_per_s) readings/s (\(.pulse.cpu_us_per_reading) us/reading, RSS \(.pulse.rss_bytes / 1048576 | floor) MiB), InfluxDB \(.influx.points_per_s) points/s; fleet \(.queries.fleet_all_ms) ms, prefix 10k \(.queries.fleet_prefix_10k_ms) ms; restart \(.restart_ms) ms"' <<<"$(tail -n 1 "$raw")"
      fi
      node_stop 9 "$n restart" "$d"
      rm -rf "$d"
      # WebSocket: 100 connections, Pulse only.
      d=$work/s9/$n-$RUN-ws
      node_start 9 "$d" || continue
      res=$(python3 bench/cardinality.py --node "$NODE_ADDR" --node-pid "$NODE_PID" --devices "$n" --ws \
        --connections 100 --no-queries --json 2>"$work/card.err") ||
        note "scenario 9 ($n devices, WebSocket, run $RUN): $(tail -n 2 "$work/card.err" | tr '\n' '|') $(head -c 300 <<<"$res")"
      logcmd 9 python3 bench/cardinality.py --node "$NODE_ADDR" --node-pid "$NODE_PID" --devices "$n" --ws \
        --connections 100 --no-queries --json
      if jq -e . >/dev/null 2>&1 <<<"$res"; then
        record "{\"s\":9,\"kind\":\"ws\",\"devices\":$n,\"run\":$RUN}" "$res"
        jq -r '"  \(.devices) devices, WebSocket: \(.pulse.readings_per_s) readings/s (\(.pulse.cpu_us_per_reading) us/reading, RSS \(.pulse.rss_bytes / 1048576 | floor) MiB)"' <<<"$res"
      fi
      node_stop 9 "$n ws" "$d"
      rm -rf "$d"
    done
  done
}

# --- main ---------------------------------------------------------------------

t_start=$SECONDS
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
started_at=$(date -u '+%Y-%m-%d %H:%M:%S UTC')
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=$(git status --porcelain --untracked-files=no 2>/dev/null | grep -v ' bench/' | awk '{print $2}' | tr '\n' ' ' || true)
dirty=${dirty% }
cpu_model=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
mem=$(awk '/^MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)
env_over=$(for v in RUNS MEASURE WARMUP SIM_DURATION CORES_MEASURE HOLD_CONNECTIONS HOLD_SECONDS Q_DEVICES Q_SECONDS \
  Q_N Q_CLIENTS Q_CLIENTS_N LONG_INTERVAL_MS FLEET_DEVICES FLEET_SECONDS FLEET_INFLUX BIG_N RECOVERY_N CARD_DEVICES \
  PULSE_BUILD_DIR PULSE_NODE_CONFIG; do
  if printenv "$v" >/dev/null; then printf '%s=%s ' "$v" "${!v}"; fi
done)

say "Pulse benchmark suite: scenarios $only, $runs run(s) each; results go to $out"
say "machine: nproc $(nproc), load average $load_start, kernel $(uname -r)"
[[ -n $stale ]] && say "warning: newer than $ORIG_BUILD/node/pulse-node (the build may be stale): $stale"

status=0
for s in 1 2 3 4 5 6 7 8 9; do
  selected "$s" || continue
  say ""
  say "=== scenario $s ($(date +%T)) ==="
  t0=$SECONDS
  # In a subshell (its failure ends only this scenario; its EXIT trap stops
  # what it started), in the background so that a signal is acted on at once.
  (
    set -e
    trap stop_everything EXIT
    trap 'exit 143' TERM
    trap 'exit 130' INT
    "scenario_$s"
  ) &
  scenario_pid=$!
  rc=0
  wait "$scenario_pid" || rc=$?
  scenario_pid=""
  ((rc == 0)) || { note "scenario $s stopped early (status $rc); its figures may be incomplete"; status=1; }
  echo $((SECONDS - t0)) >"$work/took.$s"
  say ""
  render "$s"
  echo "_Scenario $s took $((SECONDS - t0)) s._" >>"$work/section.$s.md"
done

load_end=$(cut -d' ' -f1-3 /proc/loadavg)
{
  echo "# Pulse benchmarks, $day"
  echo
  echo "Command: \`${env_over}${argv_text}\` (scenarios $only, $runs run(s) each; $((SECONDS - t_start)) s in all)."
  echo
  echo "| machine | |"
  echo "|---|---|"
  echo "| nproc | $(nproc) ($cpu_model) |"
  echo "| memory | $mem |"
  echo "| kernel | $(uname -srm) |"
  echo "| load average at start / end | $load_start / $load_end |"
  echo "| started | $started_at |"
  echo "| commit | $commit${dirty:+ + uncommitted changes in $dirty} |"
  echo "| build | $ORIG_BUILD/node/pulse-node of $build_time${stale:+ (older than: $stale)}; binaries and config copied at the start |"
  echo "| config | $ORIG_CONFIG |"
  echo
  echo "The load generator, the simulator and the baseline run on the same machine as the node,"
  echo "which is shared with other work (see the load average): compare figures within one file."
  echo
  for s in 1 2 3 4 5 6 7 8 9; do
    [[ -f $work/section.$s.md ]] && { cat "$work/section.$s.md"; echo; }
  done
  echo "## Problems seen"
  echo
  if [[ -s $problems ]]; then sed 's/^/- /' "$problems"; else echo "None."; fi
} >"$out"
say ""
say "problems: $(wc -l <"$problems")"
say "results written to $out ($((SECONDS - t_start)) s)"
exit $status
