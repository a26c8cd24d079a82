// supervisor and router: the shard table and who keeps it alive.

#include <deque>
#include <unordered_set>

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include "actors/actors.hpp"
#include "actors/atoms.hpp"
#include "wire/codec.hpp"

namespace pulse {

struct supervisor_state {
  static inline const char* name = "supervisor";
  context_ptr ctx;
  caf::actor router;
  std::vector<caf::actor> shards;
  std::deque<std::chrono::steady_clock::time_point> restarts;
  bool stopping = false;
  std::size_t alive = 0;  // shards running (a shard left down when unhealthy is not)
  caf::response_promise stop_promise;
};

namespace {

// Fault injection: makes shard n throw. false when off, stopping or no such shard.
bool crash(caf::stateful_actor<supervisor_state>* self, std::uint64_t n) {
  auto& st = self->state;
  if (!st.ctx->settings.fault_injection || st.stopping || n >= st.shards.size()) return false;
  self->send(st.shards[n], crash_atom::value);
  return true;
}

}  // namespace

caf::behavior supervisor_actor(caf::stateful_actor<supervisor_state>* self, context_ptr ctx,
                               caf::actor router) {
  auto& st = self->state;
  st.ctx = ctx;
  st.router = router;
  for (std::size_t i = 0; i < ctx->settings.shards; ++i)
    st.shards.push_back(spawn_shard(self->system(), ctx, i));
  for (auto& s : st.shards) self->monitor(s);
  st.alive = st.shards.size();
  self->send(router, shards_atom::value, st.shards);
  self->set_down_handler([=](caf::down_msg& dm) {
    auto& st = self->state;
    auto i = std::find_if(st.shards.begin(), st.shards.end(),
                          [&](const caf::actor& a) { return a.address() == dm.source; });
    if (i == st.shards.end()) return;
    auto index = static_cast<std::size_t>(i - st.shards.begin());
    --st.alive;
    if (st.stopping) {
      if (st.alive == 0) st.stop_promise.deliver(true);
      return;
    }
    spdlog::error("supervisor: shard {} died ({})", index, caf::to_string(dm.reason));
    auto now = std::chrono::steady_clock::now();
    st.restarts.push_back(now);
    while (!st.restarts.empty() && now - st.restarts.front() > st.ctx->settings.supervisor_window)
      st.restarts.pop_front();
    if (st.restarts.size() > st.ctx->settings.supervisor_max_restarts) {
      // Restarting in a loop helps nobody: report unhealthy and leave it down.
      // Its writers are told (through the router) and admission refuses
      // readings for it from now on: nothing waits on a handle that never answers.
      st.ctx->healthy = false;
      st.ctx->shard_down[index].store(true);
      spdlog::critical("supervisor: {} restarts within {} ms, shard {} left down, node marked "
                       "unhealthy; readings for its devices are refused (overloaded)",
                       st.restarts.size(), st.ctx->settings.supervisor_window.count(), index);
      self->send(st.router, shard_down_atom::value, static_cast<std::uint64_t>(index));
      return;
    }
    *i = spawn_shard(self->system(), st.ctx, index);
    self->monitor(*i);
    ++st.alive;
    st.ctx->metrics.shard_restarts.fetch_add(1);
    self->send(st.router, shard_up_atom::value, static_cast<std::uint64_t>(index), *i);
  });
  return {
    [=](stop_atom) -> caf::result<bool> {
      auto& st = self->state;
      st.stopping = true;
      if (st.alive == 0) return true;
      st.stop_promise = self->make_response_promise();
      for (auto& s : st.shards) self->send(s, stop_atom::value);
      return st.stop_promise;
    },
    [=](shards_atom) -> bool { return self->state.ctx->healthy.load(); },
    [=](crash_atom, std::uint64_t n) -> bool { return crash(self, n); },
    [=](crash_atom, std::uint64_t n, http_callback& done) {
      if (crash(self, n)) {
        done(http_reply{202, "application/json", "{\"crashed\":" + std::to_string(n) + "}", {}});
        return;
      }
      auto body = wire::encode_error("not_found", "no shard " + std::to_string(n) +
                                                     " to crash, or debug.fault-injection is off");
      done(http_reply{404, "application/json", std::move(body), {}});
    },
  };
}

struct router_state {
  static inline const char* name = "router";
  std::vector<caf::actor> shards;
  std::unordered_set<caf::actor> sessions;
  std::vector<caf::response_promise> waiting;  // asked before the table arrived
  caf::actor forwarder;  // cluster only: the last slot of the table
};

// Takes the node context although it needs nothing from it: CAF 0.17 binds a
// reference through a null pointer when it spawns a function actor without
// arguments (UBSan reports it in init_fun_factory.hpp).
caf::behavior router_actor(caf::stateful_actor<router_state>* self, context_ptr,
                           caf::actor forwarder) {
  self->state.forwarder = std::move(forwarder);
  self->set_down_handler([=](caf::down_msg& dm) {
    auto& s = self->state.sessions;
    for (auto i = s.begin(); i != s.end(); ++i)
      if (i->address() == dm.source) {
        s.erase(i);
        break;
      }
  });
  return {
    [=](shards_atom, std::vector<caf::actor>& shards) {
      self->state.shards = std::move(shards);
      if (self->state.forwarder) self->state.shards.push_back(self->state.forwarder);
      for (auto& rp : self->state.waiting) rp.deliver(self->state.shards);
      self->state.waiting.clear();
    },
    [=](shards_atom) -> caf::result<std::vector<caf::actor>> {
      if (!self->state.shards.empty()) return self->state.shards;
      self->state.waiting.push_back(self->make_response_promise());
      return self->state.waiting.back();
    },
    [=](shard_up_atom, std::uint64_t index, caf::actor& shard) {
      auto& st = self->state;
      if (index >= st.shards.size()) return;
      st.shards[index] = shard;
      for (auto& s : st.sessions) self->send(s, shard_up_atom::value, index, shard);
    },
    [=](shard_down_atom, std::uint64_t index) {
      for (auto& s : self->state.sessions) self->send(s, shard_down_atom::value, index);
    },
    [=](join_atom, caf::actor& session) {
      self->monitor(session);
      self->state.sessions.insert(session);
    },
    [=](stop_atom) -> caf::result<bool> {
      // Every session answers after the acks already in its mailbox: once all
      // have, every ack of the last flushes is on its way to the sockets.
      auto& st = self->state;
      if (st.sessions.empty()) return true;
      auto rp = self->make_response_promise();
      auto left = std::make_shared<std::size_t>(st.sessions.size());
      for (auto& s : st.sessions)
        self->request(s, std::chrono::seconds(5), stop_atom::value)
          .then([=](bool) mutable { if (--*left == 0) rp.deliver(true); },
                [=](caf::error&) mutable { if (--*left == 0) rp.deliver(true); });
      return rp;
    },
  };
}

caf::actor spawn_supervisor(caf::actor_system& sys, context_ptr ctx, caf::actor router) {
  return sys.spawn(supervisor_actor, std::move(ctx), std::move(router));
}

caf::actor spawn_router(caf::actor_system& sys, context_ptr ctx, caf::actor forwarder) {
  return sys.spawn(router_actor, std::move(ctx), std::move(forwarder));
}

}  // namespace pulse
