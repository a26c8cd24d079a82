// hub: live pub/sub. Shards publish the newest reading of every device they
// flushed; the hub pushes it to the sessions whose subscriptions match (exact
// id or trailing-* prefix). Snapshots come from storage (the query actor), so
// the hub keeps no copy of every device's latest values.


#include <algorithm>

#include <caf/all.hpp>

#include "actors/actors.hpp"
#include "actors/atoms.hpp"
#include "wire/codec.hpp"

namespace pulse {

struct hub_state {
  static inline const char* name = "hub";
  context_ptr ctx;
  struct subscriber {
    caf::actor session;
    std::vector<std::string> patterns;
  };
  std::unordered_map<caf::actor_id, subscriber> subscribers;
};

namespace {

using hub_ptr = caf::stateful_actor<hub_state>*;

bool matches(const std::string& pattern, const std::string& device) {
  if (!pattern.empty() && pattern.back() == '*')
    return device.compare(0, pattern.size() - 1, pattern, 0, pattern.size() - 1) == 0;
  return pattern == device;
}

bool matches_any(const std::vector<std::string>& patterns, const std::string& device) {
  for (auto& p : patterns)
    if (matches(p, device)) return true;
  return false;
}

// Sends each matching subscriber of this node an update frame.
void push(hub_ptr self, const std::vector<latest_value>& values) {
  auto& st = self->state;
  auto now = now_ms();
  for (auto& v : values) {
    for (auto& [id, sub] : st.subscribers) {
      if (!matches_any(sub.patterns, v.device)) continue;
      std::string msg = "{\"update\":{";
      append_live_entry(msg, v.device, v.ts, v.values, std::max<std::int64_t>(0, now - v.received_ms));
      msg += "}}";
      self->send(sub.session, update_atom::value, std::move(msg));
    }
  }
}

void update_count(hub_ptr self) {
  self->state.ctx->subscribers.store(self->state.subscribers.size());
}

}  // namespace

caf::behavior hub_actor(hub_ptr self, context_ptr ctx) {
  self->state.ctx = std::move(ctx);
  self->set_down_handler([=](caf::down_msg& dm) {
    auto& subs = self->state.subscribers;
    for (auto i = subs.begin(); i != subs.end(); ++i)
      if (i->second.session.address() == dm.source) {
        subs.erase(i);
        break;
      }
    update_count(self);
  });
  return {
    [=](subscribe_atom, std::vector<std::string>& patterns) {
      auto& st = self->state;
      auto session = caf::actor_cast<caf::actor>(self->current_sender());
      if (!session) return;
      auto& sub = st.subscribers[session.id()];
      if (!sub.session) {
        sub.session = session;
        self->monitor(session);
      }
      for (auto& p : patterns)
        if (std::find(sub.patterns.begin(), sub.patterns.end(), p) == sub.patterns.end())
          sub.patterns.push_back(p);
      update_count(self);
    },
    [=](unsubscribe_atom, std::vector<std::string>& patterns) {
      auto& subs = self->state.subscribers;
      auto i = subs.find(caf::actor_cast<caf::actor>(self->current_sender()).id());
      if (i == subs.end()) return;
      auto& mine = i->second.patterns;
      for (auto& p : patterns) mine.erase(std::remove(mine.begin(), mine.end(), p), mine.end());
      if (mine.empty()) subs.erase(i);
      update_count(self);
    },
    [=](publish_atom, std::vector<latest_value>& values) {
      auto& ctx = *self->state.ctx;
      const bool replicated = ctx.settings.cluster.replicas > 1;
      const bool peers = ctx.peer_subscribers.load() > 0;
      std::shared_ptr<const std::vector<member_info>> members;
      if (replicated || peers) members = ctx.live_members();
      // With replicas every replica flushes a device's readings: only its
      // first live replica (its owner) publishes them, or subscribers would
      // get each update once per replica.
      if (replicated) {
        values.erase(std::remove_if(values.begin(), values.end(),
                                    [&](const latest_value& v) {
                                      return owner_of(v.device, *members).member != 0;
                                    }),
                     values.end());
        if (values.empty()) return;
      }
      // From this node's shards: to the members with subscribers too.
      if (peers)
        for (auto i = std::next(members->begin()); i != members->end(); ++i)
          if (i->subscribers > 0 && i->hub) self->send(i->hub, update_atom::value, values);
      push(self, values);
    },
    [=](update_atom, std::vector<latest_value>& values) { push(self, values); },
  };
}

caf::actor spawn_hub(caf::actor_system& sys, context_ptr ctx) {
  return sys.spawn(hub_actor, std::move(ctx));
}

}  // namespace pulse
