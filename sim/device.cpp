// Device actors of pulse-sim. Each owns one ws_client at a time; the client's
// callbacks (on an I/O thread) only anon_send into the actor, tagged with the
// connection's generation, so all state is touched by the actor alone and a
// late callback of an earlier connection is recognised and dropped.
//
// A connection goes connect → open → hello → welcome → sending. Any loss (the
// node's 1013 after `overloaded`, its 1001 on shutdown, a reset, a refused
// connect) schedules a new connection after a full-jitter backoff; the
// welcome's last_seq then settles what was in flight (resume_meter,
// resume_replay): stored frames count as acked, the rest is resent.

#include "sim/device.hpp"

#include <array>
#include <deque>
#include <functional>
#include <random>

#include <boost/asio/io_context.hpp>
#include <caf/all.hpp>

#include "net/ws_client.hpp"
#include "sim/profiles.hpp"
#include "sim/server_message.hpp"
#include "wire/codec.hpp"

namespace pulse::sim {

namespace {

using open_atom = caf::atom_constant<caf::atom("open")>;
using msg_atom = caf::atom_constant<caf::atom("msg")>;
using gone_atom = caf::atom_constant<caf::atom("gone")>;
using tick_atom = caf::atom_constant<caf::atom("tick")>;
using stop_atom = caf::atom_constant<caf::atom("stop")>;
using drain_atom = caf::atom_constant<caf::atom("drain")>;
using connect_atom = caf::atom_constant<caf::atom("connect")>;
using redial_atom = caf::atom_constant<caf::atom("redial")>;
using hello_wait_atom = caf::atom_constant<caf::atom("hellowait")>;

using clock = std::chrono::steady_clock;

// A node that accepted the WebSocket but does not welcome within this is
// treated as a lost connection (its shard may be stuck or restarting).
constexpr auto welcome_timeout = std::chrono::seconds(10);

std::int64_t wall_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

enum class link_state {
  down,        // no connection; a redial may be pending
  connecting,  // TCP + WebSocket handshake
  greeting,    // hello sent, waiting for the welcome
  up,          // welcomed: sending
  closing,     // we asked to close; gone follows
};

// battery: simulated seconds per real second, so a charge/discharge cycle
// takes minutes on a dashboard instead of hours.
constexpr double battery_time_scale = 30;

struct inflight {
  std::uint64_t first_seq = 0;  // meter; replay frames may carry no seq
  std::uint64_t last_seq = 0;
  std::int64_t ts = 0;                // meter: one ts per frame
  // generated profiles: readings × metrics values, kept to resend (renumbered if need be)
  std::vector<double> values;
  bool meta = false;                  // the first reading carries the device's meta
  std::size_t frame = 0;              // replay: index into the script
  clock::time_point sent;             // last (re)send, for the ack latency
  frame_expect expect;
  bool rejected = false;              // the node answered `overloaded` for it
};

struct device_state {
  static inline const char* name = "sim-device";
  run_settings cfg;
  tally* t = nullptr;
  std::string id;
  boost::asio::io_context* ioc = nullptr;
  std::shared_ptr<net::ws_client> ws;
  // connection
  std::uint64_t gen = 0;     // bumped per connection; messages carry it
  link_state link = link_state::down;
  std::size_t attempt = 0;   // reconnects in a row without a welcome
  std::size_t welcome_attempt = 0;  // `attempt` when the welcome reset it
  bool welcomed_on_link = false;    // this connection got its welcome
  bool acked_on_link = false;       // and then an ack
  bool opened_once = false;
  bool welcomed_once = false;
  std::minstd_rand jitter;
  // generated profiles (meter, battery, host)
  std::mt19937_64 rng;
  const std::vector<std::string>* metrics = nullptr;
  double energy = 0;
  battery_model battery;
  cpu_times host_cpu;
  double host_last[5] = {};
  bool meta_due = false;     // send the meta with the next frame (after each welcome)
  std::uint64_t seq = 0;     // last seq handed out
  clock::time_point next_tick;
  clock::time_point last_tick;  // --phases: readings are earned since then
  double credit = 0;            // --phases: readings earned, not sent yet
  // replay profile
  std::shared_ptr<const replay_script> script;
  std::size_t next_frame = 0;
  std::size_t errors_seen = 0;    // for the replay frame in flight
  std::size_t errors_repeat = 0;  // of those, already counted before a resend
  std::uint64_t acked_seq = 0;    // the node's last_seq before the frame in flight
  // both
  std::deque<inflight> q;         // in seq order
  std::size_t inflight_readings = 0;
  bool stopping = false;
  bool unauthorized = false;  // the node refused our token: coming back would not help
  bool finished = false;
  device_expectation acked;
  device_result result;
  std::vector<float> latencies;
  std::vector<ack_sample> samples;
  std::map<std::string, std::uint64_t> errors;
  std::string buf;
};

using device_ptr = caf::stateful_actor<device_state>*;

void problem(device_state& st, const std::string& what) {
  std::lock_guard<std::mutex> guard{st.t->mtx};
  st.t->problems.push_back(st.id + ": " + what);
}

void finish(device_ptr self) {
  auto& st = self->state;
  if (st.finished) return;
  st.finished = true;
  std::uint64_t refused = 0;
  std::uint64_t unconfirmed = 0;
  for (auto& f : st.q) (f.rejected ? refused : unconfirmed) += f.expect.readings;
  st.t->rejected.fetch_add(refused);
  {
    std::lock_guard<std::mutex> guard{st.t->mtx};
    merge_expectation(st.t->expected[st.id], st.acked);
    st.t->results[st.id] = st.result;
    for (auto& [code, n] : st.errors) st.t->errors[code] += n;
    st.t->latencies_ms.insert(st.t->latencies_ms.end(), st.latencies.begin(), st.latencies.end());
    st.t->samples.insert(st.t->samples.end(), st.samples.begin(), st.samples.end());
    if (refused > 0)
      st.t->problems.push_back(st.id + ": " + std::to_string(refused) +
                               " readings refused (overloaded) and not stored");
    if (unconfirmed > 0)
      st.t->problems.push_back(st.id + ": " + std::to_string(unconfirmed) +
                               " readings never acked");
  }
  st.t->finished.fetch_add(1);
  if (st.ws) st.ws->close();
  st.ws.reset();
  self->quit();
}

void connect(device_ptr self) {
  auto& st = self->state;
  auto gen = ++st.gen;
  st.link = link_state::connecting;
  caf::actor me{self};
  net::ws_client::handlers h;
  h.on_open = [me, gen] { caf::anon_send(me, open_atom::value, gen); };
  h.on_message = [me, gen](std::string_view text) {
    caf::anon_send(me, msg_atom::value, gen, std::string{text});
  };
  h.on_close = [me, gen](const std::string& reason) {
    caf::anon_send(me, gone_atom::value, gen, reason);
  };
  st.ws = net::ws_client::create(*st.ioc, std::move(h));
  st.ws->connect(st.cfg.host, st.cfg.port, "/ws", st.cfg.source);
}

// Ends the connection from our side; `gone` follows and schedules the redial.
void close_link(device_state& st) {
  if (!st.ws || st.link == link_state::down || st.link == link_state::closing) return;
  st.link = link_state::closing;
  st.ws->close();
}

void schedule_redial(device_ptr self, const std::string& reason) {
  auto& st = self->state;
  if (st.cfg.reconnect_attempts > 0 && st.attempt >= st.cfg.reconnect_attempts) {
    st.t->gave_up.fetch_add(1);
    problem(st, "gave up after " + std::to_string(st.attempt) +
                  " reconnect attempts; last: " + reason);
    finish(self);
    return;
  }
  auto delay = backoff_delay(st.attempt, st.cfg.reconnect_min, st.cfg.reconnect_max, st.jitter);
  ++st.attempt;
  self->delayed_send(self, delay, redial_atom::value, st.gen);
}

// One reading's values of the device's profile into out[0..metrics).
// meter: voltage, current, power, energy; values that do not repeat, so sums check something.
void next_values(device_state& st, double* out) {
  if (st.cfg.profile == "battery") {
    double per_reading = st.cfg.rate > 0 ? 1.0 / st.cfg.rate : 0.01;
    st.battery.step(per_reading * battery_time_scale, st.rng, out);
    return;
  }
  if (st.cfg.profile == "host") {
    std::string error;
    // Checked at start-up; should /proc become unreadable, the last values are sent again.
    if (read_host(st.host_cpu, out, error)) std::copy(out, out + 5, st.host_last);
    else std::copy(st.host_last, st.host_last + 5, out);
    return;
  }
  std::normal_distribution<double> noise(0.0, 1.0);
  double voltage = 230.0 + noise(st.rng) * 2.0;
  double current = 5.0 + noise(st.rng) * 0.5;
  double power = voltage * current;
  st.energy += power / 3600.0;
  out[0] = voltage;
  out[1] = current;
  out[2] = power;
  out[3] = st.energy;
}

inflight new_meter_frame(device_state& st, std::size_t n) {
  inflight f;
  auto& names = *st.metrics;
  auto m = names.size();
  f.ts = wall_ms();
  f.values.resize(n * m);
  f.meta = st.meta_due && !st.cfg.meta.empty();
  st.meta_due = false;
  for (std::size_t i = 0; i < n; ++i) {
    double* v = f.values.data() + i * m;
    next_values(st, v);
    for (std::size_t k = 0; k < m; ++k) {
      auto& tot = f.expect.totals.metrics[names[k]];
      tot.count++;
      tot.sum.add(v[k]);
    }
  }
  f.first_seq = st.seq + 1;
  st.seq += n;
  f.last_seq = st.seq;
  f.expect.readings = n;
  f.expect.totals.min_ts = f.ts;
  f.expect.totals.max_ts = f.ts;
  return f;
}

// The frame's text from its values, so a resend is byte for byte the first
// send unless it was renumbered.
void meter_text(const std::string& id, const std::vector<std::string>& names,
                const std::string& meta, const inflight& f, std::string& b) {
  b.clear();
  auto m = names.size();
  auto n = f.values.size() / m;
  bool batch = n > 1;
  if (batch) {
    b += "{\"device\":\"";
    b += id;
    b += "\",\"readings\":[";
  }
  for (std::size_t i = 0; i < n; ++i) {
    if (i > 0) b += ',';
    b += '{';
    if (!batch) {
      b += "\"device\":\"";
      b += id;
      b += "\",";
    }
    b += "\"seq\":";
    wire::append_json_number(b, f.first_seq + i);
    b += ",\"ts\":";
    wire::append_json_number(b, static_cast<std::uint64_t>(f.ts));
    b += ",\"values\":{";
    for (std::size_t k = 0; k < m; ++k) {
      if (k) b += ',';
      b += '"';
      b += names[k];
      b += "\":";
      wire::append_json_number(b, f.values[i * m + k]);
    }
    b += '}';
    if (i == 0 && f.meta) {
      b += ",\"meta\":";
      b += meta;
    }
    b += '}';
  }
  if (batch) b += "]}";
}

void send_meter_frame(device_ptr self) {
  auto& st = self->state;
  auto f = new_meter_frame(st, st.cfg.batch);
  f.sent = clock::now();
  meter_text(st.id, *st.metrics, st.cfg.meta, f, st.buf);
  st.inflight_readings += f.expect.readings;
  st.t->sent.fetch_add(f.expect.readings, std::memory_order_relaxed);
  st.t->frames_sent.fetch_add(1, std::memory_order_relaxed);
  st.q.push_back(std::move(f));
  st.ws->send(st.buf);
}

void fill_window(device_ptr self) {
  auto& st = self->state;
  while (!st.stopping && st.link == link_state::up &&
         st.inflight_readings + st.cfg.batch <= st.cfg.window)
    send_meter_frame(self);
}

void send_replay_frame(device_ptr self) {
  auto& st = self->state;
  if (st.stopping || !st.q.empty() || st.link != link_state::up) return;
  if (st.next_frame >= st.script->frames.size()) {
    finish(self);
    return;
  }
  auto i = st.next_frame++;
  inflight f;
  f.frame = i;
  f.sent = clock::now();
  f.expect = st.script->expect[i];
  st.errors_seen = 0;
  st.errors_repeat = 0;
  st.inflight_readings += f.expect.readings;
  st.t->sent.fetch_add(f.expect.readings, std::memory_order_relaxed);
  st.t->frames_sent.fetch_add(1, std::memory_order_relaxed);
  st.q.push_back(std::move(f));
  st.ws->send(st.script->frames[i].text);
}

void schedule_replay(device_ptr self) {
  auto& st = self->state;
  if (st.cfg.speed <= 0 || st.next_frame == 0 || st.next_frame >= st.script->frames.size()) {
    send_replay_frame(self);
    return;
  }
  auto gap = st.script->frames[st.next_frame].ts - st.script->frames[st.next_frame - 1].ts;
  auto delay = std::chrono::milliseconds(
    static_cast<std::int64_t>(std::max<double>(0, gap) / st.cfg.speed));
  self->delayed_send(self, delay, tick_atom::value, st.gen);
}

// Counts a frame as durable. `measured`: confirmed by an ack, so its latency
// means something; a frame found stored by a welcome spans the outage and is
// left out of the latency figures.
void complete(device_state& st, const inflight& f, bool measured) {
  auto now = clock::now();
  ack_sample sample;
  sample.second = static_cast<std::uint32_t>(
    std::max<std::int64_t>(0, std::chrono::duration_cast<std::chrono::seconds>(now - st.t->start).count()));
  sample.readings = static_cast<std::uint32_t>(f.expect.readings);
  if (measured) {
    sample.ms = std::chrono::duration<float, std::milli>(now - f.sent).count();
    st.latencies.push_back(sample.ms);
  }
  st.samples.push_back(sample);
  if (!measured)
    st.t->resumed.fetch_add(f.expect.readings, std::memory_order_relaxed);
  merge_expectation(st.acked, f.expect.totals);
  st.t->acked.fetch_add(f.expect.readings, std::memory_order_relaxed);
  st.inflight_readings -= f.expect.readings;
  st.result.acked += f.expect.readings;
  if (!st.script) st.result.last_seq = std::max(st.result.last_seq, f.last_seq);
}

void resend(device_state& st, inflight& f) {
  f.sent = clock::now();
  f.rejected = false;
  st.t->resent.fetch_add(f.expect.readings, std::memory_order_relaxed);
  if (st.script) {
    // The node answers the frame's bad values again; they were counted once.
    st.errors_repeat = st.errors_seen;
    st.errors_seen = 0;
    st.ws->send(st.script->frames[f.frame].text);
    return;
  }
  meter_text(st.id, *st.metrics, st.cfg.meta, f, st.buf);
  st.ws->send(st.buf);
}

// meter: settles the frames in flight against the welcome's last_seq and
// resends, in seq order, what the node does not hold.
void resume_meter(device_state& st, std::uint64_t node_last_seq) {
  std::deque<inflight> keep;
  std::vector<inflight> renumbered;
  for (auto& f : st.q) {
    switch (resume_frame(f.first_seq, f.last_seq, f.rejected, node_last_seq)) {
      case resume_action::stored:
        complete(st, f, false);
        break;
      case resume_action::resend:
        keep.push_back(std::move(f));
        break;
      case resume_action::renumber:
        renumbered.push_back(std::move(f));
        break;
    }
  }
  // New seqs above every seq handed out, so they go last and keep q in order.
  for (auto& f : renumbered) {
    f.first_seq = st.seq + 1;
    st.seq += f.values.size() / st.metrics->size();
    f.last_seq = st.seq;
    keep.push_back(std::move(f));
  }
  st.q = std::move(keep);
  for (auto& f : st.q) resend(st, f);
}

// replay: at most one frame in flight. OCPP frames carry no seq, so whether it
// was stored is read from how far last_seq moved past acked_seq.
void resume_replay(device_state& st, std::uint64_t node_last_seq) {
  auto before = st.acked_seq;
  st.acked_seq = node_last_seq;
  if (st.q.empty()) return;
  auto& f = st.q.front();
  if (f.expect.readings > 0 && node_last_seq >= last_seq_after(before, f.expect.seqs)) {
    complete(st, f, false);
    st.q.pop_front();
    return;
  }
  resend(st, f);
}

// After a welcome: go on sending.
void start(device_ptr self) {
  auto& st = self->state;
  if (st.stopping && st.q.empty()) {
    finish(self);
    return;
  }
  if (st.script) {
    send_replay_frame(self);
  } else if (st.cfg.rate > 0 || !st.cfg.phases.empty()) {
    st.next_tick = clock::now();
    st.last_tick = st.next_tick;
    self->send(self, tick_atom::value, st.gen);
  } else {
    fill_window(self);
  }
}

void on_welcome(device_ptr self, std::uint64_t node_last_seq) {
  auto& st = self->state;
  if (st.link != link_state::greeting) return;
  st.link = link_state::up;
  st.welcome_attempt = st.attempt;
  st.attempt = 0;
  st.welcomed_on_link = true;
  st.acked_on_link = false;
  st.meta_due = true;
  if (!st.welcomed_once) {
    st.welcomed_once = true;
    // Resume after what the node already holds.
    st.seq = node_last_seq;
    st.acked_seq = node_last_seq;
    st.result.last_seq = node_last_seq;
  } else {
    st.t->reconnects.fetch_add(1, std::memory_order_relaxed);
    if (node_last_seq < st.result.last_seq)
      problem(st, "welcome says last_seq " + std::to_string(node_last_seq) + " after seq " +
                    std::to_string(st.result.last_seq) + " was acked: acked readings lost");
    if (st.script) resume_replay(st, node_last_seq);
    else resume_meter(st, node_last_seq);
  }
  start(self);
}

void on_ack(device_ptr self, const server_message& m) {
  auto& st = self->state;
  st.acked_on_link = true;
  if (st.script) {
    if (m.device.empty() || m.device == st.id) {
      st.acked_seq = std::max(st.acked_seq, m.seq);
      st.result.last_seq = std::max(st.result.last_seq, m.seq);
    }
    if (!st.q.empty()) {
      complete(st, st.q.front(), true);
      st.q.pop_front();
    }
    schedule_replay(self);
    return;
  }
  // Cumulative, except for refused frames: the node's ack covers their seqs
  // without having stored them, so they wait for the resend.
  for (auto it = st.q.begin(); it != st.q.end() && it->last_seq <= m.seq;) {
    if (it->rejected) {
      ++it;
      continue;
    }
    complete(st, *it, true);
    it = st.q.erase(it);
  }
  if (st.stopping && st.q.empty()) finish(self);
  else if (st.cfg.rate <= 0) fill_window(self);
}

void on_error(device_ptr self, const server_message& m) {
  auto& st = self->state;
  auto code = m.code.empty() ? std::string{"unknown"} : m.code;
  if (code == "unauthorized") {
    // The node closes with 1008 next; the same token would be refused again.
    st.errors[code]++;
    st.unauthorized = true;
    close_link(st);
    return;
  }
  if (st.link == link_state::greeting) {
    // No welcome (e.g. the shard did not answer): try again on a new connection.
    st.errors[code]++;
    close_link(st);
    return;
  }
  if (code == "overloaded") {
    // Nothing of the refused readings is stored. The node closes with 1013
    // after this; closing ourselves too means the resume happens even if it
    // does not.
    st.errors[code]++;
    if (st.script) {
      if (!st.q.empty()) st.q.front().rejected = true;
    } else if (m.has_seq) {
      for (auto& f : st.q)
        if (f.first_seq <= m.seq && m.seq <= f.last_seq) f.rejected = true;
    }
    close_link(st);
    return;
  }
  if (!st.script) {
    st.errors[code]++;
    return;
  }
  if (st.errors_repeat > 0) --st.errors_repeat;
  else st.errors[code]++;
  if (st.q.empty()) return;
  ++st.errors_seen;
  if (st.q.front().expect.readings == 0 && st.errors_seen >= st.q.front().expect.errors) {
    st.q.pop_front();  // a frame with nothing valid in it: its errors are its answer
    schedule_replay(self);
  }
}

void on_message(device_ptr self, const std::string& text) {
  auto m = parse_server_message(text);
  switch (m.kind) {
    case server_message::welcome:
      on_welcome(self, m.seq);
      return;
    case server_message::ack:
      on_ack(self, m);
      return;
    case server_message::error:
      on_error(self, m);
      return;
    default:
      self->state.errors["unreadable_reply"]++;
      return;
  }
}

caf::behavior device_actor(device_ptr self, boost::asio::io_context* ioc, run_settings cfg,
                           tally* t, std::string id, std::uint64_t seed,
                           std::chrono::milliseconds start_delay,
                           std::shared_ptr<const replay_script> script) {
  auto& st = self->state;
  st.cfg = std::move(cfg);
  st.t = t;
  st.id = std::move(id);
  st.ioc = ioc;
  st.rng.seed(seed);
  st.metrics = &profile_metrics(st.cfg.profile);
  if (st.cfg.profile == "battery") st.battery = battery_model::make(st.rng);
  // Not from `seed`: replay devices share one, and equal jitter would bring
  // them back in lockstep.
  auto jitter_seed = std::random_device{}() ^ std::hash<std::string>{}(st.id);
  st.jitter.seed(static_cast<std::uint32_t>(jitter_seed));
  st.script = std::move(script);
  st.acked.metrics.clear();
  if (start_delay.count() > 0)
    self->delayed_send(self, start_delay, connect_atom::value);
  else
    connect(self);
  return {
    [=](connect_atom) { connect(self); },
    [=](redial_atom, std::uint64_t gen) {
      auto& st = self->state;
      if (gen == st.gen && st.link == link_state::down && !st.finished) connect(self);
    },
    [=](open_atom, std::uint64_t gen) {
      auto& st = self->state;
      if (gen != st.gen || st.link != link_state::connecting) return;
      if (!st.opened_once) {
        st.opened_once = true;
        st.t->connected.fetch_add(1);
      }
      st.link = link_state::greeting;
      std::string hello = "{\"hello\":{\"device\":";
      wire::append_json_string(hello, st.id);
      if (!st.cfg.token.empty()) {
        hello += ",\"token\":";
        wire::append_json_string(hello, st.cfg.token);
      }
      hello += "}}";
      st.ws->send(std::move(hello));
      self->delayed_send(self, welcome_timeout, hello_wait_atom::value, gen);
    },
    [=](hello_wait_atom, std::uint64_t gen) {
      auto& st = self->state;
      if (gen != st.gen || st.link != link_state::greeting) return;
      st.errors["no_welcome"]++;
      close_link(st);
    },
    [=](msg_atom, std::uint64_t gen, const std::string& text) {
      if (gen == self->state.gen) on_message(self, text);
    },
    [=](gone_atom, std::uint64_t gen, const std::string& reason) {
      auto& st = self->state;
      if (gen != st.gen || st.finished) return;
      // A connect that never opened is a failed attempt, not a lost connection.
      bool opened = st.link != link_state::connecting;
      auto cause = opened ? close_cause(reason) : std::string{"connect_failed"};
      if (opened) st.t->disconnects.fetch_add(1);
      {
        std::lock_guard<std::mutex> guard{st.t->mtx};
        st.t->closes[cause]++;
      }
      // Welcomed, then cut off before a single ack (shed as overloaded, or a
      // frame the node cannot take): no progress, so the backoff keeps growing
      // instead of hammering the node every few milliseconds.
      if (st.welcomed_on_link && !st.acked_on_link) st.attempt = st.welcome_attempt;
      st.welcomed_on_link = false;
      st.ws.reset();
      st.link = link_state::down;
      if (st.stopping && st.q.empty()) {
        finish(self);
        return;
      }
      // Refused by policy (1008: auth) or for a frame too big (1009): the same
      // hello and frames would be refused again.
      if (cause == "1008" || cause == "1009" || st.unauthorized) {
        st.t->gave_up.fetch_add(1);
        problem(st, "not reconnecting: " + reason);
        finish(self);
        return;
      }
      schedule_redial(self, reason);
    },
    [=](tick_atom, std::uint64_t gen) {
      // A tick of an earlier connection ends its chain; the welcome starts a new one.
      auto& st = self->state;
      if (gen != st.gen || st.stopping || st.link != link_state::up) return;
      if (st.script) {
        send_replay_frame(self);
        return;
      }
      if (!st.cfg.phases.empty()) {
        // A ramp: the rate changes all the time (and starts near 0, where one
        // interval would be seconds long), so the device earns readings at the
        // current rate and looks again every 100 ms at the latest.
        auto now = clock::now();
        double rate = phase_rate(st.cfg.phases, std::chrono::duration<double>(now - st.t->start).count());
        double earned = rate * std::chrono::duration<double>(now - st.last_tick).count();
        if (st.cfg.jitter > 0) {
          std::uniform_real_distribution<double> spread(1 - st.cfg.jitter, 1 + st.cfg.jitter);
          earned *= spread(st.jitter);
        }
        st.last_tick = now;
        // At most a second's worth banked, so a stall is not followed by a burst.
        st.credit = std::min(st.credit + earned, std::max<double>(st.cfg.batch, rate));
        while (st.credit >= st.cfg.batch) {
          st.credit -= st.cfg.batch;
          if (st.inflight_readings + st.cfg.batch <= st.cfg.window) send_meter_frame(self);
          else st.errors["window_full"]++;
        }
        double wait = rate > 0 ? std::min(0.1, st.cfg.batch / rate) : 0.1;
        st.next_tick = now + std::chrono::duration_cast<clock::duration>(std::chrono::duration<double>(wait));
      } else {
        if (st.inflight_readings + st.cfg.batch <= st.cfg.window) send_meter_frame(self);
        else st.errors["window_full"]++;
        double period = static_cast<double>(st.cfg.batch) / st.cfg.rate;
        if (st.cfg.jitter > 0) {
          std::uniform_real_distribution<double> spread(1 - st.cfg.jitter, 1 + st.cfg.jitter);
          period *= spread(st.jitter);
        }
        st.next_tick += std::chrono::duration_cast<clock::duration>(std::chrono::duration<double>(period));
      }
      auto delay =
        std::chrono::duration_cast<std::chrono::microseconds>(st.next_tick - clock::now());
      self->delayed_send(self, std::max(delay, std::chrono::microseconds(0)), tick_atom::value,
                         gen);
    },
    [=](stop_atom) {
      auto& st = self->state;
      st.stopping = true;
      if (st.q.empty()) finish(self);
      else self->delayed_send(self, st.cfg.drain, drain_atom::value);
    },
    [=](drain_atom) { finish(self); },
  };
}

}  // namespace

void merge_expectation(device_expectation& a, const device_expectation& b) {
  a.min_ts = std::min(a.min_ts, b.min_ts);
  a.max_ts = std::max(a.max_ts, b.max_ts);
  for (auto& [name, tot] : b.metrics) {
    auto& x = a.metrics[name];
    x.count += tot.count;
    x.sum.add(tot.sum.hi);
    x.sum.add(tot.sum.lo);
  }
}

caf::actor spawn_meter_device(caf::actor_system& sys, boost::asio::io_context& ioc,
                              const run_settings& cfg, tally& t, std::string id,
                              std::uint64_t seed, std::chrono::milliseconds start_delay) {
  return sys.spawn(device_actor, &ioc, cfg, &t, std::move(id), seed, start_delay,
                   std::shared_ptr<const replay_script>{});
}

caf::actor spawn_replay_device(caf::actor_system& sys, boost::asio::io_context& ioc,
                               const run_settings& cfg, tally& t,
                               std::shared_ptr<const replay_script> script) {
  auto id = script->device;
  return sys.spawn(device_actor, &ioc, cfg, &t, std::move(id), 0, std::chrono::milliseconds(0),
                   std::move(script));
}

void stop_device(const caf::actor& device) { caf::anon_send(device, stop_atom::value); }

}  // namespace pulse::sim
