// owner: a node's endpoint for the devices it owns in a cluster
// (cluster_settings::enabled). Forwarders of every member (this one's too)
// send it the readings of its devices in batches, one request per
// destination and drain; it puts them in its shards' inboxes through one
// write window of its own and answers each request once every shard it went
// to has acked it, with the durable seq of each of its devices. So the ack a
// client gets on any node means the owner's write returned OK.
//
// It also answers last_seq for a device from the device's shard here (the
// welcome asks every live member and takes the highest).
//
// Lifecycle: spawned by the bridge in cluster mode, stopped with the other
// actors. Concurrency: one event-based actor; the shards answer it through
// an actor writer (messages, never calls).

#include <deque>
#include <unordered_map>

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include "actors/actors.hpp"
#include "actors/atoms.hpp"
#include "actors/routing.hpp"
#include "actors/write_window.hpp"

namespace pulse {

namespace {

// One request: the tickets it holds at each shard, and its devices.
struct owner_request {
  caf::typed_response_promise<ack_list> promise;
  std::vector<std::pair<std::size_t, std::uint64_t>> last_ticket;  // (shard, ticket)
  std::vector<std::string> devices;
};

}  // namespace

struct owner_state {
  static inline const char* name = "owner";
  context_ptr ctx;
  write_window window;
  std::vector<caf::actor> shards;  // for last_seq
  std::uint64_t name_hash = 0;
  std::vector<std::uint64_t> acked;  // per shard: the highest ticket acked
  std::deque<owner_request> requests;
  std::unordered_map<std::string, std::uint64_t> durable;  // device -> seq, while requested
  std::unordered_map<std::string, std::size_t> refs;       // device -> requests naming it
  std::vector<std::pair<std::vector<reading_batch>, caf::typed_response_promise<ack_list>>> early;
};

namespace {

using owner_ptr = owner_actor::stateful_pointer<owner_state>;

void release(owner_state& st, const std::vector<std::string>& devices) {
  for (auto& d : devices)
    if (auto i = st.refs.find(d); i != st.refs.end() && --i->second == 0) {
      st.refs.erase(i);
      st.durable.erase(d);
    }
}

// Answers every request whose shards have all acked it.
void settle(owner_ptr self) {
  auto& st = self->state;
  for (auto i = st.requests.begin(); i != st.requests.end();) {
    bool done = true;
    for (auto& [shard, ticket] : i->last_ticket)
      if (st.acked[shard] < ticket) {
        done = false;
        break;
      }
    if (!done) {
      ++i;
      continue;
    }
    ack_list acks;
    acks.reserve(i->devices.size());
    for (auto& d : i->devices)
      if (auto j = st.durable.find(d); j != st.durable.end()) acks.emplace_back(d, j->second);
    i->promise.deliver(std::move(acks));
    release(st, i->devices);
    i = st.requests.erase(i);
  }
}

// Answers `why` to every request still waiting at `shard` and forgets what
// waits there: it will not be acked (storage refused it, or the shard is down
// for good). The forwarders send it again later.
void fail_shard(owner_ptr self, std::uint64_t shard, const std::string& why) {
  auto& st = self->state;
  for (auto i = st.requests.begin(); i != st.requests.end();) {
    bool there = std::any_of(i->last_ticket.begin(), i->last_ticket.end(), [&](auto& x) {
      return x.first == shard && st.acked[shard] < x.second;
    });
    if (!there) {
      ++i;
      continue;
    }
    i->promise.deliver(caf::make_error(caf::sec::request_receiver_down, why));
    release(st, i->devices);
    i = st.requests.erase(i);
  }
  st.window.drop(static_cast<std::size_t>(shard));
}

void write(owner_ptr self, std::vector<reading_batch>& batches,
           caf::typed_response_promise<ack_list> rp) {
  auto& st = self->state;
  auto shards = st.ctx->settings.shards;
  if (!st.ctx->storage.writable()) {
    rp.deliver(caf::make_error(caf::sec::request_receiver_down,
                               "storage refuses writes: " + st.ctx->storage.reason()));
    return;
  }
  for (auto& b : batches)
    if (!b.empty() && st.ctx->shard_down[member_shard_of(b.device, st.name_hash, shards)].load()) {
      rp.deliver(caf::make_error(caf::sec::request_receiver_down,
                                 "the shard of " + b.device + " is down (failed past "
                                 "supervisor.max-restarts)"));
      return;
    }
  // Credit from the owner's shards: a write that would put a shard here past
  // batch.max-pending is refused whole (an idle shard takes any), and the
  // sender's forwarder, which keeps it, sends it again 100 ms later. So
  // readings forwarded from other members count against the same limit as
  // this node's own sessions, and wait at their sender when it is reached.
  std::vector<std::uint64_t> need(shards, 0);
  for (auto& b : batches)
    if (!b.empty()) need[member_shard_of(b.device, st.name_hash, shards)] += b.size();
  for (std::size_t i = 0; i < shards; ++i) {
    auto load = st.window.load(i);
    if (need[i] > 0 && load > 0 && load + need[i] > st.ctx->settings.batch_max_pending) {
      st.ctx->metrics.owner_refused.fetch_add(1, std::memory_order_relaxed);
      rp.deliver(caf::make_error(caf::sec::request_receiver_down,
                                 "shard " + std::to_string(i) + " of " +
                                   st.ctx->settings.node_name + " is over batch.max-pending"));
      return;
    }
  }
  owner_request r;
  r.promise = std::move(rp);
  for (auto& b : batches) {
    if (b.empty()) continue;
    auto i = member_shard_of(b.device, st.name_hash, shards);
    if (st.refs[b.device]++ == 0) r.devices.push_back(b.device);
    else if (std::find(r.devices.begin(), r.devices.end(), b.device) == r.devices.end())
      r.devices.push_back(b.device);
    st.window.send(i, std::move(b));
    auto ticket = st.window.last_ticket();
    auto slot = std::find_if(r.last_ticket.begin(), r.last_ticket.end(),
                             [&](auto& x) { return x.first == i; });
    if (slot == r.last_ticket.end()) r.last_ticket.emplace_back(i, ticket);
    else slot->second = ticket;
  }
  st.requests.push_back(std::move(r));
  settle(self);  // an empty request is done at once
}

}  // namespace

owner_actor::behavior_type owner_actor_fn(owner_ptr self, context_ptr ctx, caf::actor router) {
  auto& st = self->state;
  st.ctx = ctx;
  st.name_hash = device_hash(ctx->settings.node_name);
  st.acked.assign(ctx->settings.shards + 1, 0);
  caf::anon_send(router, join_atom::value, caf::actor_cast<caf::actor>(self));
  self->request(router, std::chrono::seconds(10), shards_atom::value)
    .then(
      [=](std::vector<caf::actor>& table) {
        auto& st = self->state;
        st.shards = table;
        st.window.start(std::move(table), *st.ctx,
                        make_actor_writer(caf::actor_cast<caf::actor>(self)));
        for (auto& [batches, rp] : st.early) write(self, batches, rp);
        st.early.clear();
      },
      [=](caf::error& err) { spdlog::error("owner: no shard table: {}", caf::to_string(err)); });
  return {
    [=](write_atom, std::vector<reading_batch>& batches) -> caf::result<ack_list> {
      auto rp = self->make_response_promise<ack_list>();
      if (!self->state.window.started()) self->state.early.emplace_back(std::move(batches), rp);
      else write(self, batches, rp);
      return rp;
    },
    [=](last_seq_atom, std::string& device) -> caf::result<std::uint64_t> {
      auto& st = self->state;
      if (st.shards.empty())
        return caf::make_error(caf::sec::request_receiver_down, "shards not up yet");
      auto i = member_shard_of(device, st.name_hash, st.ctx->settings.shards);
      auto rp = self->make_response_promise<std::uint64_t>();
      self->request(st.shards[i], st.ctx->settings.query_timeout, last_seq_atom::value,
                    std::move(device))
        .then([=](std::uint64_t seq) mutable { rp.deliver(seq); },
              [=](caf::error& err) mutable { rp.deliver(std::move(err)); });
      return rp;
    },
    [=](ack_atom, std::uint64_t shard, ack_list& acks, std::uint64_t ticket) {
      auto& st = self->state;
      for (auto& [device, seq] : acks) {
        auto i = st.durable.find(device);
        if (i != st.durable.end()) i->second = std::max(i->second, seq);
        else if (st.refs.count(device)) st.durable.emplace(device, seq);
      }
      st.window.ack(shard, ticket);
      if (shard < st.acked.size()) st.acked[shard] = std::max(st.acked[shard], ticket);
      settle(self);
    },
    [=](reject_atom, std::string& device, std::uint64_t count, std::string& why) {
      if (auto n = self->state.ctx->metrics.refused_log.admit())
        spdlog::warn("owner: {} readings of {} not stored: {} ({} such in the last second)", count,
                     device, why, n);
    },
    [=](refuse_atom, std::uint64_t shard, std::string& why) {
      // Storage refuses writes: whatever waits at that shard was dropped.
      fail_shard(self, shard, why);
    },
    [=](shard_down_atom, std::uint64_t shard) {
      fail_shard(self, shard, "shard " + std::to_string(shard) + " is down");
    },
    [=](shard_up_atom, std::uint64_t index, caf::actor& shard) {
      auto& st = self->state;
      if (index < st.shards.size()) st.shards[index] = shard;
      st.window.restarted(index, std::move(shard));
    },
    [=](stop_atom) { return true; },
  };
}

owner_actor spawn_owner(caf::actor_system& sys, context_ptr ctx, caf::actor router) {
  return sys.spawn(owner_actor_fn, std::move(ctx), std::move(router));
}

}  // namespace pulse
