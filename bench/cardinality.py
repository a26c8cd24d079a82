#!/usr/bin/env python3
"""High-cardinality ingest and queries against a running pulse-node (and,
with --influx, the same load into a running InfluxDB 1.x as line protocol).

  bench/cardinality.py --node 127.0.0.1:PORT --node-pid PID --devices 1000000
                       [--influx 127.0.0.1:PORT --influx-pid PID] [--ws]
                       [--batch 5000] [--writers 2] [--connections 100] [--json]

Load: --devices devices (ids c0000000, c0000001, ...), each sending
--readings readings (default 2) of two metrics (voltage, current), one hour
apart at most, in passes: every device's first reading, then every device's
second, ... (so a device comes back after all the others, as meters that
report on a period do). POST: JSON arrays of --batch readings to
/api/v1/readings from --writers threads, each body acked (200) before that
writer sends the next. --ws instead: --connections WebSocket connections,
each sending array frames of --ws-batch readings of many devices and waiting for
the acks of a frame before the next. InfluxDB gets the same readings as line
protocol (`card,device=ID voltage=..,current=.. TS`, precision ms) in bodies
of --batch points, POST /write?db=pulse, with the same writers. WebSocket frames hold --ws-batch readings (default 1,000); a
frame refused as overloaded (close 1013) is sent again on a new connection.

Everything is generated before the clock starts. Figures: readings/s over the
whole load (first send to last answer), node CPU per reading (utime+stime of
--node-pid over the load), node VmRSS after; then queries against the loaded
node: a fleet aggregate over every device for the hour, the same over a prefix
of 10,000 devices (c000*), /api/v1/devices pages of 1,000 at the start, the
middle and the end of the id list (median of --repeat requests each).
Exit code: 0, 1 when a write failed (a non-2xx answer or a refused frame).
"""
import argparse
import base64
import http.client
import json
import os
import socket
import statistics
import struct
import sys
import threading
import time

START_MS = 1767225600000  # 2026-01-01T00:00:00Z
CLK_TCK = os.sysconf("SC_CLK_TCK")


def device_id(i):
    return "c%07d" % i


def reading_ts(i, k):
    # Within the hour [START_MS, START_MS + 1h): pass k in its own half/third...
    return START_MS + k * 1_200_000 + (i * 7919) % 1_200_000


def value(i, k):
    return 220.0 + ((i * 31 + k * 17) % 1000) / 10.0, ((i * 13 + k) % 500) / 10.0


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        parts = f.read().rsplit(")", 1)[1].split()
    return int(parts[11]) + int(parts[12])  # utime, stime (fields 14, 15)


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def json_bodies(devices, readings, batch):
    bodies, cur, n = [], [], 0
    for k in range(readings):
        for i in range(devices):
            v, c = value(i, k)
            cur.append('{"device":"%s","seq":%d,"ts":%d,"values":{"voltage":%.1f,"current":%.1f}}'
                       % (device_id(i), k + 1, reading_ts(i, k), v, c))
            n += 1
            if len(cur) == batch:
                bodies.append(("[" + ",".join(cur) + "]").encode())
                cur = []
    if cur:
        bodies.append(("[" + ",".join(cur) + "]").encode())
    return bodies, n


def line_bodies(devices, readings, batch):
    bodies, cur = [], []
    for k in range(readings):
        for i in range(devices):
            v, c = value(i, k)
            cur.append("card,device=%s voltage=%.1f,current=%.1f %d"
                       % (device_id(i), v, c, reading_ts(i, k)))
            if len(cur) == batch:
                bodies.append(("\n".join(cur) + "\n").encode())
                cur = []
    if cur:
        bodies.append(("\n".join(cur) + "\n").encode())
    return bodies


class Work:
    """Hands out body indices to several threads and collects their failures."""

    def __init__(self, n):
        self.lock = threading.Lock()
        self.n, self.i = n, 0
        self.failures, self.why, self.shed = 0, "", 0

    def next(self):
        with self.lock:
            i, self.i = self.i, self.i + 1
        return i if i < self.n else None

    def failed(self, why):
        with self.lock:
            self.failures += 1
            self.why = self.why or why

    def run(self, threads, target):
        """Runs `threads` threads of `target`; returns (seconds, failures, first failure)."""
        ts = [threading.Thread(target=target) for _ in range(threads)]
        t0 = time.monotonic()
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        return time.monotonic() - t0, self.failures, self.why


def post_all(host, port, path, bodies, writers, content_type, ok_status):
    """POSTs every body, `writers` threads each on its own keep-alive
    connection; returns (seconds, failures, first failure text)."""
    work = Work(len(bodies))

    def worker():
        conn = http.client.HTTPConnection(host, port, timeout=600)
        while (i := work.next()) is not None:
            for attempt in range(50):
                conn.request("POST", path, bodies[i], {"Content-Type": content_type})
                res = conn.getresponse()
                text = res.read()
                if res.status == 503 and attempt < 49:  # overloaded: back off and resend
                    time.sleep(0.05)
                    continue
                if res.status != ok_status:
                    work.failed(f"{res.status} {text[:300]!r}")
                break
        conn.close()

    return work.run(writers, worker)


# --- a minimal WebSocket client (text frames out, masked; frames in) ----------

class WS:
    def __init__(self, host, port):
        self.s = socket.create_connection((host, port), timeout=600)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        key = base64.b64encode(os.urandom(16)).decode()
        self.s.sendall((f"GET /ws HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                        "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            chunk = self.s.recv(65536)
            if not chunk:
                raise RuntimeError("handshake: connection closed")
            self.buf += chunk
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            raise RuntimeError("handshake refused: " + head.decode(errors="replace"))

    def send_text(self, data):
        n = len(data)
        if n < 126:
            hdr = struct.pack("!BB", 0x81, 0x80 | n)
        elif n < 65536:
            hdr = struct.pack("!BBH", 0x81, 0x80 | 126, n)
        else:
            hdr = struct.pack("!BBQ", 0x81, 0x80 | 127, n)
        # A zero mask key: the payload goes out as it is (RFC 6455 allows any key).
        self.s.sendall(hdr + b"\0\0\0\0" + data)

    def recv_frames(self):
        """Blocks for more bytes; yields complete text payloads."""
        chunk = self.s.recv(1 << 20)
        if not chunk:
            raise RuntimeError("connection closed by the node")
        self.buf += chunk
        out = []
        while len(self.buf) >= 2:
            b0, b1 = self.buf[0], self.buf[1]
            n, off = b1 & 0x7F, 2
            if n == 126:
                if len(self.buf) < 4:
                    break
                n, off = struct.unpack("!H", self.buf[2:4])[0], 4
            elif n == 127:
                if len(self.buf) < 10:
                    break
                n, off = struct.unpack("!Q", self.buf[2:10])[0], 10
            if len(self.buf) < off + n:
                break
            payload, self.buf = self.buf[off:off + n], self.buf[off + n:]
            op = b0 & 0x0F
            if op == 8:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                raise RuntimeError(f"closed by the node with {code}: {payload[2:]!r}")
            if op == 1:
                out.append(payload)
        return out


def ws_all(host, port, bodies, connections):
    """Each connection takes the next frame, sends it and waits until every
    device of it is acked (acks are cumulative per device: one per device)."""
    work = Work(len(bodies))

    def worker():
        try:
            ws = WS(host, port)
        except Exception as e:  # noqa: BLE001
            work.failed(str(e))
            return
        while (i := work.next()) is not None:
            body, devices = bodies[i]
            # `overloaded` (a shard over batch.max-pending) closes the
            # connection with 1013, as the protocol says: reconnect after a
            # pause and send the frame again (seqs make the resend exact).
            for attempt in range(100):
                try:
                    ws.send_text(body)
                    waiting = devices
                    while waiting > 0:
                        for p in ws.recv_frames():
                            if p.startswith(b'{"ack"'):
                                waiting -= 1
                            elif p.startswith(b'{"error"'):
                                raise RuntimeError(p[:300].decode(errors="replace"))
                    break
                except Exception as e:  # noqa: BLE001
                    if "overloaded" in str(e) and attempt < 99:
                        with work.lock:
                            work.shed += 1
                        try:
                            ws.s.close()
                        except OSError:
                            pass
                        time.sleep(0.2)
                        ws = WS(host, port)
                        continue
                    work.failed(str(e))
                    return
        ws.s.close()

    result = work.run(connections, worker)
    ws_all.shed = work.shed
    return result


def get_ms(conn, path, repeat):
    times, body = [], b""
    for _ in range(repeat):
        t0 = time.monotonic()
        conn.request("GET", path)
        res = conn.getresponse()
        body = res.read()
        times.append((time.monotonic() - t0) * 1000)
        if res.status != 200:
            raise RuntimeError(f"GET {path}: {res.status} {body[:300]!r}")
    return statistics.median(times), json.loads(body)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--node", required=True)
    ap.add_argument("--node-pid", type=int, required=True)
    ap.add_argument("--influx")
    ap.add_argument("--influx-pid", type=int)
    ap.add_argument("--devices", type=int, default=100000)
    ap.add_argument("--readings", type=int, default=2)
    ap.add_argument("--batch", type=int, default=5000)
    ap.add_argument("--writers", type=int, default=2)
    ap.add_argument("--ws", action="store_true")
    ap.add_argument("--connections", type=int, default=100)
    ap.add_argument("--ws-batch", type=int, default=1000,
                    help="readings per WebSocket frame (100 connections x 1,000 stay under "
                         "the default batch.max-pending of 2 shards)")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--no-queries", action="store_true")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    host, port = a.node.rsplit(":", 1)
    port = int(port)
    out = {"devices": a.devices, "readings_per_device": a.readings, "batch": a.batch,
           "mode": "ws" if a.ws else "post",
           "writers": a.connections if a.ws else a.writers}

    bodies, n = json_bodies(a.devices, a.readings, a.ws_batch if a.ws else a.batch)
    out["readings"] = n
    # The node's RSS every 2 s during the load (memory must stay bounded by
    # the configured budgets however many devices come).
    samples, sampling = [], threading.Event()

    def sample_rss():
        t0 = time.monotonic()
        while not sampling.wait(2.0):
            samples.append([round(time.monotonic() - t0, 1), rss_bytes(a.node_pid)])

    sampler = threading.Thread(target=sample_rss, daemon=True)
    sampler.start()
    cpu0 = cpu_ticks(a.node_pid)
    if a.ws:
        # A frame holds each of its devices once: one ack per reading.
        frames = [(body, body.count(b'"device"')) for body in bodies]
        secs, fail, why = ws_all(host, port, frames, a.connections)
    else:
        secs, fail, why = post_all(host, port, "/api/v1/readings", bodies, a.writers,
                                   "application/json", 200)
    cpu1 = cpu_ticks(a.node_pid)
    sampling.set()
    sampler.join()
    out["pulse"] = {"seconds": round(secs, 3), "readings_per_s": round(n / secs),
                    "cpu_us_per_reading": round((cpu1 - cpu0) / CLK_TCK * 1e6 / n, 2),
                    "rss_bytes": rss_bytes(a.node_pid), "failures": fail,
                    "rss_samples": samples}
    if why:
        out["pulse"]["first_failure"] = why
    if a.ws:
        out["pulse"]["overloaded_resends"] = ws_all.shed
    del bodies

    if a.influx:
        ihost, iport = a.influx.rsplit(":", 1)
        lbodies = line_bodies(a.devices, a.readings, a.batch)
        c0 = cpu_ticks(a.influx_pid) if a.influx_pid else 0
        secs_i, fail_i, why_i = post_all(ihost, int(iport), "/write?db=pulse&precision=ms",
                                         lbodies, a.writers, "text/plain", 204)
        c1 = cpu_ticks(a.influx_pid) if a.influx_pid else 0
        out["influx"] = {"seconds": round(secs_i, 3), "points_per_s": round(n / secs_i),
                         "failures": fail_i}
        if a.influx_pid:
            out["influx"]["cpu_us_per_point"] = round((c1 - c0) / CLK_TCK * 1e6 / n, 2)
            out["influx"]["rss_bytes"] = rss_bytes(a.influx_pid)
        if why_i:
            out["influx"]["first_failure"] = why_i
        out["ratio"] = round(out["pulse"]["readings_per_s"] / out["influx"]["points_per_s"], 2)
        del lbodies

    if not a.no_queries:
        conn = http.client.HTTPConnection(host, port, timeout=600)
        q = {}
        frm, to = START_MS, START_MS + 3_600_000
        ms, j = get_ms(conn, f"/api/v1/aggregate?metric=voltage&from={frm}&to={to}&step=1h&fn=count,avg",
                       a.repeat)
        q["fleet_all_ms"] = round(ms, 2)
        q["fleet_all_count"] = j["buckets"][0]["count"] if j.get("buckets") else 0
        ms, j = get_ms(conn, f"/api/v1/aggregate?metric=voltage&from={frm}&to={to}&step=1h"
                             f"&fn=count,avg&prefix=c000", a.repeat * 4)
        q["fleet_prefix_10k_ms"] = round(ms, 2)
        q["fleet_prefix_10k_count"] = j["buckets"][0]["count"] if j.get("buckets") else 0
        # Pages of 1,000 at the start, the middle and the end of the id list
        # (the cursor is the last id of the previous page).
        pages = {}
        for name, cursor in (("start", ""), ("middle", device_id(a.devices // 2)),
                             ("end", device_id(max(0, a.devices - 1001)))):
            ms, j = get_ms(conn, f"/api/v1/devices?limit=1000&cursor={cursor}", a.repeat * 4)
            pages[name] = {"ms": round(ms, 2), "devices": len(j["devices"])}
        q["device_pages"] = pages
        out["queries"] = q

    if a.json:
        print(json.dumps(out))
    else:
        print(json.dumps(out, indent=2))
    return 1 if out["pulse"]["failures"] or (a.influx and out["influx"]["failures"]) else 0


if __name__ == "__main__":
    sys.exit(main())
