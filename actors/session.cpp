// session: one per WebSocket connection. Parses frames (simdjson, on a
// scheduler thread), routes readings to their shards, forwards acks and
// errors to the socket, and pushes back on the socket when too much is
// unacked. Keeps what it sent in a write_window until acked and resends a
// shard's part of it when the supervisor restarts that shard.
//
// Admission: a shard holding more than batch.max-pending unanswered readings
// makes the session answer `overloaded` for the whole frame and close with
// 1013. Closing (rather than going on) keeps acks honest: nothing after the
// refused frame is stored from this connection, so the client's resume from
// `last_seq` after reconnecting resends exactly what was refused.

#include <unordered_set>

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include "actors/actors.hpp"
#include "actors/atoms.hpp"
#include "actors/routing.hpp"
#include "actors/write_window.hpp"
#include "wire/codec.hpp"

namespace pulse {

struct session_state {
  static inline const char* name = "session";
  context_ptr ctx;
  std::shared_ptr<session_sink> sink;
  caf::actor router;
  std::string peer;
  wire::frame_parser parser;
  wire::frame frame;
  write_window window;  // the shard table, and what is unacked at each shard
  bool reading = true;
  bool shed = false;      // refused a frame for overload, or unauthorized; closing
  bool authed = false;    // auth on: a hello with a good token was seen
  auth::grant grant;      // auth on: what that token may do
  bool stopping = false;  // node shutting down: frames are no longer taken
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

// Stops reading the socket (TCP pushes back on the client) while this session
// has session.max-unacked readings in flight (until acks bring it under half),
// or while it waits for a shard that holds over half of batch.max-pending:
// then each session keeps at most one round in flight to it, so a busy shard
// slows its writers down long before anyone has to be shed.
void update_reading(session_state& st) {
  auto max = st.ctx->settings.session_max_unacked;
  auto unacked = st.window.readings();
  bool pause = st.reading ? unacked >= max : unacked > max / 2;
  auto soft = st.ctx->settings.batch_max_pending / 2;
  for (std::size_t i = 0; !pause && i < st.window.shards(); ++i)
    pause = st.window.waiting_on(i) && st.window.load(i) > soft;
  if (st.reading == !pause) return;
  st.reading = !pause;
  st.sink->set_reading(st.reading);
}

// Answers a hello with the device's durable last_seq. Asks again (a few
// times) when the shard does not answer, e.g. while it is being restarted.
void handle_hello(session_ptr self, std::string device, int attempt = 0) {
  auto& st = self->state;
  if (st.devices.insert(device).second) st.ctx->online.add(device);
  auto& shard = st.window.shard(shard_of(device, st.window.shards()));
  self->request(shard, st.ctx->settings.query_timeout, last_seq_atom::value, device)
    .then(
      [=](std::uint64_t last_seq) {
        self->state.sink->send_text(
          wire::encode_welcome(self->state.ctx->settings.node_name, device, last_seq));
      },
      [=](caf::error& err) {
        if (attempt < 5) {
          self->delayed_send(self, std::chrono::milliseconds(200), retry_atom::value, device,
                             attempt + 1);
          return;
        }
        send_error(self->state, wire::error_code::overloaded,
                   "no answer from the shard of " + device + ": " + caf::to_string(err));
      });
}

// Refuses the frame's readings when a shard they go to is over batch.max-pending.
bool admit(session_ptr self, const wire::frame& f) {
  auto& st = self->state;
  auto limit = st.ctx->settings.batch_max_pending;
  for (auto& b : f.batches) {
    if (b.empty()) continue;
    auto i = shard_of(b.device, st.window.shards());
    // An idle shard takes any frame, so one bigger than the limit still gets in.
    auto load = st.window.load(i);
    if (load == 0 || load + b.size() <= limit) continue;
    std::optional<std::uint64_t> seq;
    if (b.rows.front().has_seq) seq = b.rows.front().seq;
    send_error(st, wire::error_code::overloaded,
               "shard " + std::to_string(i) + " is over batch.max-pending; " +
                 std::to_string(f.readings()) +
                 " readings of this frame not taken; reconnect and resume from last_seq",
               seq);
    st.shed = true;
    st.ctx->metrics.connections_shed.fetch_add(1, std::memory_order_relaxed);
    st.sink->close(1013, "overloaded");
    return false;
  }
  return true;
}

// Auth on: a frame before a good hello, a bad token, or a device the token
// does not cover ends the connection with `unauthorized` and 1008.
void refuse(session_state& st, const std::string& why) {
  send_error(st, wire::error_code::unauthorized, why);
  st.shed = true;
  st.sink->close(1008, "unauthorized");
}

// With auth on, checks the frame against the connection's token; false if
// the connection has been refused.
bool authorize(session_ptr self, const wire::frame& f) {
  auto& st = self->state;
  auto& tokens = st.ctx->settings.tokens;
  if (!tokens) return true;
  if (f.hello) {
    auto g = tokens->find(f.hello->token);
    bool ok = !g.none() && (f.hello->device.empty() ? g.may_read() : g.may_write(f.hello->device) || g.may_read());
    if (!ok) {
      refuse(st, f.hello->token.empty() ? "hello needs a token (auth is on)"
                                        : "the token is unknown or not valid for this device");
      return false;
    }
    st.authed = true;
    st.grant = std::move(g);
  }
  if (!st.authed) {
    if (f.readings() > 0 || !f.subscribe.empty() || !f.unsubscribe.empty() || !f.errors.empty()) {
      refuse(st, "send a hello with a token first (auth is on)");
      return false;
    }
    return true;
  }
  for (auto& b : f.batches)
    if (!b.empty() && !st.grant.may_write(b.device)) {
      refuse(st, "the token may not write readings of " + b.device);
      return false;
    }
  if (!f.subscribe.empty() && !st.grant.may_read()) {
    refuse(st, "subscribing needs a reader token");
    return false;
  }
  return true;
}

void handle_frame(session_ptr self, std::string& text) {
  auto& st = self->state;
  if (st.shed || st.stopping) return;
  auto& m = st.ctx->metrics;
  m.frames_in.fetch_add(1, std::memory_order_relaxed);
  m.bytes_in.fetch_add(text.size(), std::memory_order_relaxed);
  st.parser.parse(text, now_ms(), st.frame);
  auto& f = st.frame;
  if (!authorize(self, f)) return;
  if (!f.errors.empty()) {
    st.out.clear();
    for (auto& e : f.errors) {
      count_error(st, e.code);
      st.out.push_back(wire::encode_error(e));
    }
    st.sink->send_texts(std::move(st.out));
    st.out = {};
  }
  if (f.hello) {
    if (!f.hello->device.empty()) {
      handle_hello(self, f.hello->device);
    } else {  // a reader's hello: nothing to resume
      std::string w = "{\"welcome\":{\"node\":";
      wire::append_json_string(w, st.ctx->settings.node_name);
      w += "}}";
      st.sink->send_text(std::move(w));
    }
  }
  if (!f.subscribe.empty()) {
    // Register first, then read the snapshot: an update may come before the
    // snapshot, never go missing between them.
    self->send(st.ctx->hub, subscribe_atom::value, f.subscribe);
    self->send(st.ctx->query, subscribe_atom::value, std::move(f.subscribe), caf::actor{self});
  }
  if (!f.unsubscribe.empty())
    self->send(st.ctx->hub, unsubscribe_atom::value, std::move(f.unsubscribe));
  auto n = f.readings();
  if (n == 0 || !admit(self, f)) return;
  for (auto& b : f.batches) {
    if (b.empty()) continue;
    if (st.devices.size() < 4096 && st.devices.insert(b.device).second)
      st.ctx->online.add(b.device);
    st.window.send(self, shard_of(b.device, st.window.shards()), std::move(b));
  }
  m.readings_in.fetch_add(n, std::memory_order_relaxed);
  update_reading(st);
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
      [=](std::vector<caf::actor>& shards) {
        self->state.window.start(std::move(shards), self->state.ctx->shard_load.get());
      },
      [=](caf::error& err) {
        spdlog::error("session {}: no shard table: {}", self->state.peer, caf::to_string(err));
        self->state.sink->close(1013, "node not ready");
        self->quit();
      });
  return {
    [=](frame_atom, std::string& text) { handle_frame(self, text); },
    [=](ack_atom, std::uint64_t shard, ack_list& acks, std::uint64_t ticket) {
      auto& st = self->state;
      st.out.clear();
      for (auto& [device, seq] : acks) st.out.push_back(wire::encode_ack(device, seq));
      st.ctx->metrics.acks_out.fetch_add(acks.size(), std::memory_order_relaxed);
      if (!st.out.empty()) st.sink->send_texts(std::move(st.out));
      st.out = {};
      st.window.ack(shard, ticket);
      update_reading(st);
    },
    [=](reject_atom, std::string& device, std::uint64_t count, std::string& why) {
      send_error(self->state, wire::error_code::invalid_reading,
                 std::to_string(count) + " readings of " + device + " not stored: " + why);
    },
    [=](shard_up_atom, std::uint64_t index, caf::actor& shard) {
      // The old instance lost what it had not flushed: the window sends it all
      // again, in order. Readings it did store are deduplicated by seq.
      self->state.window.restarted(self, index, std::move(shard));
    },
    [=](retry_atom, std::string& device, int attempt) { handle_hello(self, device, attempt); },
    [=](stop_atom) {
      // Acks queued before this message have gone to the socket by now.
      self->state.stopping = true;
      return true;
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
