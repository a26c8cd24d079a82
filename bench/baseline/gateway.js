#!/usr/bin/env node
'use strict';
// The benchmarks' comparison stack, "Node.js ws gateway + InfluxDB": a
// WebSocket server on /ws that speaks Pulse's wire protocol (readings, batch
// frames, arrays of readings, hello/welcome), writes the readings to InfluxDB
// 1.x as line protocol and acknowledges them only once InfluxDB has taken
// them (204), with the same cumulative acks as Pulse.
//
// Readings of all connections go into one buffer, written as one
// POST /write?db=pulse&precision=ms when it holds --batch lines or --flush-ms
// after its first line, whichever comes first, over a keep-alive agent with
// at most --max-inflight writes in flight. Writes complete in order (acks are
// cumulative, so a later write's acks wait for the earlier ones); then every
// connection gets one ack per device per write. A failed write answers
// `overloaded` to the connections it held readings of and closes them with
// 1013 (the client resumes from the welcome's last_seq, as with Pulse).
// Back-pressure as in Pulse: a connection with --max-unacked readings in
// flight is not read until acks bring it under half, all connections stop
// being read while over half of --max-pending readings wait for a write, and
// a frame that would take the waiting readings past --max-pending is refused
// with `overloaded` + 1013.
//
//   node gateway.js --port 8090 --influx http://127.0.0.1:8086 [--db pulse]
// Prints `gateway listening on 127.0.0.1:PORT` (--port 0: a free port) on
// stdout; SIGINT/SIGTERM: stops accepting, writes what it holds, acks it,
// closes the connections with 1001 and exits 0.

const http = require('http');
const { WebSocketServer } = require('ws');

// --- options -----------------------------------------------------------------

const defaults = {
  host: '127.0.0.1',
  port: 8090,
  influx: 'http://127.0.0.1:8086',
  db: 'pulse',
  batch: 5000, // lines per write at most
  'flush-ms': 5, // a line waits at most this long for a write to start (when a write slot is free)
  'max-inflight': 4, // writes in flight to InfluxDB
  'max-unacked': 10000, // readings in flight per connection before it is not read
  'max-pending': 200000, // readings waiting for a write, at most
  'max-frame-bytes': 1048576,
  stats: 0, // seconds between stats lines on stderr (0 = none)
};

function parseArgs(argv) {
  const o = { ...defaults };
  for (let i = 0; i < argv.length; i++) {
    const m = /^--([a-z-]+)(?:=(.*))?$/.exec(argv[i]);
    if (!m || !(m[1] in defaults)) {
      if (argv[i] === '--help' || argv[i] === '-h') {
        console.log('usage: gateway.js ' + Object.entries(defaults).map(([k, v]) => `[--${k}=${v}]`).join(' '));
        process.exit(0);
      }
      console.error(`gateway: unknown argument ${argv[i]}`);
      process.exit(2);
    }
    const value = m[2] !== undefined ? m[2] : argv[++i];
    if (value === undefined) {
      console.error(`gateway: --${m[1]} needs a value`);
      process.exit(2);
    }
    if (typeof defaults[m[1]] === 'number') {
      const n = Number(value);
      if (!Number.isFinite(n) || n < 0) {
        console.error(`gateway: --${m[1]}: not a number: ${value}`);
        process.exit(2);
      }
      o[m[1]] = n;
    } else {
      o[m[1]] = value;
    }
  }
  if (o.batch < 1 || o['max-inflight'] < 1 || o['max-unacked'] < 1 || o['max-pending'] < 1) {
    console.error('gateway: --batch, --max-inflight, --max-unacked and --max-pending must be at least 1');
    process.exit(2);
  }
  return o;
}

const opt = parseArgs(process.argv.slice(2));
const influx = new URL(opt.influx);
if (influx.protocol !== 'http:') {
  console.error(`gateway: --influx must be an http:// URL, got ${opt.influx}`);
  process.exit(2);
}
const agent = new http.Agent({ keepAlive: true, maxSockets: opt['max-inflight'] });
const writePath = `/write?db=${encodeURIComponent(opt.db)}&precision=ms`;

// --- validation (Pulse's data model) -------------------------------------------

const DEVICE_RE = /^[A-Za-z0-9:._-]{1,128}$/;
const METRIC_RE = /^[A-Za-z0-9_.]{1,64}$/;
const MAX_TS = 253402300800000;

class ReadingError extends Error {}

function readTs(ts) {
  if (ts === undefined || ts === null) return Date.now();
  if (typeof ts === 'number') {
    if (!Number.isInteger(ts) || ts < 0 || ts > MAX_TS) throw new ReadingError('ts is not a time in ms since the epoch');
    return ts;
  }
  if (typeof ts === 'string') {
    const t = Date.parse(ts);
    if (Number.isNaN(t) || t < 0 || t > MAX_TS) throw new ReadingError(`ts '${ts}' is not RFC 3339`);
    return t;
  }
  throw new ReadingError('ts is neither a number nor a string');
}

// The line-protocol fields of a reading's values. Device ids and metric
// names are restricted to characters that line protocol takes unescaped.
function fieldsOf(values) {
  if (values === null || typeof values !== 'object' || Array.isArray(values)) {
    throw new ReadingError('values is not an object');
  }
  let fields = '';
  let n = 0;
  for (const name in values) {
    const v = values[name];
    if (!METRIC_RE.test(name)) throw new ReadingError(`metric name '${name.slice(0, 80)}' is not valid`);
    if (name === 'seq') throw new ReadingError("metric name 'seq' is taken by the gateway's seq field");
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new ReadingError(`values.${name} is not a number`);
    if (++n > 64) throw new ReadingError('more than 64 values');
    // Numbers without 'i' are floats in line protocol, and String() gives the
    // shortest text that reads back as the same double.
    fields += (n > 1 ? ',' : '') + name + '=' + v;
  }
  if (n === 0) throw new ReadingError('values is empty');
  return fields;
}

// --- per-device state ------------------------------------------------------------

const lastSeq = new Map(); // device -> highest seq seen (for readings without seq)
const durableSeq = new Map(); // device -> highest seq acked after a 204

function assignSeq(device, seq) {
  if (seq === undefined || seq === null) {
    seq = (lastSeq.get(device) || 0) + 1;
  } else if (!Number.isSafeInteger(seq) || seq < 0) {
    throw new ReadingError('seq is not an unsigned integer');
  }
  if (seq > (lastSeq.get(device) || 0)) lastSeq.set(device, seq);
  return seq;
}

// --- batching ----------------------------------------------------------------------

class Batch {
  constructor() {
    this.lines = [];
    this.conns = new Map(); // conn -> { count, devices: Map(device -> { first, last }) }
    this.due = false; // flush-ms has passed since its first line
    this.done = false;
    this.ok = false;
    this.error = '';
  }
}

let current = new Batch();
let timer = null;
const sealed = []; // full or due batches waiting for a write slot
const inflight = []; // batches being written, in the order they were sent
let waiting = 0; // readings in `current` and `sealed`
let globalPaused = false;
let stopping = false; // SIGINT/SIGTERM received
const conns = new Set();
const stats = { frames: 0, readings: 0, acked: 0, writes: 0, failedWrites: 0, errors: 0, lines: 0 };

function add(conn, device, seq, line) {
  const b = current;
  if (b.lines.length === 0) {
    timer = setTimeout(onTimer, opt['flush-ms']);
  }
  b.lines.push(line);
  waiting++;
  let c = b.conns.get(conn);
  if (!c) {
    c = { count: 0, devices: new Map() };
    b.conns.set(conn, c);
  }
  c.count++;
  const d = c.devices.get(device);
  if (d) {
    if (seq > d.last) d.last = seq;
  } else {
    c.devices.set(device, { first: seq, last: seq });
  }
  conn.unacked++;
  if (b.lines.length >= opt.batch) {
    seal();
    pump();
  }
}

function onTimer() {
  timer = null;
  current.due = true;
  pump();
}

function seal() {
  if (timer) {
    clearTimeout(timer);
    timer = null;
  }
  sealed.push(current);
  current = new Batch();
}

function pump() {
  while (inflight.length < opt['max-inflight']) {
    if (sealed.length === 0) {
      if (current.lines.length === 0 || !current.due) break;
      seal();
    }
    send(sealed.shift());
  }
  updateGlobalPause();
}

function send(b) {
  inflight.push(b);
  waiting -= b.lines.length;
  const body = b.lines.join('');
  b.lines = null; // the body holds them now
  stats.writes++;
  const req = http.request(
    {
      agent,
      host: influx.hostname,
      port: influx.port || 80,
      method: 'POST',
      path: writePath,
      headers: { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(body) },
    },
    (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => {
        if (text.length < 1000) text += chunk;
      });
      res.on('end', () => complete(b, res.statusCode === 204, `InfluxDB answered ${res.statusCode}: ${text.trim().slice(0, 300)}`));
      res.on('error', (e) => complete(b, false, `InfluxDB write: ${e.message}`));
    },
  );
  req.on('error', (e) => complete(b, false, `InfluxDB write: ${e.message}`));
  req.end(body);
}

function complete(b, ok, error) {
  if (b.done) return;
  b.done = true;
  b.ok = ok;
  b.error = error;
  // Acks are cumulative: a write's acks go out only after every earlier write's.
  while (inflight.length && inflight[0].done) finish(inflight.shift());
  pump();
  if (stopping) maybeExit();
}

function finish(b) {
  if (b.ok) {
    for (const [conn, c] of b.conns) {
      for (const [device, d] of c.devices) {
        if (d.last > (durableSeq.get(device) || 0)) durableSeq.set(device, d.last);
      }
    }
  } else {
    stats.failedWrites++;
    console.error(`gateway: write of ${[...b.conns.values()].reduce((s, c) => s + c.count, 0)} readings failed: ${b.error}`);
  }
  for (const [conn, c] of b.conns) {
    conn.unacked -= c.count;
    if (conn.closed) continue;
    if (b.ok) {
      stats.acked += c.count;
      for (const [device, d] of c.devices) {
        conn.ws.send(`{"ack":{"device":"${device}","seq":${d.last}}}`);
      }
      updateConnPause(conn);
    } else {
      for (const [device, d] of c.devices) {
        sendError(conn, 'overloaded', `${b.error}; readings of ${device} from seq ${d.first} to ${d.last} not stored; reconnect and resume from last_seq`, d.first);
      }
      shed(conn);
    }
  }
}

// --- connections ------------------------------------------------------------------

function sendError(conn, code, message, seq) {
  stats.errors++;
  const e = { code, message };
  if (seq !== undefined) e.seq = seq;
  conn.ws.send(JSON.stringify({ error: e }));
}

function shed(conn) {
  if (conn.closed || conn.shed) return;
  conn.shed = true;
  conn.ws.close(1013, 'overloaded');
}

function updateConnPause(conn) {
  const max = opt['max-unacked'];
  const pause = stopping || globalPaused || (conn.reading ? conn.unacked >= max : conn.unacked > max / 2);
  if (pause === !conn.reading || conn.closed) return;
  conn.reading = !pause;
  if (pause) conn.ws.pause();
  else conn.ws.resume();
}

function updateGlobalPause() {
  const half = opt['max-pending'] / 2;
  const pause = globalPaused ? waiting > half / 2 : waiting > half;
  if (pause === globalPaused) return;
  globalPaused = pause;
  for (const conn of conns) updateConnPause(conn);
}

// Parses one reading object and adds it; a bad reading is answered with an
// error naming it and dropped, the connection stays open.
function takeReading(conn, device, r) {
  let seq;
  try {
    if (r === null || typeof r !== 'object' || Array.isArray(r)) throw new ReadingError('a reading must be an object');
    if (typeof device !== 'string' || !DEVICE_RE.test(device)) throw new ReadingError('device is missing or not a valid id');
    seq = r.seq;
    const fields = fieldsOf(r.values);
    const ts = readTs(r.ts);
    seq = assignSeq(device, seq);
    add(conn, device, seq, `readings,device=${device} ${fields},seq=${seq}i ${ts}\n`);
    stats.readings++;
  } catch (e) {
    if (!(e instanceof ReadingError)) throw e;
    sendError(conn, 'invalid_reading', e.message, Number.isSafeInteger(seq) ? seq : undefined);
  }
}

function countOf(msg) {
  if (Array.isArray(msg)) return msg.length;
  if (msg && Array.isArray(msg.readings)) return msg.readings.length;
  return 1;
}

function onFrame(conn, data, isBinary) {
  if (isBinary) {
    sendError(conn, 'invalid_json', 'binary frames are not taken; send JSON text frames');
    return;
  }
  let msg;
  try {
    msg = JSON.parse(data);
  } catch (e) {
    sendError(conn, 'invalid_json', e.message);
    return;
  }
  stats.frames++;
  if (msg !== null && typeof msg === 'object' && !Array.isArray(msg)) {
    if (msg.hello !== undefined) return hello(conn, msg.hello);
    if (msg.subscribe !== undefined || msg.unsubscribe !== undefined) {
      sendError(conn, 'invalid_reading', 'subscriptions are not offered by the baseline gateway');
      return;
    }
    if (msg.charge_point_id !== undefined) {
      sendError(conn, 'invalid_reading', 'OCPP frames are not taken by the baseline gateway');
      return;
    }
  }
  // Admission: a frame that would take the readings waiting for a write past
  // max-pending is refused whole (unless nothing waits, as with Pulse's idle shard).
  const n = countOf(msg);
  if (waiting > 0 && waiting + n > opt['max-pending']) {
    let first = msg;
    if (Array.isArray(msg)) first = msg[0];
    else if (msg && Array.isArray(msg.readings)) first = msg.readings[0];
    const seq = first && first.seq;
    sendError(conn, 'overloaded', `over ${opt['max-pending']} readings wait for InfluxDB; ${n} readings of this frame not taken; reconnect and resume from last_seq`, Number.isSafeInteger(seq) ? seq : undefined);
    shed(conn);
    return;
  }
  if (Array.isArray(msg)) {
    for (const r of msg) takeReading(conn, r && r.device, r);
  } else if (msg !== null && typeof msg === 'object' && msg.readings !== undefined) {
    if (!Array.isArray(msg.readings)) {
      sendError(conn, 'invalid_reading', 'readings is not an array');
      return;
    }
    for (const r of msg.readings) takeReading(conn, msg.device, r);
  } else {
    takeReading(conn, msg && msg.device, msg);
  }
  updateConnPause(conn);
}

// hello -> welcome with the device's highest durable seq: known here once the
// gateway wrote the device, asked of InfluxDB otherwise.
function hello(conn, h) {
  const device = h && h.device;
  if (typeof device !== 'string' || !DEVICE_RE.test(device)) {
    sendError(conn, 'invalid_reading', 'hello.device is missing or not a valid id');
    return;
  }
  const welcome = (seq) => {
    if (!conn.closed) conn.ws.send(JSON.stringify({ welcome: { node: 'baseline-gateway', device, last_seq: seq } }));
  };
  if (durableSeq.has(device)) return welcome(durableSeq.get(device));
  const q = `SELECT max(seq) FROM readings WHERE device = '${device}'`;
  const req = http.get(
    { agent, host: influx.hostname, port: influx.port || 80, path: `/query?db=${encodeURIComponent(opt.db)}&q=${encodeURIComponent(q)}` },
    (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (text += c));
      res.on('end', () => {
        let seq = null;
        try {
          const j = JSON.parse(text);
          const s = j.results[0].series;
          seq = s && s.length ? s[0].values[0][1] : 0;
        } catch (e) {
          seq = null;
        }
        if (res.statusCode !== 200 || seq === null) {
          if (!conn.closed) sendError(conn, 'overloaded', `InfluxDB did not tell last_seq of ${device} (${res.statusCode})`);
          return;
        }
        if (seq > (durableSeq.get(device) || 0)) durableSeq.set(device, seq);
        if (seq > (lastSeq.get(device) || 0)) lastSeq.set(device, seq);
        welcome(durableSeq.get(device) || 0);
      });
    },
  );
  req.on('error', (e) => {
    if (!conn.closed) sendError(conn, 'overloaded', `InfluxDB did not tell last_seq of ${device}: ${e.message}`);
  });
}

// --- server --------------------------------------------------------------------------

const wss = new WebSocketServer({
  host: opt.host,
  port: opt.port,
  path: '/ws',
  maxPayload: opt['max-frame-bytes'],
  perMessageDeflate: false,
  clientTracking: false,
});

wss.on('connection', (ws) => {
  const conn = { ws, unacked: 0, reading: true, closed: false, shed: false };
  conns.add(conn);
  if (stopping) {
    ws.close(1001, 'shutting down');
  }
  if (globalPaused) updateConnPause(conn);
  ws.on('message', (data, isBinary) => onFrame(conn, data, isBinary));
  ws.on('close', () => {
    conn.closed = true;
    conns.delete(conn);
  });
  ws.on('error', () => {}); // 'close' follows
});

wss.on('listening', () => {
  const a = wss.address();
  console.log(`gateway listening on ${a.address}:${a.port}`);
});
wss.on('error', (e) => {
  console.error(`gateway: ${e.message}`);
  process.exit(1);
});

if (opt.stats > 0) {
  let last = { ...stats };
  setInterval(() => {
    const d = (k) => ((stats[k] - last[k]) / opt.stats).toFixed(0);
    console.error(`gateway: ${conns.size} connections, readings/s in ${d('readings')} acked ${d('acked')}, writes/s ${d('writes')}, waiting ${waiting}, in flight ${inflight.length}, failed writes ${stats.failedWrites}`);
    last = { ...stats };
  }, opt.stats * 1000).unref();
}

// --- shutdown -------------------------------------------------------------------------


function maybeExit() {
  if (current.lines.length || sealed.length || inflight.length) return;
  for (const conn of conns) conn.ws.close(1001, 'shutting down');
  setTimeout(() => process.exit(0), 200).unref();
  agent.destroy();
}

function stop() {
  if (stopping) return;
  stopping = true;
  wss.close();
  for (const conn of conns) updateConnPause(conn);
  current.due = true;
  pump();
  maybeExit();
  setTimeout(() => {
    console.error('gateway: writes still in flight after 10 s; exiting');
    process.exit(1);
  }, 10000).unref();
}

process.on('SIGINT', stop);
process.on('SIGTERM', stop);
