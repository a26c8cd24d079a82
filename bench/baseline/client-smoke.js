#!/usr/bin/env node
'use strict';
// Smoke test (and rough throughput probe) of gateway.js: --connections
// WebSockets, one device each (smoke-<run>-<i>), say hello, then send
// --readings readings each, --batch per frame (alternating single-reading and
// batch frames when --batch > 1, so both shapes are exercised), keeping at
// most --window readings in flight; waits until every device's cumulative
// ack reaches its last seq, then (with --influx) checks that InfluxDB holds
// exactly that many readings of the run's devices.
//
//   node client-smoke.js --gateway ws://127.0.0.1:8090/ws --influx http://127.0.0.1:8086
// Prints one JSON line; exit code 0 when all was acked and counted, 1 otherwise.

const http = require('http');
const WebSocket = require('ws');

const opt = {
  gateway: 'ws://127.0.0.1:8090/ws',
  influx: '',
  db: 'pulse',
  connections: 10,
  readings: 100,
  batch: 1,
  window: 10,
  'timeout-s': 20,
  run: String(Date.now() % 1e8),
};
for (let i = 2; i < process.argv.length; i++) {
  const m = /^--([a-z-]+)(?:=(.*))?$/.exec(process.argv[i]);
  if (!m || !(m[1] in opt)) {
    console.error(`client-smoke: unknown argument ${process.argv[i]}`);
    process.exit(2);
  }
  const v = m[2] !== undefined ? m[2] : process.argv[++i];
  opt[m[1]] = typeof opt[m[1]] === 'number' ? Number(v) : v;
}

const start = Date.now();
const tsBase = start - opt.readings; // one reading per ms, all in the past
const devices = [];
let acked = 0;
let errors = 0;
let firstError = null;
const latencies = [];

function fail(msg) {
  console.log(JSON.stringify({ ok: false, error: msg, acked, errors, firstError }));
  process.exit(1);
}

const deadline = setTimeout(() => fail(`not all acked within ${opt['timeout-s']} s`), opt['timeout-s'] * 1000);

function runDevice(i) {
  return new Promise((resolve, reject) => {
    const device = `smoke-${opt.run}-${i}`;
    const ws = new WebSocket(opt.gateway, { perMessageDeflate: false });
    const st = { device, next: 1, ackedSeq: 0, frames: 0, sentAt: new Map() };
    devices.push(st);
    const pump = () => {
      while (st.next <= opt.readings && st.next - 1 - st.ackedSeq < opt.window) {
        const n = Math.min(opt.batch, opt.readings - st.next + 1, opt.window - (st.next - 1 - st.ackedSeq));
        const reading = (seq) => ({
          seq,
          ts: tsBase + seq,
          values: { voltage: 230 + (seq % 7) * 0.1, current: 5 + (seq % 11) * 0.05 },
        });
        let frame;
        if (n === 1 && (opt.batch === 1 || st.frames % 2 === 0)) {
          frame = { device, ...reading(st.next) };
        } else {
          frame = { device, readings: [] };
          for (let k = 0; k < n; k++) frame.readings.push(reading(st.next + k));
        }
        st.sentAt.set(st.next + n - 1, process.hrtime.bigint());
        st.next += n;
        st.frames++;
        ws.send(JSON.stringify(frame));
      }
    };
    ws.on('open', () => ws.send(JSON.stringify({ hello: { device } })));
    ws.on('message', (data) => {
      const m = JSON.parse(data);
      if (m.welcome) {
        if (m.welcome.last_seq !== 0) return reject(new Error(`${device}: welcome last_seq ${m.welcome.last_seq}, expected 0`));
        pump();
      } else if (m.ack) {
        if (m.ack.device !== device) return reject(new Error(`ack for ${m.ack.device} on ${device}'s connection`));
        if (m.ack.seq <= st.ackedSeq) return reject(new Error(`${device}: ack ${m.ack.seq} after ${st.ackedSeq}`));
        const now = process.hrtime.bigint();
        for (const [seq, t] of st.sentAt) {
          if (seq > m.ack.seq) break;
          latencies.push(Number(now - t) / 1e6);
          st.sentAt.delete(seq);
        }
        acked += m.ack.seq - st.ackedSeq;
        st.ackedSeq = m.ack.seq;
        if (st.ackedSeq === opt.readings) {
          ws.close(1000);
          resolve();
        } else {
          pump();
        }
      } else if (m.error) {
        errors++;
        if (!firstError) firstError = m.error;
      }
    });
    ws.on('error', reject);
    ws.on('close', (code) => {
      if (st.ackedSeq !== opt.readings) reject(new Error(`${device}: closed (${code}) with ${st.ackedSeq} of ${opt.readings} acked`));
    });
  });
}

function influxCount() {
  const q = `SELECT count(voltage) FROM readings WHERE device =~ /^smoke-${opt.run}-/`;
  const url = `${opt.influx.replace(/\/$/, '')}/query?db=${encodeURIComponent(opt.db)}&q=${encodeURIComponent(q)}`;
  return new Promise((resolve, reject) => {
    http
      .get(url, (res) => {
        let text = '';
        res.on('data', (c) => (text += c));
        res.on('end', () => {
          try {
            const s = JSON.parse(text).results[0].series;
            resolve(s && s.length ? s[0].values[0][1] : 0);
          } catch (e) {
            reject(new Error(`InfluxDB answered ${res.statusCode}: ${text.slice(0, 200)}`));
          }
        });
      })
      .on('error', reject);
  });
}

(async () => {
  try {
    await Promise.all(Array.from({ length: opt.connections }, (_, i) => runDevice(i)));
  } catch (e) {
    fail(e.message);
  }
  const seconds = (Date.now() - start) / 1000;
  const expected = opt.connections * opt.readings;
  latencies.sort((a, b) => a - b);
  const pct = (p) => (latencies.length ? +latencies[Math.max(0, Math.ceil((p / 100) * latencies.length) - 1)].toFixed(2) : null);
  const out = {
    ok: acked === expected && errors === 0,
    connections: opt.connections,
    sent: expected,
    acked,
    errors,
    seconds,
    readings_per_s: Math.round(acked / seconds),
    ack_latency_ms: { p50: pct(50), p99: pct(99) },
  };
  if (opt.influx) {
    try {
      out.influx_count = await influxCount();
    } catch (e) {
      fail(e.message);
    }
    if (out.influx_count !== expected) out.ok = false;
  }
  if (firstError) out.first_error = firstError;
  clearTimeout(deadline);
  console.log(JSON.stringify(out));
  process.exit(out.ok ? 0 : 1);
})();
