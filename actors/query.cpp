// query: serves HTTP GETs from RocksDB (detached: reads block).
// ingest: one short-lived actor per POST /api/v1/readings; answers once every
// reading of the body is durable.

#include <caf/all.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "actors/actors.hpp"
#include "actors/atoms.hpp"
#include "actors/query_api.hpp"
#include "actors/routing.hpp"
#include "actors/write_window.hpp"
#include "wire/codec.hpp"

namespace pulse {

// A prefix subscription's snapshot holds at most this many devices.
constexpr std::size_t max_snapshot_devices = 1000;

struct query_state {
  static inline const char* name = "query";
  context_ptr ctx;
  api::query_context qctx;
};

caf::behavior query_actor(caf::stateful_actor<query_state>* self, context_ptr ctx) {
  auto& st = self->state;
  st.ctx = ctx;
  st.qctx.db = ctx->db.get();
  st.qctx.node_name = ctx->settings.node_name;
  node_context* raw = ctx.get();
  st.qctx.online = [raw](std::string_view device) { return raw->online.contains(device); };
  return {
    [=](query_atom, const std::string& method, const std::string& target, http_callback& done) {
      http_reply reply;
      try {
        auto a = api::handle_query(self->state.qctx, method, target);
        reply.status = a.status;
        reply.content_type = std::move(a.content_type);
        reply.body = std::move(a.body);
      } catch (const std::exception& e) {
        // A query must never take the node's query actor down with it.
        spdlog::error("query: {} {} failed: {}", method, target, e.what());
        auto a = api::json_error(500, "internal", e.what());
        reply.status = a.status;
        reply.body = std::move(a.body);
      }
      done(std::move(reply));
    },
    [=](subscribe_atom, const std::vector<std::string>& patterns, const caf::actor& session) {
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
};

namespace {

using ingest_ptr = caf::stateful_actor<ingest_state>*;

void answer(ingest_ptr self, int status, std::string body) {
  auto& st = self->state;
  if (st.answered) return;
  st.answered = true;
  st.done(http_reply{status, "application/json", std::move(body)});
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
  nlohmann::json j;
  j["accepted"] = st.accepted;
  j["acks"] = std::move(st.acks);
  answer(self, 200, j.dump());
}

}  // namespace

caf::behavior ingest_actor(caf::stateful_actor<ingest_state>* self, context_ptr ctx,
                           caf::actor router, std::string body, std::optional<auth::grant> writer,
                           http_callback done) {
  auto& st = self->state;
  st.ctx = ctx;
  st.done = std::move(done);
  auto frame = std::make_shared<wire::frame>();
  {
    wire::frame_parser parser;
    parser.parse_body(body, now_ms(), *frame);
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
        // All or nothing here too: refuse the body if a shard it needs is full.
        std::vector<std::uint64_t> need(n_shards);
        for (auto& b : frame->batches) need[shard_of(b.device, n_shards)] += b.size();
        for (std::size_t i = 0; i < need.size(); ++i)
          if (auto load = st.window.load(i);
              need[i] > 0 && load > 0 && load + need[i] > st.ctx->settings.batch_max_pending) {
            st.ctx->metrics.count_error(wire::error_code::overloaded);
            if (auto n = st.ctx->metrics.shed_log.admit())
              spdlog::warn("POST /api/v1/readings shed: shard {} is over batch.max-pending ({} sheds "
                           "in the last second)", i, n);
            answer_error(self, 503, wire::error_code::overloaded,
                         "shard " + std::to_string(i) + " is over batch.max-pending; nothing stored, retry later");
            return;
          }
        for (auto& b : frame->batches) {
          if (b.empty()) continue;
          st.accepted += b.size();
          st.window.send(shard_of(b.device, n_shards), std::move(b));
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
    [=](stop_atom) -> bool { return true; },  // node stopping (router asks every writer)
    [=](timeout_atom) {
      answer_error(self, 503, wire::error_code::overloaded,
                   "timed out waiting for the write to become durable");
    },
  };
}

caf::actor spawn_query(caf::actor_system& sys, context_ptr ctx) {
  return sys.spawn<caf::detached>(query_actor, std::move(ctx));
}

void spawn_ingest(caf::actor_system& sys, context_ptr ctx, caf::actor router, std::string body,
                  std::optional<auth::grant> writer, http_callback done) {
  sys.spawn(ingest_actor, std::move(ctx), std::move(router), std::move(body), std::move(writer),
            std::move(done));
}

}  // namespace pulse
