// session: one per WebSocket connection, in two parts.
//
// The ingest path runs on the connection's strand: net/ hands it each text
// frame in place (no copy), it parses it (simdjson), checks auth and
// admission, and sends the readings straight to their shards; the shards
// answer it (shard_writer) after their flush with one post per connection
// per flush, and it writes the acks. So a reading crosses threads twice
// (strand -> shard, shard -> strand), not four times through an actor.
// It keeps what it sent in a write_window until acked and resends a shard's
// part of it when the supervisor restarts that shard, and pushes back on the
// socket when too much is unacked.
//
// The session actor does what is not per reading: hellos (it asks the shard
// for last_seq), subscriptions and live updates, shard-table changes from the
// router (posted on to the ingest path), and stop.
//
// Admission: a shard holding more than batch.max-pending unanswered readings
// makes the ingest path answer `overloaded` for the whole frame and close
// with 1013. Closing (rather than going on) keeps acks honest: nothing after
// the refused frame is stored from this connection, so the client's resume
// from `last_seq` after reconnecting resends exactly what was refused.

#include <unordered_set>

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include "actors/actors.hpp"
#include "actors/atoms.hpp"
#include "actors/routing.hpp"
#include "actors/write_window.hpp"
#include "wire/codec.hpp"

namespace pulse {

namespace {

// Counts the error and sends it as an `error` frame (the connection stays open).
void send_error(node_context& ctx, session_sink& sink, wire::error_code code, std::string message,
                std::optional<std::uint64_t> seq = std::nullopt) {
  ctx.metrics.count_error(code);
  sink.send_text(wire::encode_error(wire::wire_error{code, std::move(message), seq}));
}

// Lifecycle: created with the connection, owned by its bridge handle and by
// the session actor. Concurrency: every member function runs on the
// connection's strand (frame() is called there by net/; the others are
// posted there through the sink), except the constructor and destructor.
class ingest_path : public std::enable_shared_from_this<ingest_path> {
 public:
  ingest_path(context_ptr ctx, std::shared_ptr<session_sink> sink, std::string peer)
      : ctx_(std::move(ctx)), sink_(std::move(sink)), peer_(std::move(peer)) {}

  ~ingest_path() {
    for (auto& d : devices_) ctx_->online.remove(d);
  }

  void bind(caf::actor session) { session_ = std::move(session); }

  void frame(std::string_view text) {
    if (shed_ || ctx_->stopping.load(std::memory_order_relaxed)) return;
    if (!window_.started()) {
      // The shard table is on its way from the router: keep the frame and
      // stop reading until it is here (only the first frames can race it).
      early_.emplace_back(text);
      sink_->set_reading(false);
      return;
    }
    handle(text);
  }

  void start(std::vector<caf::actor> shards) {
    window_.start(std::move(shards), *ctx_, make_writer());
    auto early = std::move(early_);
    early_.clear();
    for (auto& text : early)
      if (!shed_) handle(text);
    update_reading(true);
  }

  void restarted(std::size_t index, caf::actor shard) {
    // The old instance lost what it had not flushed: the window sends it all
    // again, in order. Readings it did store are deduplicated by seq.
    if (window_.started()) window_.restarted(index, std::move(shard));
  }

  // Shard `index` is down for good (past supervisor.max-restarts): what this
  // connection has unacked there will never be answered. Refused like an
  // overload, with the seq of the first reading not stored.
  void shard_down(std::size_t index) {
    if (shed_ || !window_.started() || !window_.waiting_on(index)) return;
    refuse_down(index, window_.first_seq(index));
  }

  void acked(std::uint64_t shard, const ack_list& acks, std::uint64_t ticket) {
    if (acks.size() == 1) {
      sink_->send_text(wire::encode_ack(acks[0].first, acks[0].second));
    } else if (!acks.empty()) {
      std::vector<std::string> out;
      out.reserve(acks.size());
      for (auto& [device, seq] : acks) out.push_back(wire::encode_ack(device, seq));
      sink_->send_texts(std::move(out));
    }
    ctx_->metrics.acks_out.fetch_add(acks.size(), std::memory_order_relaxed);
    window_.ack(shard, ticket);
    update_reading();
  }

  void rejected(const std::string& device, std::uint64_t count, const std::string& why) {
    if (auto n = ctx_->metrics.refused_log.admit())
      spdlog::warn("ws {}: {} readings of {} not stored: {} ({} such in the last second)", peer_,
                   count, device, why, n);
    send_error(wire::error_code::invalid_reading,
               std::to_string(count) + " readings of " + device + " not stored: " + why);
  }

  // Shard `shard` dropped what this connection had unacked there: storage
  // refuses writes. Like an overload: say so with the seq of the first
  // reading not stored and close, so that resume starts exactly there.
  void refused(std::uint64_t shard, const std::string& why) {
    if (shed_) return;
    refuse_storage(why, window_.first_seq(static_cast<std::size_t>(shard)));
  }

 private:
  // What the shards answer: posts onto the strand; holds the path weakly (the
  // window that carries it belongs to the path).
  class writer final : public shard_writer {
   public:
    writer(std::weak_ptr<ingest_path> path, std::shared_ptr<session_sink> sink)
        : path_(std::move(path)), sink_(std::move(sink)) {}
    void acked(std::uint64_t shard, ack_list acks, std::uint64_t ticket) override {
      sink_->post([p = path_, shard, acks = std::move(acks), ticket] {
        if (auto path = p.lock()) path->acked(shard, acks, ticket);
      });
    }
    void rejected(std::string device, std::uint64_t count, std::string why) override {
      sink_->post([p = path_, device = std::move(device), count, why = std::move(why)] {
        if (auto path = p.lock()) path->rejected(device, count, why);
      });
    }
    void refused(std::uint64_t shard, std::string why) override {
      sink_->post([p = path_, shard, why = std::move(why)] {
        if (auto path = p.lock()) path->refused(shard, why);
      });
    }

   private:
    std::weak_ptr<ingest_path> path_;
    std::shared_ptr<session_sink> sink_;
  };

  writer_ptr make_writer() { return std::make_shared<writer>(weak_from_this(), sink_); }

  void send_error(wire::error_code code, std::string message,
                  std::optional<std::uint64_t> seq = std::nullopt) {
    pulse::send_error(*ctx_, *sink_, code, std::move(message), seq);
  }

  // Stops reading the socket (TCP pushes back on the client) while this
  // connection has session.max-unacked readings in flight (until acks bring
  // it under half), or while it waits for a shard that holds over half of
  // batch.max-pending: then each connection keeps at most one round in flight
  // to it, so a busy shard slows its writers down long before anyone has to
  // be shed.
  void update_reading(bool force = false) {
    auto max = ctx_->settings.session_max_unacked;
    auto unacked = window_.readings();
    bool pause = reading_ ? unacked >= max : unacked > max / 2;
    auto soft = ctx_->settings.batch_max_pending / 2;
    for (std::size_t i = 0; !pause && i < window_.shards(); ++i)
      pause = window_.waiting_on(i) && window_.load(i) > soft;
    if (!force && reading_ == !pause) return;
    reading_ = !pause;
    sink_->set_reading(reading_);
  }

  void refuse_storage(const std::string& why, std::optional<std::uint64_t> seq) {
    send_error(wire::error_code::storage_unavailable,
               "storage cannot take writes now (" + why +
                 "); nothing from this seq on was stored; reconnect and resume from last_seq",
               seq);
    shed_ = true;
    sink_->close(1013, "storage unavailable");
  }

  void refuse_down(std::size_t index, std::optional<std::uint64_t> seq) {
    send_error(wire::error_code::overloaded,
               "shard " + std::to_string(index) +
                 " is down (failed past supervisor.max-restarts); nothing from this seq on was "
                 "stored; the node needs a restart",
               seq);
    shed_ = true;
    sink_->close(1013, "shard down");
  }

  // Refuses the frame's readings while storage refuses writes, when a shard
  // they go to is down for good, or over batch.max-pending.
  bool admit(const wire::frame& f, const slot_router& route) {
    if (!ctx_->storage.writable()) {
      std::optional<std::uint64_t> seq;
      for (auto& b : f.batches)
        if (!b.empty() && b.rows.front().has_seq) {
          seq = b.rows.front().seq;
          break;
        }
      // Anything still unacked from this connection goes with it: resume
      // from last_seq covers both.
      for (std::size_t i = 0; i < window_.shards(); ++i)
        if (auto s = window_.first_seq(i)) seq = s;
      refuse_storage(ctx_->storage.reason(), seq);
      return false;
    }
    auto limit = ctx_->settings.batch_max_pending;
    for (auto& b : f.batches) {
      if (b.empty()) continue;
      auto i = route(b.device);
      if (ctx_->shard_down[i].load(std::memory_order_relaxed)) {
        auto seq = window_.first_seq(i);
        if (!seq && b.rows.front().has_seq) seq = b.rows.front().seq;
        refuse_down(i, seq);
        return false;
      }
      // An idle shard takes any frame, so one bigger than the limit still gets in.
      auto load = window_.load(i);
      if (load == 0 || load + b.size() <= limit) continue;
      std::optional<std::uint64_t> seq;
      if (b.rows.front().has_seq) seq = b.rows.front().seq;
      send_error(wire::error_code::overloaded,
                 "shard " + std::to_string(i) + " is over batch.max-pending; " +
                   std::to_string(f.readings()) +
                   " readings of this frame not taken; reconnect and resume from last_seq",
                 seq);
      shed_ = true;
      ctx_->metrics.connections_shed.fetch_add(1, std::memory_order_relaxed);
      if (auto n = ctx_->metrics.shed_log.admit())
        spdlog::warn("ws {}: shed with 1013: shard {} is over batch.max-pending ({} sheds in the "
                     "last second)", peer_, i, n);
      sink_->close(1013, "overloaded");
      return false;
    }
    return true;
  }

  // Auth on: a frame before a good hello, a bad token, or a device the token
  // does not cover ends the connection with `unauthorized` and 1008.
  void refuse(const std::string& why) {
    if (auto n = ctx_->metrics.auth_log.admit())
      spdlog::warn("ws {}: unauthorized, closed with 1008: {} ({} auth failures in the last second)",
                   peer_, why, n);
    send_error(wire::error_code::unauthorized, why);
    shed_ = true;
    sink_->close(1008, "unauthorized");
  }

  // With auth on, checks the frame against the connection's token; false if
  // the connection has been refused.
  bool authorize(const wire::frame& f) {
    auto& tokens = ctx_->settings.tokens;
    if (!tokens) return true;
    if (f.hello) {
      auto g = tokens->find(f.hello->token);
      bool ok = !g.none() && (f.hello->device.empty() ? g.may_read()
                                                      : g.may_write(f.hello->device) || g.may_read());
      if (!ok) {
        refuse(f.hello->token.empty() ? "hello needs a token (auth is on)"
                                      : "the token is unknown or not valid for this device");
        return false;
      }
      authed_ = true;
      grant_ = std::move(g);
    }
    if (!authed_) {
      if (f.readings() > 0 || !f.subscribe.empty() || !f.unsubscribe.empty() || !f.errors.empty()) {
        refuse("send a hello with a token first (auth is on)");
        return false;
      }
      return true;
    }
    for (auto& b : f.batches)
      if (!b.empty() && !grant_.may_write(b.device)) {
        refuse("the token may not write readings of " + b.device);
        return false;
      }
    if (!f.subscribe.empty() && !grant_.may_read()) {
      refuse("subscribing needs a reader token");
      return false;
    }
    return true;
  }

  void note_device(const std::string& device) {
    if (devices_.size() < 4096 && devices_.insert(device).second) ctx_->online.add(device);
  }

  void handle(std::string_view text) {
    auto& m = ctx_->metrics;
    m.frames_in.fetch_add(1, std::memory_order_relaxed);
    m.bytes_in.fetch_add(text.size(), std::memory_order_relaxed);
    // One parser per I/O thread, not per connection: a parser's reusable
    // buffers (simdjson's among them) are ~10 KB, and a frame is parsed and
    // handed on before the next one on this thread.
    thread_local wire::frame_parser parser;
    thread_local wire::frame frame;
    parser.parse(text, now_ms(), frame);
    auto& f = frame;
    if (!authorize(f)) return;
    if (!f.errors.empty()) {
      if (auto n = m.refused_log.admit())
        spdlog::info("ws {}: refused: {} ({} refusals in the last second)", peer_,
                     f.errors.front().message, n);
      std::vector<std::string> out;
      out.reserve(f.errors.size());
      for (auto& e : f.errors) {
        m.count_error(e.code);
        out.push_back(wire::encode_error(e));
      }
      sink_->send_texts(std::move(out));
    }
    if (f.hello) {
      if (!f.hello->device.empty()) {
        note_device(f.hello->device);
        caf::anon_send(session_, hello_atom::value, f.hello->device);
      } else {  // a reader's hello: nothing to resume
        std::string w = "{\"welcome\":{\"node\":";
        wire::append_json_string(w, ctx_->settings.node_name);
        w += "}}";
        sink_->send_text(std::move(w));
      }
    }
    if (!f.subscribe.empty()) caf::anon_send(session_, subscribe_atom::value, std::move(f.subscribe));
    if (!f.unsubscribe.empty())
      caf::anon_send(session_, unsubscribe_atom::value, std::move(f.unsubscribe));
    auto n = f.readings();
    if (n == 0) return;
    slot_router route{*ctx_, window_};
    if (!admit(f, route)) return;
    for (auto& b : f.batches) {
      if (b.empty()) continue;
      note_device(b.device);
      window_.send(route(b.device), std::move(b));
    }
    m.readings_in.fetch_add(n, std::memory_order_relaxed);
    update_reading();
  }

  context_ptr ctx_;
  std::shared_ptr<session_sink> sink_;
  caf::actor session_;
  write_window window_;  // the shard table, and what is unacked at each shard
  std::vector<std::string> early_;  // frames that came before the shard table
  bool reading_ = true;
  bool shed_ = false;    // refused a frame for overload, or unauthorized; closing
  bool authed_ = false;  // auth on: a hello with a good token was seen
  auth::grant grant_;    // auth on: what that token may do
  std::unordered_set<std::string> devices_;  // seen on this connection (online registry)
  std::string peer_;  // address:port, for logs
};

struct session_state {
  static inline const char* name = "session";
  context_ptr ctx;
  std::shared_ptr<session_sink> sink;
  std::shared_ptr<ingest_path> path;
  std::vector<caf::actor> shards;  // for hellos; the ingest path has its own copy
};

using session_ptr = caf::stateful_actor<session_state>*;

// In a cluster: the highest last_seq any live member holds for the device
// (its owner now, and whoever owned it before), asked of every owner endpoint.
void cluster_hello(session_ptr self, std::string device, int attempt) {
  auto members = self->state.ctx->live_members();
  struct gather {
    std::size_t left = 0;
    std::uint64_t best = 0;
    std::size_t answered = 0;
    std::string failure;
  };
  auto g = std::make_shared<gather>();
  for (auto& m : *members)
    if (m.owner) ++g->left;
  auto done = [=] {
    if (--g->left > 0) return;
    if (g->answered == 0) {
      if (attempt < 5) {
        self->delayed_send(self, std::chrono::milliseconds(200), retry_atom::value, device,
                           attempt + 1);
        return;
      }
      send_error(*self->state.ctx, *self->state.sink, wire::error_code::overloaded,
                 "no member answered for " + device + ": " + g->failure);
      return;
    }
    self->state.sink->send_text(
      wire::encode_welcome(self->state.ctx->settings.node_name, device, g->best));
  };
  if (g->left == 0) {
    ++g->left;
    g->failure = "no owner endpoint yet";
    done();
    return;
  }
  for (auto& m : *members) {
    if (!m.owner) continue;
    self->request(m.owner, self->state.ctx->settings.query_timeout, last_seq_atom::value, device)
      .then(
        [=](std::uint64_t seq) {
          g->best = std::max(g->best, seq);
          ++g->answered;
          done();
        },
        [=](caf::error& err) {
          g->failure = caf::to_string(err);
          done();
        });
  }
}

// Answers a hello with the device's durable last_seq. Asks again (a few
// times) when the shard does not answer, e.g. while it is being restarted.
void handle_hello(session_ptr self, std::string device, int attempt = 0) {
  auto& st = self->state;
  if (st.ctx->settings.cluster.enabled()) return cluster_hello(self, std::move(device), attempt);
  if (st.shards.empty()) {  // the table is not here yet
    self->delayed_send(self, std::chrono::milliseconds(20), retry_atom::value, device, attempt);
    return;
  }
  auto index = shard_of(device, st.shards.size());
  if (st.ctx->shard_down[index].load()) {
    send_error(*st.ctx, *st.sink, wire::error_code::overloaded,
               "the shard of " + device + " is down (failed past supervisor.max-restarts)");
    return;
  }
  auto& shard = st.shards[index];
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
        send_error(*self->state.ctx, *self->state.sink, wire::error_code::overloaded,
                   "no answer from the shard of " + device + ": " + caf::to_string(err));
      });
}

caf::behavior session_actor(session_ptr self, context_ptr ctx, std::shared_ptr<session_sink> sink,
                            std::shared_ptr<ingest_path> path, caf::actor router,
                            std::string peer) {
  auto& st = self->state;
  st.ctx = ctx;
  st.sink = std::move(sink);
  st.path = std::move(path);
  self->send(router, join_atom::value, caf::actor{self});
  self->request(router, std::chrono::seconds(10), shards_atom::value)
    .then(
      [=](std::vector<caf::actor>& shards) {
        auto& st = self->state;
        st.shards = shards;
        st.sink->post([p = st.path, shards = std::move(shards)]() mutable {
          p->start(std::move(shards));
        });
      },
      [=](caf::error& err) {
        spdlog::error("session {}: no shard table: {}", peer, caf::to_string(err));
        self->state.sink->close(1013, "node not ready");
        self->quit();
      });
  return {
    [=](hello_atom, std::string& device) { handle_hello(self, std::move(device)); },
    [=](retry_atom, std::string& device, int attempt) { handle_hello(self, device, attempt); },
    [=](subscribe_atom, std::vector<std::string>& patterns) {
      // Register first, then read the snapshot: an update may come before the
      // snapshot, never go missing between them.
      self->send(self->state.ctx->hub, subscribe_atom::value, patterns);
      self->send(self->state.ctx->query, subscribe_atom::value, std::move(patterns),
                 caf::actor{self});
    },
    [=](unsubscribe_atom, std::vector<std::string>& patterns) {
      self->send(self->state.ctx->hub, unsubscribe_atom::value, std::move(patterns));
    },
    [=](shard_up_atom, std::uint64_t index, caf::actor& shard) {
      auto& st = self->state;
      if (index < st.shards.size()) st.shards[index] = shard;
      st.sink->post([p = st.path, index, shard]() mutable { p->restarted(index, std::move(shard)); });
    },
    [=](shard_down_atom, std::uint64_t index) {
      self->state.sink->post([p = self->state.path, index] { p->shard_down(index); });
    },
    [=](stop_atom) { return true; },
    [=](update_atom, std::string& text) { self->state.sink->send_text(std::move(text)); },
    [=](closed_atom) { self->quit(); },
  };
}

class session_handle final : public bridge::session {
 public:
  session_handle(std::shared_ptr<ingest_path> path, caf::actor a)
      : path_(std::move(path)), actor_(std::move(a)) {}
  ~session_handle() override { closed(); }
  void frame(std::string_view text) override {
    if (path_) path_->frame(text);
  }
  void closed() override {
    if (actor_) {
      caf::anon_send(actor_, closed_atom::value);
      actor_ = nullptr;
    }
    path_.reset();
  }

 private:
  std::shared_ptr<ingest_path> path_;
  caf::actor actor_;
};

}  // namespace

std::unique_ptr<bridge::session> open_session(caf::actor_system& sys, context_ptr ctx,
                                              std::shared_ptr<session_sink> sink,
                                              caf::actor router, std::string peer) {
  auto path = std::make_shared<ingest_path>(ctx, sink, peer);
  auto a = sys.spawn(session_actor, std::move(ctx), std::move(sink), path, std::move(router),
                     std::move(peer));
  path->bind(a);
  return std::make_unique<session_handle>(std::move(path), std::move(a));
}

}  // namespace pulse
