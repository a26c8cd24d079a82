#!/usr/bin/env python3
"""Query benchmark: Pulse's aggregate API against InfluxDB 1.x on the same data.

Python 3 standard library only.

  load-influx --port P --devices N --seconds S [--start-ms T] [--interval-ms I] [--prefix q-]
      writes N devices x S one-second readings to InfluxDB (database "pulse",
      measurement "readings", tag "device", fields voltage/current/power/seq)
      in line-protocol batches of 5,000; devices are PREFIX0..PREFIX(N-1);
      with --interval-ms the S readings are I ms apart instead of 1 s
  ndjson --devices N --seconds S [--start-ms T] [--interval-ms I] [--prefix q-]
      prints the same readings as Pulse NDJSON (POST /api/v1/readings)
  load-pulse --url http://127.0.0.1:PORT --devices N --seconds S [...] [--body-lines 50000]
      POSTs them to Pulse in NDJSON bodies of 50,000 lines
  (load-*: --parallel K loads over K connections at once, device d on
  connection d mod K; --first F starts every device at reading F, seq F+1,
  to extend an earlier load of F readings per device)
  time --target pulse|influx --port P --query NAME [--n 200] [--clients C]
      checks NAME's answer once (200, not empty; prints the bucket count on
      stderr), then runs it N times over keep-alive connections from C client
      threads and prints p50/p90/p99 (ms) as one JSON line
  compare --pulse-port P --influx-port Q [--query NAME|all]
      runs each query once on both and checks that they agree: same buckets
      (start times), counts equal, sums and averages within 1e-9 relative

Queries (device q-0, or --device; windows start at --start-ms, which must be the same as
for the load; the default is 2026-01-01T00:00:00Z, a day boundary):
  device_1h_1m   one device, 1 hour, step 1m, avg
  device_1d_1h   one device, 1 day, step 1h, avg
  device_1d_raw  one device, 1 day, step 1d, count,sum,avg
  device_30d_1h  one device, 30 days, step 1h, avg
  fleet_1h_1m    all devices, 1 hour, step 1m, avg over every reading
  fleet_1h_1h    all devices, 1 hour, step 1h (one bucket), avg over every reading

InfluxDB queries use fill(none), so that buckets without data are left out
as Pulse leaves them out; both align buckets to multiples of the step since
the epoch.
"""

import argparse
import http.client
import json
import math
import sys
import threading
import time
import urllib.parse

DEFAULT_START_MS = 1767225600000  # 2026-01-01T00:00:00Z
MINUTE = 60_000
HOUR = 60 * MINUTE
DAY = 24 * HOUR
INFLUX_BATCH = 5_000
PULSE_BODY_LINES = 50_000
HTTP_TIMEOUT = 120


# --- data -------------------------------------------------------------------

def device_id(d, prefix="q-"):
    return f"{prefix}{d}"


def reading_values(d, i):
    """Deterministic values of device d at reading i."""
    voltage = 230 + (i % 7) * 0.1 + (d % 5) * 0.01
    current = 5 + (i % 11) * 0.05 + (d % 3) * 0.1
    power = round(voltage * current, 3)
    return voltage, current, power


# The values depend on i only through i % 77 (i % 7 and i % 11) and on d only
# through d % 15 (d % 5 and d % 3): the formatted values are computed once per
# (i % 77, d % 15), so generating a line is a few string concatenations
# (~10 M lines in seconds rather than a minute). repr() is the shortest text
# that reads back as the same double, so InfluxDB and Pulse parse exactly the
# same values.
def _value_table(fmt):
    return [[fmt(*reading_values(d, i)) for d in range(15)] for i in range(77)]


def _ndjson_values(v, c, p):
    return f'"values":{{"voltage":{v!r},"current":{c!r},"power":{p!r}}}}}\n'


def _line_values(v, c, p):
    return f" voltage={v!r},current={c!r},power={p!r},seq="


def line_batches(kind, a, size, devices=None):
    """Lists of at most `size` lines (NDJSON for Pulse or line protocol for
    InfluxDB) of a.devices devices (or the device numbers in `devices`) x
    a.seconds readings, a.interval_ms apart from a.start_ms, reading by
    reading (every device's i-th reading, then every device's (i+1)-th), so
    every device's seqs ascend in every body and from one body to the next.
    Reading i of device d has seq i + 1; i runs from a.first."""
    ndjson = kind == "ndjson"
    table = _value_table(_ndjson_values if ndjson else _line_values)
    if devices is None:
        devices = range(a.devices)
    ids = [device_id(d, a.prefix) for d in devices]
    if ndjson:
        heads = [f'{{"device":"{dev}","seq":' for dev in ids]
    else:
        heads = [f"readings,device={dev}" for dev in ids]
    mods = [d % 15 for d in devices]
    buf = []
    for i in range(a.first, a.first + a.seconds):
        ts = a.start_ms + i * a.interval_ms
        row = table[i % 77]
        if ndjson:
            mid = f'{i + 1},"ts":{ts},'
            buf.extend([h + mid + row[m] for h, m in zip(heads, mods)])
        else:
            tail = f"{i + 1}i {ts}\n"
            buf.extend([h + row[m] + tail for h, m in zip(heads, mods)])
        while len(buf) >= size:
            yield buf[:size]
            del buf[:size]
    if buf:
        yield buf


# --- HTTP -------------------------------------------------------------------

def split_url(url):
    u = urllib.parse.urlsplit(url)
    if u.scheme != "http" or not u.hostname:
        sys.exit(f"query_bench: expected http://HOST:PORT, got {url}")
    return u.hostname, u.port or 80


def request(conn, method, path, body=None, headers=None):
    conn.request(method, path, body=body, headers=headers or {})
    resp = conn.getresponse()
    return resp.status, resp.read()


def parallel_load(a, target, send):
    """Runs send(conn, devices) on a.parallel threads, each with its own
    keep-alive connection and every a.parallel-th device (so each device's
    readings still go out in seq order on one connection); send returns the
    readings it loaded or raises. Prints the load rate as one JSON line."""
    k = max(1, min(a.parallel, a.devices))
    totals = [0] * k
    failures = []

    def worker(j):
        conn = http.client.HTTPConnection(a.host, a.port, timeout=HTTP_TIMEOUT)
        try:
            totals[j] = send(conn, range(j, a.devices, k))
        except Exception as e:  # noqa: BLE001 - reported below, the run fails
            failures.append(str(e))
        finally:
            conn.close()

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(j,), daemon=True) for j in range(k)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    dt = time.perf_counter() - t0
    if failures:
        sys.exit(f"query_bench: {failures[0]}")
    total = sum(totals)
    print(json.dumps({"target": target, "loaded": total, "seconds": round(dt, 3),
                      "readings_per_s": round(total / dt)}))


def cmd_load_influx(a):
    path = "/write?" + urllib.parse.urlencode({"db": a.db, "precision": "ms"})

    def send(conn, devices):
        total = 0
        for batch in line_batches("line", a, INFLUX_BATCH, devices):
            status, body = request(conn, "POST", path, "".join(batch).encode(),
                                   {"Content-Type": "text/plain; charset=utf-8"})
            if status != 204:
                raise RuntimeError(f"InfluxDB write answered {status}: {body[:300]!r}")
            total += len(batch)
        return total

    parallel_load(a, "influx", send)


def cmd_ndjson(a):
    out = sys.stdout
    for body in line_batches("ndjson", a, 10_000):
        out.write("".join(body))


def cmd_load_pulse(a):
    a.host, a.port = split_url(a.url)

    def send(conn, devices):
        total = 0
        for body in line_batches("ndjson", a, a.body_lines, devices):
            status, answer = request(conn, "POST", "/api/v1/readings", "".join(body).encode(),
                                     {"Content-Type": "application/x-ndjson"})
            if status != 200:
                raise RuntimeError(f"Pulse POST /api/v1/readings answered {status}: {answer[:300]!r}")
            accepted = json.loads(answer).get("accepted")
            if accepted != len(body):
                raise RuntimeError(f"Pulse accepted {accepted} of {len(body)} readings")
            total += len(body)
        return total

    parallel_load(a, "pulse", send)


# --- queries ----------------------------------------------------------------

# name -> (device or None for the fleet, window length, step, Pulse fns, InfluxDB select)
QUERIES = {
    "device_1h_1m": ("q-0", HOUR, "1m", "avg", "mean(voltage)"),
    "device_1d_1h": ("q-0", DAY, "1h", "avg", "mean(voltage)"),
    "device_1d_raw": ("q-0", DAY, "1d", "count,sum,avg", "count(voltage),sum(voltage),mean(voltage)"),
    "device_30d_1h": ("q-0", 30 * DAY, "1h", "avg", "mean(voltage)"),
    "fleet_1h_1m": (None, HOUR, "1m", "avg", "mean(voltage)"),
    "fleet_1h_1h": (None, HOUR, "1h", "avg", "mean(voltage)"),
}
# InfluxDB's column names for Pulse's fns
INFLUX_COLUMN = {"count": "count", "sum": "sum", "avg": "mean"}


def query_path(target, name, start_ms, db="pulse", device=None):
    dev, length, step, fns, select = QUERIES[name]
    if dev is not None and device is not None:
        dev = device
    lo, hi = start_ms, start_ms + length
    if target == "pulse":
        q = urllib.parse.urlencode({"metric": "voltage", "from": lo, "to": hi, "step": step, "fn": fns})
        if dev is None:
            return "/api/v1/aggregate?" + q
        return f"/api/v1/devices/{urllib.parse.quote(dev, safe='')}/aggregate?" + q
    where = f"time >= {lo}ms AND time < {hi}ms"
    if dev is not None:
        where = f"device = '{dev}' AND " + where
    influxql = f"SELECT {select} FROM readings WHERE {where} GROUP BY time({step}) fill(none)"
    return "/query?" + urllib.parse.urlencode({"db": db, "epoch": "ms", "q": influxql})


def parse_answer(target, name, status, body):
    """The answer as [(t, {fn: value})], or raises ValueError."""
    if status != 200:
        raise ValueError(f"HTTP {status}: {body[:300]!r}")
    j = json.loads(body)
    fns = QUERIES[name][3].split(",")
    out = []
    if target == "pulse":
        for b in j["buckets"]:
            out.append((b["t"], {f: b[f] for f in fns}))
        return out
    res = j["results"][0]
    if "error" in res:
        raise ValueError("InfluxDB: " + res["error"])
    for series in res.get("series", []):
        cols = series["columns"]
        for row in series["values"]:
            rec = dict(zip(cols, row))
            out.append((rec["time"], {f: rec[INFLUX_COLUMN[f]] for f in fns}))
    out.sort(key=lambda b: b[0])
    return out


def fetch(target, host, port, name, start_ms, db, device):
    conn = http.client.HTTPConnection(host, port, timeout=HTTP_TIMEOUT)
    try:
        status, body = request(conn, "GET", query_path(target, name, start_ms, db, device))
    finally:
        conn.close()
    return parse_answer(target, name, status, body)


def percentile(sorted_values, p):
    """Nearest-rank percentile."""
    k = max(0, math.ceil(p / 100 * len(sorted_values)) - 1)
    return sorted_values[k]


def cmd_time(a):
    try:
        buckets = fetch(a.target, a.host, a.port, a.query, a.start_ms, a.db, a.device)
    except Exception as e:  # noqa: BLE001 - any failure ends the run with its reason
        sys.exit(f"query_bench: {a.target} {a.query}: {e}")
    if not buckets:
        sys.exit(f"query_bench: {a.target} {a.query}: the answer has no buckets (was the data loaded "
                 f"with the same --start-ms?)")
    print(f"{a.target} {a.query}: {len(buckets)} buckets", file=sys.stderr)

    path = query_path(a.target, a.query, a.start_ms, a.db, a.device)
    clients = max(1, min(a.clients, a.n))
    shares = [a.n // clients + (1 if i < a.n % clients else 0) for i in range(clients)]
    latencies = []
    errors = []
    lock = threading.Lock()
    start = threading.Barrier(clients + 1)

    def worker(count):
        conn = http.client.HTTPConnection(a.host, a.port, timeout=HTTP_TIMEOUT)
        conn.connect()
        mine = []
        start.wait()
        for _ in range(count):
            t0 = time.perf_counter()
            try:
                conn.request("GET", path)
                resp = conn.getresponse()
                body = resp.read()
                status = resp.status
            except (OSError, http.client.HTTPException) as e:
                status, body = None, str(e).encode()
                conn.close()
                conn = http.client.HTTPConnection(a.host, a.port, timeout=HTTP_TIMEOUT)
            dt = (time.perf_counter() - t0) * 1000
            if status == 200 and body:
                mine.append(dt)
            else:
                with lock:
                    errors.append(f"{status}: {body[:200]!r}")
        conn.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker, args=(s,), daemon=True) for s in shares]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    if errors:
        print(f"query_bench: {len(errors)} of {a.n} requests failed, e.g. {errors[0]}", file=sys.stderr)
    if not latencies:
        sys.exit(1)
    latencies.sort()
    print(json.dumps({
        "target": a.target, "query": a.query, "n": a.n, "clients": clients, "buckets": len(buckets),
        "p50_ms": round(percentile(latencies, 50), 3), "p90_ms": round(percentile(latencies, 90), 3),
        "p99_ms": round(percentile(latencies, 99), 3), "max_ms": round(latencies[-1], 3),
        "queries_per_s": round(len(latencies) / wall, 1), "errors": len(errors),
    }))
    if errors:
        sys.exit(1)


def close_enough(x, y, rel=1e-9):
    if x is None or y is None:
        return x is y
    return x == y or abs(x - y) <= rel * max(abs(x), abs(y))


def cmd_compare(a):
    names = list(QUERIES) if a.query == "all" else [a.query]
    bad = 0
    for name in names:
        try:
            p = fetch("pulse", a.host, a.pulse_port, name, a.start_ms, a.db, a.device)
            i = fetch("influx", a.host, a.influx_port, name, a.start_ms, a.db, a.device)
        except Exception as e:  # noqa: BLE001
            print(json.dumps({"query": name, "ok": False, "error": str(e)}))
            bad += 1
            continue
        problems = []
        if len(p) != len(i):
            problems.append(f"bucket count: pulse {len(p)}, influx {len(i)}")
        max_rel = 0.0
        for (pt, pv), (it, iv) in zip(p, i):
            if pt != it:
                problems.append(f"bucket start: pulse {pt}, influx {it}")
                break
            for f, x in pv.items():
                y = iv[f]
                if x is not None and y is not None and max(abs(x), abs(y)) > 0:
                    max_rel = max(max_rel, abs(x - y) / max(abs(x), abs(y)))
                if not close_enough(x, y):
                    problems.append(f"t={pt} {f}: pulse {x!r}, influx {y!r}")
            if len(problems) > 5:
                break
        if not p:
            problems.append("no buckets")
        print(json.dumps({"query": name, "ok": not problems, "buckets": len(p),
                          "max_rel_diff": max_rel, "problems": problems[:6]}))
        bad += bool(problems)
    sys.exit(1 if bad else 0)


# --- command line -----------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 epilog=__doc__.split("\n", 2)[2],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)

    def data_args(p):
        p.add_argument("--devices", type=int, required=True)
        p.add_argument("--seconds", type=int, required=True)
        p.add_argument("--start-ms", type=int, default=DEFAULT_START_MS)
        p.add_argument("--interval-ms", type=int, default=1000,
                       help="time between a device's readings (default 1000: --seconds is then seconds)")
        p.add_argument("--prefix", default="q-", help="device ids are PREFIX0, PREFIX1, ... (default q-)")
        p.add_argument("--first", type=int, default=0,
                       help="start at reading FIRST of each device (seq FIRST+1), to extend a load")

    p = sub.add_parser("load-influx", help="write the readings to InfluxDB")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--db", default="pulse")
    p.add_argument("--parallel", type=int, default=1, help="connections (device subsets) at once")
    data_args(p)
    p.set_defaults(func=cmd_load_influx)

    p = sub.add_parser("ndjson", help="print the readings as Pulse NDJSON")
    data_args(p)
    p.set_defaults(func=cmd_ndjson)

    p = sub.add_parser("load-pulse", help="POST the readings to Pulse")
    p.add_argument("--url", required=True)
    p.add_argument("--body-lines", type=int, default=PULSE_BODY_LINES)
    p.add_argument("--parallel", type=int, default=1, help="connections (device subsets) at once")
    data_args(p)
    p.set_defaults(func=cmd_load_pulse)

    p = sub.add_parser("time", help="time one query")
    p.add_argument("--target", choices=("pulse", "influx"), required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--query", choices=sorted(QUERIES), required=True)
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--clients", type=int, default=1)
    p.add_argument("--start-ms", type=int, default=DEFAULT_START_MS)
    p.add_argument("--device", default=None, help="device of the device_* queries (default q-0)")
    p.add_argument("--db", default="pulse")
    p.set_defaults(func=cmd_time)

    p = sub.add_parser("compare", help="check that Pulse and InfluxDB answer alike")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--pulse-port", type=int, required=True)
    p.add_argument("--influx-port", type=int, required=True)
    p.add_argument("--query", choices=sorted(QUERIES) + ["all"], default="all")
    p.add_argument("--start-ms", type=int, default=DEFAULT_START_MS)
    p.add_argument("--device", default=None)
    p.add_argument("--db", default="pulse")
    p.set_defaults(func=cmd_compare)

    a = ap.parse_args()
    if getattr(a, "n", 1) < 1:
        ap.error("--n must be at least 1")
    a.func(a)


if __name__ == "__main__":
    try:
        main()
    except BrokenPipeError:  # ndjson | head
        sys.exit(0)
