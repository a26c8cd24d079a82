# shellcheck shell=bash disable=SC2034  # LISTEN_* and NODE_* are for the caller
# bench/lib.sh: helpers shared by the benchmark scripts (bench/run.sh,
# bench/baseline/query-compare.sh, bench/baseline/smoke.sh). Source it:
#   source "$(dirname "$0")/lib.sh"        (or ../lib.sh from bench/baseline)
#
#   free_port                     prints a free loopback TCP port
#   start_listening NAME REGEX OUT ERR TIMEOUT_S CMD [ARG...]
#                                 starts CMD in the background (stdout to OUT,
#                                 stderr to ERR) and waits until a line of OUT
#                                 matches the sed regex REGEX, whose one group
#                                 is HOST:PORT. Sets LISTEN_PID, LISTEN_ADDR
#                                 (HOST:PORT) and LISTEN_PORT. Returns 1 (after
#                                 printing the end of ERR) if CMD exited first
#                                 or TIMEOUT_S passed (then CMD is killed).
#   start_pulse_node DIR [ARG...] a fresh pulse-node ($PULSE_NODE_CONFIG,
#                                 default configs/pulse-node.ini; --net.port=0, storage in DIR/db, log level
#                                 warn, then ARGs) via start_listening; output
#                                 in DIR/node.out and DIR/node.err. Sets
#                                 NODE_PID, NODE_ADDR, NODE_PORT and NODE_CMD
#                                 (the command line, quoted). NODE_WRAP
#                                 (an array, e.g. (taskset -c 0)) prefixes the
#                                 command. Run from the repository root.
#   stop_proc PID [TIMEOUT_S]     SIGTERM, waits (default 20 s), then SIGKILL
#                                 (and returns 124); otherwise returns the exit
#                                 status when PID is a child
#   stop_all                      stop_proc for every process started here
#                                 and not stopped yet (for an EXIT trap)
# Every process started by start_listening is remembered in LIB_PIDS until
# stop_proc stops it (so that a pid the system has since reused for another
# process is never signalled).

LIB_PIDS=()
PULSE_BUILD_DIR=${PULSE_BUILD_DIR:-build}
PULSE_NODE_CONFIG=${PULSE_NODE_CONFIG:-configs/pulse-node.ini}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

_lib_forget() {
  local keep=() p
  for p in ${LIB_PIDS[@]+"${LIB_PIDS[@]}"}; do [[ $p == "$1" ]] || keep+=("$p"); done
  LIB_PIDS=(${keep[@]+"${keep[@]}"})
}

start_listening() {
  local name=$1 regex=$2 out=$3 err=$4 timeout_s=$5
  shift 5
  : >"$out"  # an old start-up line must not be taken for this one
  "$@" >"$out" 2>"$err" </dev/null &
  LISTEN_PID=$!
  LIB_PIDS+=("$LISTEN_PID")
  LISTEN_ADDR=""
  LISTEN_PORT=""
  local deadline=$((SECONDS + timeout_s))
  while :; do
    LISTEN_ADDR=$(sed -n "s/$regex/\1/p" "$out" | head -n 1)
    if [[ -n $LISTEN_ADDR ]]; then
      LISTEN_PORT=${LISTEN_ADDR##*:}
      return 0
    fi
    if ! kill -0 "$LISTEN_PID" 2>/dev/null; then
      local rc=0
      wait "$LISTEN_PID" 2>/dev/null || rc=$?
      _lib_forget "$LISTEN_PID"
      echo "$name exited during start-up (status $rc); the end of $err:" >&2
      tail -n 20 "$err" >&2
      return 1
    fi
    if ((SECONDS >= deadline)); then
      echo "$name did not print its listening line within $timeout_s s; the end of $err:" >&2
      tail -n 20 "$err" >&2
      kill -KILL "$LISTEN_PID" 2>/dev/null || true
      wait "$LISTEN_PID" 2>/dev/null || true
      _lib_forget "$LISTEN_PID"
      return 1
    fi
    sleep 0.02
  done
}

start_pulse_node() {
  local dir=$1
  shift
  mkdir -p "$dir"
  local bin=$PULSE_BUILD_DIR/node/pulse-node
  [[ -x $bin ]] || { echo "$bin not built" >&2; return 1; }
  local cmd=(${NODE_WRAP[@]+"${NODE_WRAP[@]}"} "$bin" --config-file="$PULSE_NODE_CONFIG" --net.port=0
    --storage.path="$dir/db" --log.level=warn "$@")
  NODE_CMD=$(printf '%q ' "${cmd[@]}")
  NODE_CMD=${NODE_CMD% }
  NODE_CMD=${NODE_CMD//\\,/,}  # printf %q escapes commas, which need no quoting here
  start_listening pulse-node '^pulse-node .* listening on \(.*:[0-9]*\)$' "$dir/node.out" "$dir/node.err" 60 \
    "${cmd[@]}" || return 1
  NODE_PID=$LISTEN_PID
  NODE_ADDR=$LISTEN_ADDR
  NODE_PORT=$LISTEN_PORT
}

# "STATE STARTTIME" of PID from /proc/PID/stat, or nothing once it is gone
# (bash may reap an exited child at any fork, so a pid that answered kill -0
# a moment ago can be gone by the time /proc is read).
_lib_proc() {
  sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | awk '{print $1, $20}' || true
}

stop_proc() {
  local pid=$1 timeout_s=${2:-20} rc=0 p0 p st
  [[ -n $pid ]] || return 0
  p0=$(_lib_proc "$pid")
  if [[ -n $p0 ]]; then
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + timeout_s))
    while p=$(_lib_proc "$pid"); [[ -n $p && ${p%% *} != Z ]] && ((SECONDS < deadline)); do
      sleep 0.05
    done
    p=$(_lib_proc "$pid")
    st=${p%% *}
    # Still running, and the same process (same start time), after the timeout.
    if [[ -n $p && $st != Z && ${p#* } == "${p0#* }" ]]; then
      local threads="" t
      for t in /proc/"$pid"/task/*; do  # what its threads were doing (state:wchan)
        threads+=" $(sed 's/.*) //' "$t/stat" 2>/dev/null | awk '{print $1}'):$(cat "$t/wchan" 2>/dev/null)"
      done
      echo "process $pid ($(cat "/proc/$pid/comm" 2>/dev/null)) still up $timeout_s s after SIGTERM, threads (state:wchan):$threads; killing it" >&2
      kill -KILL "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
      _lib_forget "$pid"
      return 124
    fi
  fi
  wait "$pid" 2>/dev/null || rc=$?
  _lib_forget "$pid"
  return $rc
}

stop_all() {
  local pid
  for pid in ${LIB_PIDS[@]+"${LIB_PIDS[@]}"}; do
    stop_proc "$pid" 10 || true
  done
  return 0
}
