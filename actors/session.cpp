// session: one per WebSocket connection. Parses frames (simdjson, on a
// scheduler thread), routes readings to their shards, forwards acks and
// errors to the socket, and pushes back on the socket when too much is
// unacked.

#include <unordered_set>

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include "actors/actors.hpp"
#include "actors/atoms.hpp"
#include "actors/routing.hpp"
#include "wire/codec.hpp"

namespace pulse {

struct session_state {
  static inline const char* name = "session";
  context_ptr ctx;
  std::shared_ptr<session_sink> sink;
  caf::actor router;
  std::string peer;
  std::vector<caf::actor> shards;
  wire::frame_parser parser;
  wire::frame frame;
  std::uint64_t unacked = 0;
  bool reading = true;
  std::unordered_set<std::string> devices;  // seen on this connection (online registry)
  std::vector<std::string> out;             // frames to send, reused

  ~session_state() {
    if (ctx)
      for (auto& d : devices) ctx->online.remove(d);
  }
};

namespace {

using session_ptr = caf::stateful_actor<session_state>*;

void count_error(session_state& st, wire::error_code code) {
  st.ctx->metrics.count_error(code);
}

void send_error(session_state& st, wire::error_code code, std::string message,
                std::optional<std::uint64_t> seq = std::nullopt) {
  count_error(st, code);
  st.sink->send_text(wire::encode_error(wire::wire_error{code, std::move(message), seq}));
}

void update_reading(session_state& st) {
  auto max = st.ctx->settings.session_max_unacked;
  if (st.reading && st.unacked >= max) {
    st.reading = false;
    st.sink->set_reading(false);
  } else if (!st.reading && st.unacked <= max / 2) {
    st.reading = true;
    st.sink->set_reading(true);
  }
}

void handle_hello(session_ptr self, const wire::hello_msg& hello) {
  auto& st = self->state;
  if (st.devices.insert(hello.device).second) st.ctx->online.add(hello.device);
  auto& shard = st.shards[shard_of(hello.device, st.shards.size())];
  auto device = hello.device;
  self->request(shard, st.ctx->settings.query_timeout, last_seq_atom::value, device)
    .then(
      [=](std::uint64_t last_seq) {
        self->state.sink->send_text(
          wire::encode_welcome(self->state.ctx->settings.node_name, device, last_seq));
      },
      [=](caf::error& err) {
        send_error(self->state, wire::error_code::overloaded,
                   "no answer from the shard of " + device + ": " + caf::to_string(err));
      });
}

void handle_frame(session_ptr self, std::string& text) {
  auto& st = self->state;
  auto& m = st.ctx->metrics;
  m.frames_in.fetch_add(1, std::memory_order_relaxed);
  m.bytes_in.fetch_add(text.size(), std::memory_order_relaxed);
  st.parser.parse(text, now_ms(), st.frame);
  auto& f = st.frame;
  if (!f.errors.empty()) {
    st.out.clear();
    for (auto& e : f.errors) {
      count_error(st, e.code);
      st.out.push_back(wire::encode_error(e));
    }
    st.sink->send_texts(std::move(st.out));
    st.out = {};
  }
  if (f.hello) handle_hello(self, *f.hello);
  if (!f.subscribe.empty()) {
    // Register first, then read the snapshot: an update may come before the
    // snapshot, never go missing between them.
    self->send(st.ctx->hub, subscribe_atom::value, f.subscribe);
    self->send(st.ctx->query, subscribe_atom::value, std::move(f.subscribe), caf::actor{self});
  }
  if (!f.unsubscribe.empty())
    self->send(st.ctx->hub, unsubscribe_atom::value, std::move(f.unsubscribe));
  std::uint64_t n = 0;
  for (auto& b : f.batches) {
    if (b.empty()) continue;
    if (st.devices.size() < 4096 && st.devices.insert(b.device).second)
      st.ctx->online.add(b.device);
    n += b.size();
    auto& shard = st.shards[shard_of(b.device, st.shards.size())];
    self->send(shard, write_atom::value, std::move(b));
  }
  if (n > 0) {
    m.readings_in.fetch_add(n, std::memory_order_relaxed);
    st.unacked += n;
    update_reading(st);
  }
}

}  // namespace

caf::behavior session_actor(caf::stateful_actor<session_state>* self, context_ptr ctx,
                            std::shared_ptr<session_sink> sink, caf::actor router,
                            std::string peer) {
  auto& st = self->state;
  st.ctx = ctx;
  st.sink = std::move(sink);
  st.router = router;
  st.peer = std::move(peer);
  self->send(router, join_atom::value, caf::actor{self});
  // Frames wait in the mailbox until the shard table is here.
  self->request(router, std::chrono::seconds(10), shards_atom::value)
    .await(
      [=](std::vector<caf::actor>& shards) { self->state.shards = std::move(shards); },
      [=](caf::error& err) {
        spdlog::error("session {}: no shard table: {}", self->state.peer, caf::to_string(err));
        self->state.sink->close(1013, "node not ready");
        self->quit();
      });
  return {
    [=](frame_atom, std::string& text) { handle_frame(self, text); },
    [=](ack_atom, ack_list& acks, std::uint64_t count) {
      auto& st = self->state;
      st.out.clear();
      for (auto& [device, seq] : acks) st.out.push_back(wire::encode_ack(device, seq));
      st.ctx->metrics.acks_out.fetch_add(acks.size(), std::memory_order_relaxed);
      if (!st.out.empty()) st.sink->send_texts(std::move(st.out));
      st.out = {};
      st.unacked -= std::min(st.unacked, count);
      update_reading(st);
    },
    [=](reject_atom, std::string& device, std::uint64_t count, std::string& why) {
      auto& st = self->state;
      auto msg = device.empty() ? std::to_string(count) + " readings not stored: " + why
                                : std::to_string(count) + " readings of " + device +
                                    " not stored: " + why;
      send_error(st, wire::error_code::overloaded, std::move(msg));
      st.unacked -= std::min(st.unacked, count);
      update_reading(st);
    },
    [=](shard_up_atom, std::uint64_t index, caf::actor& shard) {
      if (index < self->state.shards.size()) self->state.shards[index] = shard;
    },
    [=](update_atom, std::string& text) { self->state.sink->send_text(std::move(text)); },
    [=](closed_atom) { self->quit(); },
  };
}

caf::actor spawn_session(caf::actor_system& sys, context_ptr ctx,
                         std::shared_ptr<session_sink> sink, caf::actor router, std::string peer) {
  return sys.spawn(session_actor, std::move(ctx), std::move(sink), std::move(router),
                   std::move(peer));
}

}  // namespace pulse
