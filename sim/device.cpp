// Device actors of pulse-sim. Each owns one ws_client; the client's callbacks
// (on an I/O thread) only anon_send into the actor, so all state is touched
// by the actor alone.

#include "sim/device.hpp"

#include <deque>
#include <random>

#include <boost/asio/io_context.hpp>
#include <caf/all.hpp>

#include "net/ws_client.hpp"
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

using clock = std::chrono::steady_clock;

std::int64_t wall_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

struct inflight {
  std::uint64_t last_seq = 0;
  clock::time_point sent;
  frame_expect expect;
};

struct device_state {
  static inline const char* name = "sim-device";
  run_settings cfg;
  tally* t = nullptr;
  std::string id;
  boost::asio::io_context* ioc = nullptr;
  std::shared_ptr<net::ws_client> ws;
  // meter profile
  std::mt19937_64 rng;
  double energy = 0;
  std::uint64_t seq = 0;
  clock::time_point next_tick;
  // replay profile
  std::shared_ptr<const replay_script> script;
  std::size_t next_frame = 0;
  std::size_t errors_seen = 0;  // for the replay frame in flight
  // both
  std::deque<inflight> q;
  std::size_t inflight_readings = 0;
  bool welcomed = false;
  bool stopping = false;
  bool finished = false;
  device_expectation acked;
  std::vector<float> latencies;
  std::map<std::string, std::uint64_t> errors;
  std::string buf;
};

using device_ptr = caf::stateful_actor<device_state>*;

void finish(device_ptr self) {
  auto& st = self->state;
  if (st.finished) return;
  st.finished = true;
  {
    std::lock_guard<std::mutex> guard{st.t->mtx};
    merge_expectation(st.t->expected[st.id], st.acked);
    for (auto& [code, n] : st.errors) st.t->errors[code] += n;
    st.t->latencies_ms.insert(st.t->latencies_ms.end(), st.latencies.begin(), st.latencies.end());
    if (!st.q.empty())
      st.t->problems.push_back(st.id + ": " + std::to_string(st.inflight_readings) +
                               " readings never acked");
  }
  st.t->finished.fetch_add(1);
  if (st.ws) st.ws->close();
  st.ws.reset();
  self->quit();
}

void connect(device_ptr self) {
  auto& st = self->state;
  caf::actor me{self};
  net::ws_client::handlers h;
  h.on_open = [me] { caf::anon_send(me, open_atom::value); };
  h.on_message = [me](std::string_view text) {
    caf::anon_send(me, msg_atom::value, std::string{text});
  };
  h.on_close = [me](const std::string& reason) { caf::anon_send(me, gone_atom::value, reason); };
  st.ws = net::ws_client::create(*st.ioc, std::move(h));
  st.ws->connect(st.cfg.host, st.cfg.port);
}

// meter: voltage, current, power, energy; values that do not repeat, so sums check something.
void build_meter_frame(device_state& st, std::size_t n, inflight& f) {
  auto& b = st.buf;
  b.clear();
  std::normal_distribution<double> noise(0.0, 1.0);
  auto ts = wall_ms();
  bool batch = n > 1;
  if (batch) {
    b += "{\"device\":\"";
    b += st.id;
    b += "\",\"readings\":[";
  }
  for (std::size_t i = 0; i < n; ++i) {
    double voltage = 230.0 + noise(st.rng) * 2.0;
    double current = 5.0 + noise(st.rng) * 0.5;
    double power = voltage * current;
    st.energy += power / 3600.0;
    double values[4] = {voltage, current, power, st.energy};
    static const char* names[4] = {"voltage", "current", "power", "energy"};
    ++st.seq;
    if (i > 0) b += ',';
    b += '{';
    if (!batch) {
      b += "\"device\":\"";
      b += st.id;
      b += "\",";
    }
    b += "\"seq\":";
    wire::append_json_number(b, st.seq);
    b += ",\"ts\":";
    wire::append_json_number(b, static_cast<std::uint64_t>(ts));
    b += ",\"values\":{";
    for (int m = 0; m < 4; ++m) {
      if (m) b += ',';
      b += '"';
      b += names[m];
      b += "\":";
      wire::append_json_number(b, values[m]);
      auto& tot = f.expect.totals.metrics[names[m]];
      tot.count++;
      tot.sum.add(values[m]);
    }
    b += "}}";
  }
  if (batch) b += "]}";
  f.expect.readings = n;
  f.expect.totals.min_ts = std::min(f.expect.totals.min_ts, ts);
  f.expect.totals.max_ts = std::max(f.expect.totals.max_ts, ts);
  f.last_seq = st.seq;
}

void send_meter_frame(device_ptr self) {
  auto& st = self->state;
  inflight f;
  build_meter_frame(st, st.cfg.batch, f);
  f.sent = clock::now();
  st.inflight_readings += f.expect.readings;
  st.t->sent.fetch_add(f.expect.readings, std::memory_order_relaxed);
  st.t->frames_sent.fetch_add(1, std::memory_order_relaxed);
  st.q.push_back(std::move(f));
  st.ws->send(st.buf);
}

void fill_window(device_ptr self) {
  auto& st = self->state;
  while (!st.stopping && st.inflight_readings + st.cfg.batch <= st.cfg.window) send_meter_frame(self);
}

void send_replay_frame(device_ptr self) {
  auto& st = self->state;
  if (st.stopping || !st.q.empty()) return;
  if (st.next_frame >= st.script->frames.size()) {
    finish(self);
    return;
  }
  auto i = st.next_frame++;
  inflight f;
  f.sent = clock::now();
  f.expect = st.script->expect[i];
  st.errors_seen = 0;
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
  auto delay = std::chrono::milliseconds(static_cast<std::int64_t>(std::max<double>(0, gap) / st.cfg.speed));
  self->delayed_send(self, delay, tick_atom::value);
}

void complete_front(device_ptr self) {
  auto& st = self->state;
  auto& f = st.q.front();
  st.latencies.push_back(
    std::chrono::duration<float, std::milli>(clock::now() - f.sent).count());
  merge_expectation(st.acked, f.expect.totals);
  st.t->acked.fetch_add(f.expect.readings, std::memory_order_relaxed);
  st.inflight_readings -= f.expect.readings;
  st.q.pop_front();
}

void on_message(device_ptr self, const std::string& text) {
  auto& st = self->state;
  auto m = parse_server_message(text);
  switch (m.kind) {
    case server_message::welcome:
      if (st.welcomed) return;
      st.welcomed = true;
      if (st.script) {
        send_replay_frame(self);
      } else {
        st.seq = m.seq;  // resume after what the node already holds
        if (st.cfg.rate > 0) {
          st.next_tick = clock::now();
          self->send(self, tick_atom::value);
        } else {
          fill_window(self);
        }
      }
      return;
    case server_message::ack:
      if (st.script) {
        if (!st.q.empty()) complete_front(self);
        schedule_replay(self);
        return;
      }
      while (!st.q.empty() && st.q.front().last_seq <= m.seq) complete_front(self);
      if (st.stopping && st.q.empty()) finish(self);
      else if (st.cfg.rate <= 0) fill_window(self);
      return;
    case server_message::error:
      st.errors[m.code.empty() ? "unknown" : m.code]++;
      if (st.script && !st.q.empty() && st.q.front().expect.readings == 0 &&
          ++st.errors_seen >= st.q.front().expect.errors) {
        st.q.pop_front();  // a frame with nothing valid in it: its errors are its answer
        schedule_replay(self);
      }
      return;
    default:
      st.errors["unreadable_reply"]++;
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
  st.script = std::move(script);
  st.acked.metrics.clear();
  if (start_delay.count() > 0)
    self->delayed_send(self, start_delay, connect_atom::value);
  else
    connect(self);
  return {
    [=](connect_atom) { connect(self); },
    [=](open_atom) {
      auto& st = self->state;
      st.t->connected.fetch_add(1);
      std::string hello = "{\"hello\":{\"device\":\"" + st.id + "\"}}";
      st.ws->send(std::move(hello));
    },
    [=](msg_atom, const std::string& text) { on_message(self, text); },
    [=](gone_atom, const std::string& reason) {
      auto& st = self->state;
      if (st.finished) return;
      st.t->disconnects.fetch_add(1);
      {
        std::lock_guard<std::mutex> guard{st.t->mtx};
        st.t->problems.push_back(st.id + ": connection lost: " + reason);
      }
      st.ws.reset();
      finish(self);
    },
    [=](tick_atom) {
      auto& st = self->state;
      if (st.stopping || !st.ws) return;
      if (st.script) {
        send_replay_frame(self);
        return;
      }
      if (st.inflight_readings + st.cfg.batch <= st.cfg.window) send_meter_frame(self);
      else st.errors["window_full"]++;
      auto period = std::chrono::duration<double>(static_cast<double>(st.cfg.batch) / st.cfg.rate);
      st.next_tick += std::chrono::duration_cast<clock::duration>(period);
      auto delay = std::chrono::duration_cast<std::chrono::microseconds>(st.next_tick - clock::now());
      self->delayed_send(self, std::max(delay, std::chrono::microseconds(0)), tick_atom::value);
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
