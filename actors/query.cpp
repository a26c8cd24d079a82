// query: serves HTTP GETs from RocksDB (detached: reads block).
// ingest: one short-lived actor per POST /api/v1/readings; answers once every
// reading of the body is durable.

#include <atomic>
#include <memory>
#include <thread>
#include <unordered_map>

#include <caf/all.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "actors/actors.hpp"
#include "actors/atoms.hpp"
#include "actors/query_api.hpp"
#include "actors/routing.hpp"
#include "actors/write_window.hpp"
#include "wire/codec.hpp"
#include "wire/line_protocol.hpp"

namespace pulse {

// A prefix subscription's snapshot holds at most this many devices.
constexpr std::size_t max_snapshot_devices = 1000;

// GETs running at once; more are answered 503 (each runs on a thread of its own).
constexpr std::size_t max_running_queries = 32;

// One GET's answer, given once: by its worker, or by the query actor with a
// 503 when query.timeout passes first.
// The callback holds the HTTP connection: it is released as soon as it has
// answered (else the connection lived on in `pending` until query.timeout,
// and one destroyed with the query actor after the server's io_context at
// shutdown corrupted the heap: seen in three core dumps).
struct pending_query {
  std::atomic<bool> answered{false};
  http_callback done;
  void answer(http_reply r) {
    if (answered.exchange(true)) return;
    auto cb = std::move(done);  // only the thread that won the exchange touches it
    done = nullptr;
    cb(std::move(r));
  }
};

struct query_state {
  static inline const char* name = "query";
  context_ptr ctx;
  api::query_context qctx;
  std::uint64_t next_id = 0;
  // GETs not yet past their deadline, by id (the timeout message names it).
  std::unordered_map<std::uint64_t, std::shared_ptr<pending_query>> pending;
  std::shared_ptr<std::atomic<std::size_t>> running = std::make_shared<std::atomic<std::size_t>>(0);
};

namespace {

http_reply to_reply(api::http_answer a) {
  return http_reply{a.status, std::move(a.content_type), std::move(a.body), std::move(a.headers)};
}

// Runs one GET on a detached actor (a thread of its own): a slow fleet query
// then holds only itself, never the GETs behind it.
// `ctx` keeps the store (qctx points into it) alive for as long as the worker
// runs, also past the node's shutdown.
void run_query(caf::actor_system& sys, context_ptr ctx, api::query_context qctx, http_request req,
               std::shared_ptr<pending_query> p,
               std::shared_ptr<std::atomic<std::size_t>> running) {
  // ctx goes in as the spawn's argument, not a capture: CAF 0.17 binds a
  // reference through a null pointer for a function actor spawned without
  // arguments, which UBSan reports (and halts on in scripts/sanitize.sh).
  sys.spawn<caf::detached>([qctx = std::move(qctx), req = std::move(req), p = std::move(p),
                            running = std::move(running)](caf::event_based_actor*, context_ptr) {
    http_reply reply;
    if (req.debug_delay.count() > 0) std::this_thread::sleep_for(req.debug_delay);
    try {
      reply = to_reply(api::handle_query(qctx, req.method, req.target, req.accept));
    } catch (const std::exception& e) {
      spdlog::error("query: {} {} failed: {}", req.method, req.target, e.what());
      reply = to_reply(api::json_error(500, "internal", e.what()));
    }
    p->answer(std::move(reply));
    running->fetch_sub(1);
  }, std::move(ctx));
}

// Cluster: a subscription's snapshot from every live member: each asked for
// the matching devices' records with their latest values (the device list
// or record with partials=1), and each device's newest kept. A member that
// does not answer within 90% of query.timeout is left out: the snapshot is
// a convenience, the updates that follow are what a subscriber relies on.
void cluster_snapshot(caf::stateful_actor<query_state>* self,
                      const std::vector<std::string>& patterns, const caf::actor& session) {
  struct entry {
    std::int64_t ts = 0;
    std::vector<std::pair<std::string, double>> values;
  };
  struct gather {
    std::map<std::string, entry> latest;
    std::size_t left = 1;  // one for the loops below
    caf::actor session;
  };
  auto g = std::make_shared<gather>();
  g->session = session;
  auto finish = [self, g] {
    if (--g->left > 0) return;
    std::string snap = "{\"snapshot\":{";
    std::size_t n = 0;
    for (auto& [device, e] : g->latest) {
      if (n++ == max_snapshot_devices) break;
      if (n > 1) snap += ',';
      append_live_entry(snap, device, e.ts, e.values, -1);
    }
    snap += "}}";
    self->send(g->session, update_atom::value, std::move(snap));
  };
  auto take = [g](const nlohmann::json& rec) {
    if (!rec.is_object() || !rec["latest"].is_object()) return;
    auto id = rec.value("id", std::string{});
    auto ts = rec["latest"].value("ts", std::int64_t{0});
    auto& e = g->latest[id];
    if (!e.values.empty() && e.ts >= ts) return;
    e.ts = ts;
    e.values.clear();
    if (rec["latest"]["values"].is_object())
      for (auto& [name, v] : rec["latest"]["values"].items())
        if (v.is_number()) e.values.emplace_back(name, v.get<double>());
  };
  auto timeout = std::max(self->state.ctx->settings.query_timeout * 9 / 10,
                          std::chrono::milliseconds(1));
  auto members = self->state.ctx->live_members();
  for (auto& p : patterns) {
    bool prefix = !p.empty() && p.back() == '*';
    auto stem = prefix ? p.substr(0, p.size() - 1) : p;
    // Device ids and prefixes are URL-safe; anything else matches nothing.
    if ((!stem.empty() || !prefix) && !valid_device_id(stem)) continue;
    auto target = prefix ? "/api/v1/devices?limit=" + std::to_string(max_snapshot_devices) +
                             (stem.empty() ? "" : "&prefix=" + stem) + "&partials=1"
                         : "/api/v1/devices/" + stem + "?partials=1";
    for (auto& m : *members) {
      if (!m.query) continue;
      ++g->left;
      self->request(m.query, timeout, query_atom::value, target)
        .then(
          [=](std::int32_t status, std::string& body) {
            if (status == 200) {
              auto j = nlohmann::json::parse(body, nullptr, false);
              if (prefix && j.is_object() && j["devices"].is_array())
                for (auto& rec : j["devices"]) take(rec);
              else if (!prefix && j.is_object() && j.value("found", true)) take(j);
            }
            finish();
          },
          [=](caf::error&) { finish(); });
    }
  }
  finish();
}

// Cluster: a device or fleet aggregate asked of every live member (their
// partial answers merged here, rendered once). A member that is down, or does
// not answer within 90% of query.timeout, is named in "missing" and makes the
// answer "partial":true; a 4xx of a member (a bad request) is the answer.
void fan_out(caf::stateful_actor<query_state>* self, http_request req, http_callback done) {
  auto& st = self->state;
  struct gather {
    std::vector<std::pair<std::string, std::string>> answers;  // (member, body)
    std::vector<std::string> bodies;
    std::vector<std::string> missing;
    std::optional<http_reply> refused;
    std::size_t left = 1;  // one for the loop below
    http_request req;
    http_callback done;
  };
  auto g = std::make_shared<gather>();
  g->missing = *st.ctx->down_members();
  g->req = std::move(req);
  g->done = std::move(done);
  auto qctx = st.qctx;
  auto finish = [g, qctx]() mutable {
    if (--g->left > 0) return;
    if (g->refused) {
      g->done(std::move(*g->refused));
      return;
    }
    std::sort(g->missing.begin(), g->missing.end());
    // Merged in member order whatever order they answered in: first/last
    // ties (same ts and seq on two members) then break the same way on
    // every node.
    std::sort(g->answers.begin(), g->answers.end());
    for (auto& a : g->answers) g->bodies.push_back(std::move(a.second));
    qctx.member_answers = &g->bodies;
    qctx.missing = g->missing;
    g->done(to_reply(api::handle_query(qctx, g->req.method, g->req.target, g->req.accept)));
  };
  auto timeout = std::max(st.ctx->settings.query_timeout * 9 / 10, std::chrono::milliseconds(1));
  auto target = api::cluster_target(g->req.target);
  auto members = st.ctx->live_members();
  for (auto& m : *members) {
    if (!m.query) {
      g->missing.push_back(m.name);
      continue;
    }
    ++g->left;
    auto name = m.name;
    self->request(m.query, timeout, query_atom::value, target)
      .then(
        [=](std::int32_t status, std::string& body) mutable {
          if (status == 200) g->answers.emplace_back(name, std::move(body));
          else if (status >= 400 && status < 500 && !g->refused)
            g->refused = http_reply{status, "application/json", std::move(body), {}};
          else g->missing.push_back(name);
          finish();
        },
        [=](caf::error&) mutable {
          g->missing.push_back(name);
          finish();
        });
  }
  finish();
}

}  // namespace

caf::behavior query_actor(caf::stateful_actor<query_state>* self, context_ptr ctx) {
  auto& st = self->state;
  st.ctx = ctx;
  st.qctx.db = ctx->db.get();
  st.qctx.node_name = ctx->settings.node_name;
  st.qctx.replicas = ctx->settings.cluster.replicas;
  node_context* raw = ctx.get();
  st.qctx.online = [raw](std::string_view device) { return raw->online.contains(device); };
  st.qctx.clock = [raw] { return raw->now(); };
  return {
    [=](query_atom, http_request& req, http_callback& done) {
      auto& st = self->state;
      if (st.ctx->settings.cluster.enabled() && req.method == "GET" &&
          api::cluster_mergeable(req.target))
        return fan_out(self, std::move(req), std::move(done));
      auto timeout = st.ctx->settings.query_timeout;
      if (st.running->load() >= max_running_queries) {
        done(to_reply(api::json_error(503, "overloaded",
                                      std::to_string(max_running_queries) +
                                        " queries are running; retry later")));
        return;
      }
      auto p = std::make_shared<pending_query>();
      p->done = std::move(done);
      auto id = st.next_id++;
      st.pending.emplace(id, p);
      self->delayed_send(self, timeout, timeout_atom::value, id);
      auto qctx = st.qctx;
      qctx.deadline = std::chrono::steady_clock::now() + timeout;
      st.running->fetch_add(1);
      run_query(self->system(), st.ctx, std::move(qctx), std::move(req), std::move(p), st.running);
    },
    [=](stop_atom) -> bool {
      // Node stopping: GETs still running are answered now, while the
      // server can still send, and their connections released.
      for (auto& [id, p] : self->state.pending)
        p->answer(to_reply(api::json_error(503, "overloaded", "the node is shutting down")));
      self->state.pending.clear();
      return true;
    },
    [=](timeout_atom, std::uint64_t id) {
      auto& pending = self->state.pending;
      auto i = pending.find(id);
      if (i == pending.end()) return;
      auto p = std::move(i->second);
      pending.erase(i);
      if (p->answered.load()) return;
      self->state.ctx->metrics.count_error(wire::error_code::overloaded);
      p->answer(to_reply(api::json_error(
        503, "overloaded",
        "the query did not finish within query.timeout (" +
          std::to_string(self->state.ctx->settings.query_timeout.count()) + " ms)")));
    },
    [=](subscribe_atom, const std::vector<std::string>& patterns, const caf::actor& session) {
      if (self->state.ctx->settings.cluster.enabled()) {
        cluster_snapshot(self, patterns, session);
        return;
      }
      // The snapshot: each matching device's latest values, from `meta`.
      auto& db = *self->state.ctx->db;
      std::string snap = "{\"snapshot\":{";
      bool first = true;
      auto add = [&](const storage::device_record& r) {
        if (r.latest.empty()) return;
        if (!first) snap += ',';
        first = false;
        append_live_entry(snap, r.id, r.latest_ts, r.latest, -1);
      };
      storage::status st;
      for (auto& p : patterns) {
        if (!p.empty() && p.back() == '*') {
          for (auto& r : db.list_devices(std::string_view{p}.substr(0, p.size() - 1), "",
                                         max_snapshot_devices, st))
            add(r);
        } else if (auto r = db.load_device(p, st)) {
          add(*r);
        }
      }
      snap += "}}";
      self->send(session, update_atom::value, std::move(snap));
    },
  };
}

struct ingest_state {
  static inline const char* name = "ingest";
  context_ptr ctx;
  http_callback done;
  write_window window;  // the shard table; resent to a shard that restarts before it acks
  std::uint64_t accepted = 0;
  std::uint64_t rejected = 0;
  std::string reject_reason;
  nlohmann::json acks = nlohmann::json::array();
  bool answered = false;
  bool no_content = false;  // line protocol: 204 without a body (what InfluxDB answers)
};

namespace {

using ingest_ptr = caf::stateful_actor<ingest_state>*;

void answer(ingest_ptr self, int status, std::string body) {
  auto& st = self->state;
  if (st.answered) return;
  st.answered = true;
  st.done(http_reply{status, "application/json", std::move(body), {}});
  self->quit();
}

void answer_error(ingest_ptr self, int status, wire::error_code code, const std::string& msg) {
  answer(self, status, wire::encode_error(code, msg));
}

void maybe_finish(ingest_ptr self) {
  auto& st = self->state;
  if (!st.window.empty()) return;
  if (st.rejected > 0) {
    st.ctx->metrics.count_error(wire::error_code::invalid_reading);
    answer_error(self, 400, wire::error_code::invalid_reading,
                 std::to_string(st.rejected) + " of " + std::to_string(st.accepted) +
                   " readings not stored: " + st.reject_reason);
    return;
  }
  if (st.no_content) {
    answer(self, 204, {});
    return;
  }
  nlohmann::json j;
  j["accepted"] = st.accepted;
  j["acks"] = std::move(st.acks);
  answer(self, 200, j.dump());
}

}  // namespace

caf::behavior ingest_actor(caf::stateful_actor<ingest_state>* self, context_ptr ctx,
                           caf::actor router, http_request req, std::optional<auth::grant> writer,
                           http_callback done) {
  auto& st = self->state;
  st.ctx = ctx;
  st.done = std::move(done);
  auto frame = std::make_shared<wire::frame>();
  auto path = std::string_view(req.target).substr(0, req.target.find('?'));
  if (path == "/write" || path == "/api/v2/write") {
    // InfluxDB line protocol (Telegraf): same path to the shards, 204 once durable.
    std::int64_t ns_per_unit = 1;
    if (auto bad = api::parse_write_params(req.target, path != "/write", ns_per_unit)) {
      answer(self, bad->status, std::move(bad->body));
      return {};
    }
    st.no_content = true;
    wire::parse_line_protocol(req.body, ns_per_unit, ctx->now(), *frame);
  } else {
    wire::frame_parser parser;
    parser.parse_body(req.body, ctx->now(), *frame);
  }
  // All or nothing: a body with a bad reading stores none of it, so that a
  // client can fix the body and post it again without creating duplicates.
  if (!frame->errors.empty()) {
    auto& e = frame->errors.front();
    ctx->metrics.count_error(e.code);
    if (auto n = ctx->metrics.refused_log.admit())
      spdlog::info("POST /api/v1/readings refused: {} ({} refusals in the last second)", e.message, n);
    std::string msg = std::to_string(frame->errors.size()) + " bad reading(s), nothing stored; first: " +
                      e.message;
    answer_error(self, e.code == wire::error_code::too_large ? 413 : 400, e.code, msg);
    return {};
  }
  if (frame->readings() == 0) {
    answer_error(self, 400, wire::error_code::invalid_reading, "the body holds no readings");
    return {};
  }
  if (writer)
    for (auto& b : frame->batches)
      if (!writer->may_write(b.device)) {
        ctx->metrics.count_error(wire::error_code::unauthorized);
        if (auto n = ctx->metrics.auth_log.admit())
          spdlog::warn("POST /api/v1/readings: the token may not write {} ({} auth failures in the "
                       "last second)", b.device, n);
        answer_error(self, 401, wire::error_code::unauthorized,
                     "the token may not write readings of " + b.device + "; nothing stored");
        return {};
      }
  if (!ctx->storage.writable()) {
    ctx->metrics.count_error(wire::error_code::storage_unavailable);
    answer_error(self, 503, wire::error_code::storage_unavailable,
                 "storage cannot take writes now (" + ctx->storage.reason() +
                   "); nothing stored, retry later");
    return {};
  }
  self->delayed_send(self, ctx->settings.query_timeout, timeout_atom::value);
  self->send(router, join_atom::value, caf::actor{self});
  self->request(router, std::chrono::seconds(10), shards_atom::value)
    .await(
      [=](std::vector<caf::actor>& shards) {
        auto& st = self->state;
        st.window.start(std::move(shards), *st.ctx,
                        make_actor_writer(caf::actor_cast<caf::actor>(self)));
        auto n_shards = st.window.shards();
        slot_router route{*st.ctx, st.window};
        // All or nothing here too: refuse the body if a shard it needs is full.
        std::vector<std::uint64_t> need(n_shards);
        for (auto& b : frame->batches) need[route(b.device)] += b.size();
        for (std::size_t i = 0; i < need.size(); ++i) {
          if (need[i] == 0) continue;
          if (st.ctx->shard_down[i].load()) {
            st.ctx->metrics.count_error(wire::error_code::overloaded);
            answer_error(self, 503, wire::error_code::overloaded,
                         "shard " + std::to_string(i) +
                           " is down (failed past supervisor.max-restarts); nothing stored");
            return;
          }
          if (auto load = st.window.load(i);
              load > 0 && load + need[i] > st.ctx->settings.batch_max_pending) {
            st.ctx->metrics.count_error(wire::error_code::overloaded);
            if (auto n = st.ctx->metrics.shed_log.admit())
              spdlog::warn("POST /api/v1/readings shed: shard {} is over batch.max-pending ({} sheds "
                           "in the last second)", i, n);
            answer_error(self, 503, wire::error_code::overloaded,
                         "shard " + std::to_string(i) + " is over batch.max-pending; nothing stored, retry later");
            return;
          }
        }
        for (auto& b : frame->batches) {
          if (b.empty()) continue;
          st.accepted += b.size();
          st.window.send(route(b.device), std::move(b));
        }
        st.ctx->metrics.readings_in.fetch_add(st.accepted);
      },
      [=](caf::error& err) {
        answer_error(self, 503, wire::error_code::overloaded, "node not ready");
      });
  return {
    [=](ack_atom, std::uint64_t shard, ack_list& acks, std::uint64_t ticket) {
      auto& st = self->state;
      for (auto& [device, seq] : acks) st.acks.push_back({{"device", device}, {"seq", seq}});
      st.window.ack(shard, ticket);
      maybe_finish(self);
    },
    [=](reject_atom, std::string&, std::uint64_t count, std::string& why) {
      auto& st = self->state;
      st.rejected += count;
      st.reject_reason = why;
    },
    [=](refuse_atom, std::uint64_t, std::string& why) {
      // Nothing of this body is acked past this point; some devices of it may
      // be stored already (other shards): a retry is deduplicated by seq.
      self->state.ctx->metrics.count_error(wire::error_code::storage_unavailable);
      answer_error(self, 503, wire::error_code::storage_unavailable,
                   "storage cannot take writes now (" + why + "); retry later");
    },
    [=](shard_up_atom, std::uint64_t index, caf::actor& shard) {
      self->state.window.restarted(index, std::move(shard));
    },
    [=](shard_down_atom, std::uint64_t index) {
      // Nothing of this body is acked past this point; what other shards
      // stored is deduplicated by seq on a retry.
      if (index >= self->state.window.shards() || !self->state.window.waiting_on(index)) return;
      self->state.ctx->metrics.count_error(wire::error_code::overloaded);
      answer_error(self, 503, wire::error_code::overloaded,
                   "shard " + std::to_string(index) +
                     " is down (failed past supervisor.max-restarts); retry after a restart");
    },
    [=](stop_atom) -> bool { return true; },  // node stopping (router asks every writer)
    [=](timeout_atom) {
      answer_error(self, 503, wire::error_code::overloaded,
                   "timed out waiting for the write to become durable");
    },
  };
}

void spawn_backup(caf::actor_system& sys, context_ptr ctx, http_request req, http_callback done) {
  // ctx as an argument, not a capture: see run_query.
  sys.spawn<caf::detached>([req = std::move(req), done = std::move(done)](
                             caf::event_based_actor*, context_ptr ctx) {
    auto a = api::handle_backup(*ctx->db, req.target, req.body, ctx->settings.storage_path);
    if (a.status == 200) spdlog::info("backup: {}", a.body);
    else spdlog::warn("backup refused or failed: {}", a.body);
    done(to_reply(std::move(a)));
  }, std::move(ctx));
}

// Answers coordinators' partial GETs, each on a detached worker (reads block).
query_peer_actor::behavior_type query_peer_actor_fn(query_peer_actor::pointer self,
                                                    context_ptr ctx) {
  return {
    [=](query_atom, std::string& target) -> caf::result<std::int32_t, std::string> {
      auto rp = self->make_response_promise<std::int32_t, std::string>();
      api::query_context qctx;
      qctx.db = ctx->db.get();
      qctx.node_name = ctx->settings.node_name;
      qctx.replicas = ctx->settings.cluster.replicas;
      node_context* raw = ctx.get();
      qctx.online = [raw](std::string_view device) { return raw->online.contains(device); };
      qctx.clock = [raw] { return raw->now(); };
      qctx.deadline = std::chrono::steady_clock::now() + ctx->settings.query_timeout;
      self->system().spawn<caf::detached>(
        [qctx = std::move(qctx), target = std::move(target)](caf::event_based_actor*,
                                                              context_ptr,
                                                              decltype(rp) rp) mutable {
          api::http_answer a;
          try {
            a = api::handle_query(qctx, "GET", target, "");
          } catch (const std::exception& e) {
            a = api::json_error(500, "internal", e.what());
          }
          rp.deliver(static_cast<std::int32_t>(a.status), std::move(a.body));
        },
        ctx, rp);
      return rp;
    },
  };
}

query_peer_actor spawn_query_peer(caf::actor_system& sys, context_ptr ctx) {
  return sys.spawn(query_peer_actor_fn, std::move(ctx));
}

caf::actor spawn_query(caf::actor_system& sys, context_ptr ctx) {
  return sys.spawn<caf::detached>(query_actor, std::move(ctx));
}

void spawn_ingest(caf::actor_system& sys, context_ptr ctx, caf::actor router, http_request req,
                  std::optional<auth::grant> writer, http_callback done) {
  sys.spawn(ingest_actor, std::move(ctx), std::move(router), std::move(req), std::move(writer),
            std::move(done));
}

}  // namespace pulse
