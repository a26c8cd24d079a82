// forwarder: in a cluster, the writers' slot for every device another member
// owns (slot index storage.shards, with an inbox like a shard's). It drains
// that inbox when kicked, groups the readings by owner (rendezvous over the
// live members, actors/routing.hpp) and sends each owner's owner endpoint
// one request with all of them; when an owner answers (its write returned
// OK) it acks the writers, in each writer's ticket order, so that an ack
// never covers a reading still on its way to another owner.
//
// A request that fails (owner down, timeout, storage refusing there) is sent
// again after a short wait, routed anew: once the cluster actor has marked
// the owner down its devices go to their new owners. The forwarder keeps
// every reading until it is acked, so none is lost on the way; one that the
// old owner did store is deduplicated by seq only if it lands on the same
// owner again (with cluster.replicas=1 the old owner's data stays on it).
//
// With cluster.replicas above 1 every reading comes here (slot_router), is
// sent to each of its device's replicas (replicas_of) and acked once all of
// them answered; one failing sends it again to the replicas of then, where
// those that have it drop the copy by seq.
//
// Lifecycle: spawned by the bridge in cluster mode, stopped with the node.
// Concurrency: one event-based actor; writers reach it only through the
// inbox and answers go out through their shard_writer (posts, never blocks).

#include <deque>
#include <map>
#include <unordered_map>

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include "actors/actors.hpp"
#include "actors/atoms.hpp"
#include "actors/routing.hpp"

namespace pulse {

namespace {

// Wait before a failed request is sent again.
constexpr std::chrono::milliseconds retry_delay{100};

struct held {
  write_item item;
  std::uint64_t seq = 0;  // durable seq of its device, from the owners' answers
  bool done = false;
  std::size_t out = 0;    // destinations not answered yet
  bool failed = false;    // one of them failed: send again
};
using held_ptr = std::shared_ptr<held>;

struct writer_queue {
  writer_ptr writer;
  std::deque<held_ptr> items;  // in ticket order
};

}  // namespace

struct forward_state {
  static inline const char* name = "forwarder";
  context_ptr ctx;
  std::size_t slot = 0;
  std::vector<write_item> drained;
  std::unordered_map<const shard_writer*, writer_queue> writers;
  std::vector<held_ptr> retry;  // failed, waiting for the retry timer
  bool retry_armed = false;
  // One request in flight per device: a device's later readings wait here
  // until its earlier ones are answered. Otherwise, across an owner's death,
  // a newer reading could reach the new owner before an older one that is
  // being retried, and the new owner would drop the older one as a duplicate
  // (seq below its highest) while acking it: lost. Found by the kill -9
  // failover test under ASan, where the retry took 4 s.
  std::unordered_map<std::string, std::vector<held_ptr>> waiting;
  std::unordered_map<std::string, std::size_t> in_flight;  // device -> items out
};

namespace {

using forward_ptr = caf::stateful_actor<forward_state>*;

// Acks each writer's done prefix.
void settle(forward_ptr self) {
  auto& st = self->state;
  for (auto i = st.writers.begin(); i != st.writers.end();) {
    auto& q = i->second;
    std::uint64_t ticket = 0;
    std::map<std::string, std::uint64_t> acks;
    while (!q.items.empty() && q.items.front()->done) {
      auto& h = *q.items.front();
      ticket = std::max(ticket, h.item.ticket);
      auto& seq = acks[h.item.batch->device];
      seq = std::max(seq, h.seq);
      q.items.pop_front();
    }
    if (ticket > 0)
      q.writer->acked(st.slot, ack_list(acks.begin(), acks.end()), ticket);
    if (q.items.empty()) i = st.writers.erase(i);
    else ++i;
  }
}

void arm_retry(forward_ptr self) {
  if (self->state.retry_armed) return;
  self->state.retry_armed = true;
  self->delayed_send(self, retry_delay, retry_atom::value);
}

void send(forward_ptr self, std::vector<held_ptr> items);

// One of h's destinations answered: `ok` if its write returned OK. Once all
// have, h is done (acked in its writer's order by settle) and its device's
// waiting readings go out; if any failed, h is sent again to the owners of
// then (those that stored it drop the copy as a duplicate), before them.
void answered(forward_ptr self, const held_ptr& h, bool ok, std::vector<held_ptr>& next) {
  auto& st = self->state;
  if (!ok) h->failed = true;
  if (--h->out > 0) return;
  const auto& device = h->item.batch->device;
  auto f = st.in_flight.find(device);
  if (h->failed) {
    // Still counted as the device's (the entry stays): later readings wait.
    if (f != st.in_flight.end() && f->second > 0) --f->second;
    st.retry.push_back(h);
    arm_retry(self);
    return;
  }
  h->done = true;
  if (f == st.in_flight.end() || --f->second > 0) return;
  st.in_flight.erase(f);
  if (auto w = st.waiting.find(device); w != st.waiting.end()) {
    for (auto& x : w->second) next.push_back(std::move(x));
    st.waiting.erase(w);
  }
}

// Sends items to their owners (with cluster.replicas > 1, to each of their
// replicas), one request per member. Every item sent is counted in flight
// for its device until all its destinations have answered.
void send(forward_ptr self, std::vector<held_ptr> items) {
  auto& st = self->state;
  if (items.empty()) return;
  auto members = st.ctx->live_members();
  const auto replicas = st.ctx->settings.cluster.replicas;
  std::map<std::size_t, std::vector<held_ptr>> groups;
  std::vector<std::size_t> dests;
  std::vector<held_ptr> next;
  for (auto& h : items) {
    const auto& device = h->item.batch->device;
    dests.clear();
    if (members->empty()) {
      // The member list is not there yet (start-up): nowhere to send it.
    } else if (replicas > 1) {
      replicas_of(device, *members, replicas, dests);
    } else {
      dests.assign(1, owner_of(device, *members).member);
    }
    h->failed = false;
    ++st.in_flight[device];
    if (dests.empty()) {  // held, sent again after the retry delay
      h->out = 1;
      answered(self, h, false, next);
      continue;
    }
    h->out = dests.size();
    for (auto m : dests) groups[m].push_back(h);
  }
  auto timeout = st.ctx->settings.cluster.heartbeat_timeout + std::chrono::seconds(3);
  for (auto& [m, hs] : groups) {
    auto& dest = (*members)[m];
    if (!dest.owner) {
      for (auto& h : hs) answered(self, h, false, next);
      continue;
    }
    std::vector<reading_batch> batches;
    batches.reserve(hs.size());
    for (auto& h : hs) batches.push_back(*h->item.batch);
    auto name = dest.name;
    self->request(dest.owner, timeout, write_atom::value, std::move(batches))
      .then(
        [=](ack_list& acks) {
          std::unordered_map<std::string, std::uint64_t> seqs(acks.begin(), acks.end());
          std::vector<held_ptr> next;
          for (auto& h : hs) {
            if (auto i = seqs.find(h->item.batch->device); i != seqs.end())
              h->seq = std::max(h->seq, i->second);
            answered(self, h, true, next);
          }
          settle(self);
          send(self, std::move(next));
        },
        [=](caf::error& err) {
          if (auto n = self->state.ctx->metrics.shed_log.admit())
            spdlog::warn("forwarder: {} batches for {} not written ({}); sending again ({} such "
                         "in the last second)", hs.size(), name, caf::to_string(err), n);
          // A failure completes nothing and releases nothing: all go to retry.
          std::vector<held_ptr> none;
          for (auto& h : hs) answered(self, h, false, none);
        });
  }
  send(self, std::move(next));
}

void drain(forward_ptr self) {
  auto& st = self->state;
  st.ctx->inboxes[st.slot].drain(st.drained);
  if (st.drained.empty()) return;
  std::vector<held_ptr> items;
  items.reserve(st.drained.size());
  for (auto& item : st.drained) {
    if (item.target != self->id()) continue;
    auto h = std::make_shared<held>();
    h->item = std::move(item);
    auto& q = st.writers[h->item.writer.get()];
    if (!q.writer) q.writer = h->item.writer;
    q.items.push_back(h);
    // Behind an earlier reading of its device that is out or being retried.
    const auto& device = h->item.batch->device;
    if (st.in_flight.count(device) || st.waiting.count(device))
      st.waiting[device].push_back(std::move(h));
    else
      items.push_back(std::move(h));
  }
  st.drained.clear();
  send(self, std::move(items));
}

}  // namespace

caf::behavior forward_actor(forward_ptr self, context_ptr ctx) {
  auto& st = self->state;
  st.ctx = ctx;
  st.slot = ctx->settings.shards;
  if (ctx->inboxes[st.slot].attach(caf::actor_cast<caf::actor>(self))) drain(self);
  return {
    [=](inbox_atom, bool) { drain(self); },
    [=](retry_atom) {
      auto& st = self->state;
      st.retry_armed = false;
      send(self, std::exchange(st.retry, {}));
    },
    [=](stop_atom) { return true; },
  };
}

caf::actor spawn_forwarder(caf::actor_system& sys, context_ptr ctx) {
  return sys.spawn(forward_actor, std::move(ctx));
}

}  // namespace pulse
