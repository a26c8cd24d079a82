// Pulse dashboard. Served by pulse-node from its own binary (web/ is compiled
// in); it needs nothing but the node: the HTTP API, /metrics and one
// WebSocket subscription. Device ids, metric names and meta values are only
// ever put on the page as text (textContent, option.text), never as HTML.
'use strict';

const OFFLINE_AFTER_MS = 30000;   // no push for this long: offline
const PAGE_SIZE = 50;
const REPAINT_MS = 250;           // at most 4 repaints a second, however many pushes
const MAX_LIVE_POINTS = 5000;
const RANGES = [['15 min', 15 * 60e3], ['1 h', 3600e3], ['6 h', 6 * 3600e3], ['24 h', 86400e3],
                ['7 days', 7 * 86400e3], ['30 days', 30 * 86400e3]];
const STEPS = [['1s', 1e3], ['5s', 5e3], ['10s', 10e3], ['30s', 30e3], ['1m', 60e3], ['5m', 300e3],
               ['15m', 900e3], ['1h', 3600e3], ['3h', 3 * 3600e3], ['1d', 86400e3]];
const NOT_VALUES = new Set(['timestamp', 'latency_ms']);

const $ = (id) => document.getElementById(id);
const devices = new Map();   // id -> device
let ids = [];                // sorted ids matching the search
let idsDirty = true;
let page = 0;
let selected = null;
let dirty = true;
let repaintTimer = null;
let token = localStorage.getItem('pulseToken') || '';
let subPrefix = new URLSearchParams(location.search).get('prefix') || '';
let ws = null, wsRetry = 0, wsTimer = null;
let updatesThisSecond = 0, pushLatencies = [];
const loadedAt = Date.now();
// Figures for people and for tests/browser: the last repaint's duration etc.
window.pulseStats = { repaints: 0, lastRepaintMs: 0, maxRepaintMs: 0, repaintMs: [], updates: 0, devices: 0, chartDraws: 0 };

// ---------- helpers ----------
function setText(el, text) { if (el.textContent !== text) el.textContent = text; }
function fmt(v) {
  if (typeof v !== 'number' || !isFinite(v)) return String(v);
  const a = Math.abs(v);
  if (a !== 0 && (a >= 1e7 || a < 1e-3)) return v.toExponential(3);
  return a >= 1000 ? v.toFixed(0) : a >= 10 ? v.toFixed(1) : v.toFixed(2);
}
function ago(ms) {
  if (!ms) return '–';
  const s = Math.max(0, (Date.now() - ms) / 1000);
  if (s < 60) return s.toFixed(0) + ' s ago';
  if (s < 3600) return (s / 60).toFixed(0) + ' min ago';
  if (s < 86400) return (s / 3600).toFixed(1) + ' h ago';
  return (s / 86400).toFixed(1) + ' d ago';
}
function bytes(v) { return (v / 1073741824).toFixed(2) + ' GiB'; }
function authHeaders() { return token ? { Authorization: 'Bearer ' + token } : {}; }
function showAuth(needed) {
  const el = $('auth-msg');
  el.hidden = !needed;
  if (needed) el.textContent = token
    ? 'The node refused this reader token. Paste a valid reader token above (docs/auth.md).'
    : 'This node needs a reader token (auth is on). Paste a reader token above and press Use.';
}
async function api(path) {
  const r = await fetch(path, { headers: authHeaders() });
  if (r.status === 401) { showAuth(true); throw new Error('unauthorized'); }
  const j = await r.json().catch(() => null);
  if (!r.ok) throw new Error((j && j.error && j.error.message) || ('HTTP ' + r.status));
  return j;
}
function option(select, text, value) {
  const o = document.createElement('option');
  o.text = text;                       // text, not HTML
  o.value = value === undefined ? text : String(value);
  select.add(o);
}

// ---------- devices ----------
function device(id) {
  let d = devices.get(id);
  if (!d) {
    d = { id, values: {}, metrics: new Set(), ts: 0, seen: 0, pushAt: 0, latency: null, apiOnline: false };
    devices.set(id, d);
    idsDirty = true;
  }
  return d;
}
function online(d, now) {
  if (d.pushAt) return now - d.pushAt < OFFLINE_AFTER_MS;
  return d.apiOnline && now - loadedAt < OFFLINE_AFTER_MS;
}
function kind(d) {
  if (d.metrics.has('cpu_load') && d.metrics.has('mem_total')) return 'host';
  if (d.metrics.has('state_of_charge')) return 'battery';
  return '';
}
async function loadDevices() {
  // Every page of /api/v1/devices (1,000 a page), up to 50,000 devices.
  let cursor = '';
  for (let i = 0; i < 50; i++) {
    const q = '/api/v1/devices?limit=1000' + (subPrefix ? '&prefix=' + encodeURIComponent(subPrefix) : '') +
              (cursor ? '&cursor=' + encodeURIComponent(cursor) : '');
    const j = await api(q);
    for (const r of j.devices || []) {
      const d = device(r.id);
      for (const m of r.metrics || []) d.metrics.add(m);
      d.seen = Math.max(d.seen, r.last_seen || 0);
      d.apiOnline = !!r.online;
    }
    if (!j.next_cursor) break;
    cursor = j.next_cursor;
  }
  showAuth(false);
  refreshFleetMetrics();
  schedule();
}
function applyValues(id, vals, pushed) {
  const d = device(id);
  for (const k in vals) {
    if (NOT_VALUES.has(k)) continue;
    if (!d.metrics.has(k)) { d.metrics.add(k); if (d === selected) fillMetricSelect(); }
    d.values[k] = vals[k];
  }
  if (typeof vals.timestamp === 'number') d.ts = vals.timestamp;
  d.seen = Math.max(d.seen, d.ts || 0);
  if (pushed) {
    d.pushAt = Date.now();
    d.seen = Math.max(d.seen, d.pushAt);
    d.flash = true;
    if (typeof vals.latency_ms === 'number') {
      d.latency = vals.latency_ms;
      pushLatencies.push(vals.latency_ms);
      if (pushLatencies.length > 2000) pushLatencies.splice(0, 1000);
    }
    if (d === selected) liveAppend(d, vals);
  }
}

// ---------- WebSocket ----------
function connect() {
  clearTimeout(wsTimer);
  if (ws) { ws.onclose = null; ws.close(); }
  const status = $('ws-status');
  status.textContent = 'connecting…';
  status.className = 'status';
  ws = new WebSocket((location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws');
  ws.onopen = () => {
    wsRetry = 0;
    if (token) ws.send(JSON.stringify({ hello: { token } }));
    ws.send(JSON.stringify({ subscribe: [subPrefix + '*'] }));
    status.textContent = 'live: ' + (subPrefix ? subPrefix + '*' : 'all devices');
    status.className = 'status ok';
  };
  ws.onmessage = (ev) => {
    let m;
    try { m = JSON.parse(ev.data); } catch (e) { return; }
    if (m.update) {
      for (const id in m.update) { applyValues(id, m.update[id], true); updatesThisSecond++; window.pulseStats.updates++; }
      schedule();
    } else if (m.snapshot) {
      for (const id in m.snapshot) applyValues(id, m.snapshot[id], false);
      schedule();
    } else if (m.error) {
      if (m.error.code === 'unauthorized') showAuth(true);
      status.textContent = 'error: ' + String(m.error.code);
      status.className = 'status bad';
    }
  };
  ws.onclose = (ev) => {
    status.className = 'status bad';
    if (ev.code === 1008) { showAuth(true); status.textContent = 'refused (token)'; return; }
    const wait = Math.min(30000, 1000 * 2 ** wsRetry++);
    status.textContent = 'disconnected, retrying in ' + Math.round(wait / 1000) + ' s';
    wsTimer = setTimeout(connect, wait);
  };
}

// ---------- the device table: one page of rows, repainted at most every REPAINT_MS ----------
const rows = [];
function buildRows() {
  const tb = document.querySelector('#devices tbody');
  for (let i = 0; i < PAGE_SIZE; i++) {
    const tr = document.createElement('tr');
    const cells = {};
    for (const c of ['id', 'state', 'seen', 'latency', 'values']) {
      const td = document.createElement('td');
      td.className = c;
      tr.appendChild(td);
      cells[c] = td;
    }
    const badge = document.createElement('span');
    badge.className = 'badge';
    cells.state.appendChild(badge);
    cells.badge = badge;
    tr.hidden = true;
    tr.addEventListener('click', () => { if (tr.dataset.idx !== undefined) select(ids[+tr.dataset.idx]); });
    tb.appendChild(tr);
    rows.push({ tr, cells });
  }
}
function schedule() {
  dirty = true;
  if (repaintTimer === null) repaintTimer = setTimeout(() => { repaintTimer = null; requestAnimationFrame(repaint); }, REPAINT_MS);
}
function repaint() {
  if (!dirty) return;
  dirty = false;
  const t0 = performance.now();
  const now = Date.now();
  if (idsDirty) {
    const q = $('search').value.trim();
    ids = [];
    for (const id of devices.keys()) if (id.startsWith(q)) ids.push(id);
    ids.sort();
    idsDirty = false;
  }
  const pages = Math.max(1, Math.ceil(ids.length / PAGE_SIZE));
  page = Math.min(page, pages - 1);
  for (let i = 0; i < PAGE_SIZE; i++) {
    const r = rows[i], idx = page * PAGE_SIZE + i;
    if (idx >= ids.length) { r.tr.hidden = true; delete r.tr.dataset.idx; continue; }
    const d = devices.get(ids[idx]);
    r.tr.hidden = false;
    r.tr.dataset.idx = idx;
    r.tr.classList.toggle('selected', d === selected);
    setText(r.cells.id, d.id);
    const on = online(d, now);
    setText(r.cells.badge, on ? 'online' : 'offline');
    r.cells.badge.className = 'badge ' + (on ? 'online' : 'offline');
    setText(r.cells.seen, ago(d.seen));
    setText(r.cells.latency, d.latency === null ? '–' : d.latency + ' ms');
    const parts = [];
    for (const k in d.values) { parts.push(k + ' ' + fmt(d.values[k])); if (parts.length >= 5) break; }
    setText(r.cells.values, parts.join(' · '));
    if (d.flash) {
      // no class toggling: that would force a layout per row
      d.flash = false;
      r.cells.values.animate([{ backgroundColor: '#fff2a8' }, { backgroundColor: 'transparent' }], 800);
    }
  }
  setText($('page-info'), ids.length ? `page ${page + 1} of ${pages} · ${ids.length} devices` : 'no devices');
  let nOnline = 0;
  for (const d of devices.values()) if (online(d, now)) nOnline++;
  setText($('sum-devices'), String(devices.size));
  setText($('sum-online'), String(nOnline));
  if (pushLatencies.length) {
    const s = pushLatencies.slice().sort((a, b) => a - b);
    setText($('sum-latency'), `p50 ${s[Math.floor(s.length / 2)]} ms · p99 ${s[Math.min(s.length - 1, Math.floor(s.length * 0.99))]} ms`);
  }
  if (selected) paintDetail(selected);
  if (chart.dirty) drawDeviceChart();
  const ms = performance.now() - t0;
  const st = window.pulseStats;
  st.repaints++; st.lastRepaintMs = ms; st.maxRepaintMs = Math.max(st.maxRepaintMs, ms); st.devices = devices.size;
  st.repaintMs.push(ms);
  if (st.repaintMs.length > 200) st.repaintMs.shift();
}

// ---------- the selected device ----------
async function select(id) {
  const d = devices.get(id);
  if (!d) return;
  selected = d;
  setText($('detail-title'), id);
  const dl = $('meta');
  dl.replaceChildren();
  fillMetricSelect();
  schedule();
  try {
    const j = await api('/api/v1/devices/' + encodeURIComponent(id));
    if (selected !== d) return;
    if (j.latest && j.latest.values && !d.ts) applyValues(id, Object.assign({ timestamp: j.latest.ts }, j.latest.values), false);
    const add = (k, v) => {
      const dt = document.createElement('dt'), dd = document.createElement('dd');
      dt.textContent = k;
      dd.textContent = typeof v === 'object' ? JSON.stringify(v) : String(v);
      dl.append(dt, dd);
    };
    add('last seq', j.last_seq);
    for (const k of Object.keys(j.meta || {}).sort()) add(k, j.meta[k]);
  } catch (e) { /* the auth message or the chart message says it */ }
  fillMetricSelect();
  loadDeviceChart();
}
function fillMetricSelect() {
  const sel = $('metric'), d = selected;
  const keep = sel.value;
  const names = [...d.metrics].sort();
  if (sel.options.length === names.length && names.every((n, i) => sel.options[i].value === n) && sel.dataset.dev === d.id) return;
  sel.replaceChildren();
  sel.dataset.dev = d.id;
  for (const n of names) option(sel, n);
  const prefer = kind(d) === 'battery' ? 'state_of_charge' : kind(d) === 'host' ? 'cpu_load' : names[0];
  sel.value = names.includes(keep) ? keep : prefer;
}
function paintDetail(d) {
  const k = kind(d), v = d.values;
  $('host-panel').hidden = k !== 'host';
  $('battery-panel').hidden = k !== 'battery';
  if (k === 'host') {
    gauge($('gauge-cpu'), 'CPU load', v.cpu_load, 100, '%');
    const used = v.mem_total ? 100 * v.mem_used / v.mem_total : undefined;
    gauge($('gauge-mem'), 'memory used', used, 100, '%');
    setText($('host-text'), v.mem_total ? `memory ${bytes(v.mem_used)} used of ${bytes(v.mem_total)}, ${bytes(v.mem_free)} free · up ${(v.uptime / 86400).toFixed(1)} days` : '');
  } else if (k === 'battery') {
    const pct = (x) => (typeof x === 'number' ? Math.max(0, Math.min(100, x)) : 0);
    $('bat-soc').style.width = pct(v.state_of_charge) + '%';
    $('bat-soh').style.width = pct(v.state_of_health) + '%';
    setText($('bat-soc-v'), typeof v.state_of_charge === 'number' ? v.state_of_charge.toFixed(1) + ' %' : '–');
    setText($('bat-soh-v'), typeof v.state_of_health === 'number' ? v.state_of_health.toFixed(2) + ' %' : '–');
    setText($('bat-voltage'), typeof v.voltage === 'number' ? v.voltage.toFixed(1) + ' V' : '–');
    setText($('bat-current'), typeof v.current === 'number' ? v.current.toFixed(1) + ' A' : '–');
    setText($('bat-temp'), typeof v.temperature === 'number' ? v.temperature.toFixed(1) + ' °C' : '–');
    setText($('bat-mode'), typeof v.current !== 'number' ? '–' : v.current > 0.5 ? 'charging' : v.current < -0.5 ? 'discharging' : 'idle');
  }
}
function gauge(c, label, value, max, unit) {
  const g = c.getContext('2d'), w = c.width, h = c.height, cx = w / 2, cy = h - 22, r = Math.min(w / 2, h) - 14;
  g.clearRect(0, 0, w, h);
  g.lineWidth = 14;
  g.strokeStyle = '#e4e6ec';
  g.beginPath(); g.arc(cx, cy, r, Math.PI, 2 * Math.PI); g.stroke();
  const f = typeof value === 'number' && isFinite(value) ? Math.max(0, Math.min(1, value / max)) : 0;
  g.strokeStyle = f > 0.85 ? '#c92a2a' : f > 0.6 ? '#e67700' : '#2b8a3e';
  g.beginPath(); g.arc(cx, cy, r, Math.PI, Math.PI * (1 + f)); g.stroke();
  g.fillStyle = '#1d2330';
  g.textAlign = 'center';
  g.font = '600 18px system-ui';
  g.fillText(typeof value === 'number' ? value.toFixed(1) + ' ' + unit : '–', cx, cy - 4);
  g.font = '12px system-ui';
  g.fillText(label, cx, h - 4);
}

// ---------- charts: own canvas code, time axis, ranges 15 min … 30 days ----------
const chart = { dirty: false, points: [], live: [], from: 0, to: 0, step: '', metric: '', dev: null };
function fillRangeStep() {
  for (const sel of document.querySelectorAll('select.range')) for (const [t, ms] of RANGES) option(sel, t, ms);
  for (const sel of document.querySelectorAll('select.step')) {
    option(sel, 'auto', '');
    for (const [t] of STEPS) option(sel, t, t);
  }
}
function pickStep(rangeMs, chosen) {
  if (chosen) {
    const ms = STEPS.find((s) => s[0] === chosen)[1];
    if (rangeMs / ms <= 20000) return [chosen, ms];     // the node allows 100,000 buckets; the canvas has far fewer pixels
  }
  for (const s of STEPS) if (rangeMs / s[1] <= 400) return s;
  return STEPS[STEPS.length - 1];
}
async function loadDeviceChart() {
  const d = selected;
  if (!d) return;
  const metric = $('metric').value;
  const range = +$('range').value;
  const [step, stepMs] = pickStep(range, $('step').value);
  const to = Date.now() + 1000, from = to - range;
  Object.assign(chart, { points: [], live: [], from, to, range, step, stepMs, metric, dev: d, dirty: true });
  const msg = $('chart-msg');
  if (!metric) { msg.textContent = 'This device has no metrics yet.'; drawDeviceChart(); return; }
  msg.textContent = '';
  try {
    const j = await api(`/api/v1/devices/${encodeURIComponent(d.id)}/aggregate?metric=${encodeURIComponent(metric)}&from=${from}&to=${to}&step=${step}&fn=avg,min,max`);
    if (chart.dev !== d || chart.metric !== metric || chart.from !== from) return;
    chart.points = (j.buckets || []).map((b) => ({ t: b.t + stepMs / 2, v: b.avg, lo: b.min, hi: b.max }));
    if (!chart.points.length) msg.textContent = `No data for ${metric} in the last ${$('range').selectedOptions[0].text}.`;
    else msg.textContent = '';
  } catch (e) {
    msg.textContent = e.message === 'unauthorized' ? 'Needs a reader token.' : 'Could not load: ' + e.message;
  }
  chart.dirty = true;
  schedule();
}
function liveAppend(d, vals) {
  if (chart.dev !== d || typeof vals[chart.metric] !== 'number') return;
  const t = typeof vals.timestamp === 'number' ? vals.timestamp : Date.now();
  chart.live.push({ t, v: vals[chart.metric] });
  if (chart.live.length > MAX_LIVE_POINTS) chart.live.splice(0, chart.live.length - MAX_LIVE_POINTS);
  // the window slides with the clock
  const now = Date.now() + 1000;
  if (now > chart.to) { chart.from += now - chart.to; chart.to = now; }
  if (chart.points.length === 0) $('chart-msg').textContent = '';
  chart.dirty = true;
}
function drawDeviceChart() {
  chart.dirty = false;
  const live = chart.live.filter((p) => p.t >= chart.from);
  drawChart($('chart'), chart.points, live, chart.from, chart.to,
            chart.metric ? `${chart.metric} · avg per ${chart.step}${live.length ? ' · live' : ''}` : '');
}
function niceStep(span, n) {
  const raw = span / n, p = 10 ** Math.floor(Math.log10(raw)), f = raw / p;
  return (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * p;
}
const TIME_TICKS = [1e3, 5e3, 15e3, 30e3, 60e3, 300e3, 900e3, 1800e3, 3600e3, 3 * 3600e3, 6 * 3600e3, 12 * 3600e3, 86400e3, 2 * 86400e3, 7 * 86400e3];
function timeLabel(t, tick) {
  const d = new Date(t), p = (n) => String(n).padStart(2, '0');
  if (tick >= 86400e3) return `${p(d.getMonth() + 1)}-${p(d.getDate())}`;
  if (tick >= 3600e3) return `${p(d.getDate())} ${p(d.getHours())}:00`;
  if (tick >= 60e3) return `${p(d.getHours())}:${p(d.getMinutes())}`;
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}
// points: [{t, v, lo?, hi?}] (aggregate buckets, with a min..max band); live: [{t, v}].
function drawChart(c, points, live, from, to, title) {
  const g = c.getContext('2d'), W = c.width, H = c.height;
  const L = 64, R = 12, T = 22, B = 26, pw = W - L - R, ph = H - T - B;
  g.fillStyle = '#fff';
  g.fillRect(0, 0, W, H);
  g.font = '11px system-ui';
  g.fillStyle = '#1d2330';
  g.textAlign = 'left';
  g.fillText(title, L, 14);
  let lo = Infinity, hi = -Infinity;
  for (const p of points) { lo = Math.min(lo, p.lo ?? p.v); hi = Math.max(hi, p.hi ?? p.v); }
  for (const p of live) { lo = Math.min(lo, p.v); hi = Math.max(hi, p.v); }
  const x = (t) => L + (t - from) / (to - from) * pw;
  // time axis
  const tick = TIME_TICKS.find((s) => (to - from) / s <= 8) || 30 * 86400e3;
  const tz = new Date().getTimezoneOffset() * 60e3;
  g.strokeStyle = '#eceef3';
  g.textAlign = 'center';
  g.fillStyle = '#556';
  for (let t = Math.ceil((from - tz) / tick) * tick + tz; t <= to; t += tick) {
    g.beginPath(); g.moveTo(x(t), T); g.lineTo(x(t), T + ph); g.stroke();
    g.fillText(timeLabel(t, tick), x(t), H - 8);
  }
  g.strokeStyle = '#99a';
  g.strokeRect(L, T, pw, ph);
  c.dataset.points = String(points.length + live.length);
  if (!isFinite(lo)) {
    g.textAlign = 'center';
    g.fillText('no data in this range', L + pw / 2, T + ph / 2);
    return;
  }
  if (hi === lo) { hi += Math.abs(hi) * 0.05 || 1; lo -= Math.abs(lo) * 0.05 || 1; }
  const pad = (hi - lo) * 0.05; lo -= pad; hi += pad;
  const y = (v) => T + ph - (v - lo) / (hi - lo) * ph;
  const ys = niceStep(hi - lo, 5);
  g.textAlign = 'right';
  g.strokeStyle = '#eceef3';
  for (let v = Math.ceil(lo / ys) * ys; v <= hi; v += ys) {
    g.beginPath(); g.moveTo(L, y(v)); g.lineTo(L + pw, y(v)); g.stroke();
    g.fillText(fmt(v), L - 6, y(v) + 4);
  }
  g.save();
  g.beginPath(); g.rect(L, T, pw, ph); g.clip();
  // min..max band of the buckets
  if (points.length && points[0].lo !== undefined) {
    g.fillStyle = 'rgba(59,111,214,0.15)';
    g.beginPath();
    points.forEach((p, i) => (i ? g.lineTo(x(p.t), y(p.hi)) : g.moveTo(x(p.t), y(p.hi))));
    for (let i = points.length - 1; i >= 0; i--) g.lineTo(x(points[i].t), y(points[i].lo));
    g.closePath(); g.fill();
  }
  const line = (ps, color) => {
    g.strokeStyle = color; g.lineWidth = 1.6; g.beginPath();
    ps.forEach((p, i) => (i ? g.lineTo(x(p.t), y(p.v)) : g.moveTo(x(p.t), y(p.v))));
    g.stroke();
    if (ps.length === 1) { g.fillStyle = color; g.fillRect(x(ps[0].t) - 2, y(ps[0].v) - 2, 4, 4); }
  };
  line(points, '#3b6fd6');
  line(live, '#e8590c');
  g.restore();
  window.pulseStats.chartDraws++;
}

// ---------- fleet: summary from /metrics, chart from /api/v1/aggregate ----------
let lastMetrics = null;
async function pollMetrics() {
  try {
    const text = await (await fetch('/metrics')).text();
    const val = (name) => { const m = text.match(new RegExp('^' + name + ' ([0-9.eE+-]+)$', 'm')); return m ? +m[1] : NaN; };
    const now = performance.now(), stored = val('pulse_readings_stored_total');
    if (lastMetrics && isFinite(stored)) setText($('sum-rate'), fmt((stored - lastMetrics.stored) / ((now - lastMetrics.at) / 1000)));
    lastMetrics = { at: now, stored };
    setText($('sum-conns'), String(val('pulse_connections')));
  } catch (e) { /* the node is away; the WebSocket status says so */ }
  setText($('sum-updates'), String(updatesThisSecond / 5));
  updatesThisSecond = 0;
  schedule();
}
function refreshFleetMetrics() {
  const sel = $('fleet-metric'), keep = sel.value, all = new Set();
  for (const d of devices.values()) for (const m of d.metrics) all.add(m);
  const names = [...all].sort();
  if (names.length === sel.options.length) return;
  sel.replaceChildren();
  for (const n of names) option(sel, n);
  if (names.includes(keep)) sel.value = keep;
  if (!keep && names.length) loadFleetChart();
}
async function loadFleetChart() {
  const metric = $('fleet-metric').value, fn = $('fleet-fn').value, range = +$('fleet-range').value;
  const msg = $('fleet-msg');
  const [step, stepMs] = pickStep(range, $('fleet-step').value);
  const to = Date.now() + 1000, from = to - range;
  if (!metric) { msg.textContent = 'No metrics yet.'; drawChart($('fleet-chart'), [], [], from, to, ''); return; }
  let points = [];
  try {
    const j = await api(`/api/v1/aggregate?metric=${encodeURIComponent(metric)}&from=${from}&to=${to}&step=${step}&fn=${fn}` +
                        (subPrefix ? '&prefix=' + encodeURIComponent(subPrefix) : ''));
    points = (j.buckets || []).map((b) => ({ t: b.t + stepMs / 2, v: b[fn] }));
    msg.textContent = points.length ? '' : `No data for ${metric} in the last ${$('fleet-range').selectedOptions[0].text}.`;
  } catch (e) {
    msg.textContent = e.message === 'unauthorized' ? 'Needs a reader token.' : 'Could not load: ' + e.message;
  }
  drawChart($('fleet-chart'), points, [], from, to, `fleet ${fn} of ${metric} per ${step}`);
}

// ---------- wiring ----------
function start() {
  fillRangeStep();
  buildRows();
  $('token').value = token;
  $('sub-prefix').value = subPrefix;
  $('token-form').addEventListener('submit', (e) => {
    e.preventDefault();
    token = $('token').value.trim();
    localStorage.setItem('pulseToken', token);
    showAuth(false);
    loadDevices().catch(() => {});
    connect();
  });
  $('sub-form').addEventListener('submit', (e) => {
    e.preventDefault();
    subPrefix = $('sub-prefix').value.trim();
    history.replaceState(null, '', subPrefix ? '?prefix=' + encodeURIComponent(subPrefix) : location.pathname);
    devices.clear(); idsDirty = true; page = 0; selected = null;
    loadDevices().catch(() => {});
    connect();
  });
  $('search').addEventListener('input', () => { idsDirty = true; page = 0; dirty = true; requestAnimationFrame(repaint); });
  $('prev').addEventListener('click', () => { page = Math.max(0, page - 1); dirty = true; requestAnimationFrame(repaint); });
  $('next').addEventListener('click', () => { page++; dirty = true; requestAnimationFrame(repaint); });
  for (const id of ['metric', 'range', 'step']) $(id).addEventListener('change', loadDeviceChart);
  for (const id of ['fleet-metric', 'fleet-fn', 'fleet-range', 'fleet-step']) $(id).addEventListener('change', loadFleetChart);
  $('fleet-refresh').addEventListener('click', loadFleetChart);
  drawChart($('chart'), [], [], Date.now() - RANGES[0][1], Date.now(), '');
  drawChart($('fleet-chart'), [], [], Date.now() - RANGES[0][1], Date.now(), '');
  connect();
  loadDevices().catch(() => {});
  setInterval(pollMetrics, 5000);
  pollMetrics();
  // "last seen" and the online badges age without pushes too
  setInterval(() => { refreshFleetMetrics(); schedule(); }, 2000);
}
start();
