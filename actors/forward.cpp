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
  std::uint64_t seq = 0;  // durable seq of its device, from the owner's answer
  bool done = false;
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

// `hs` were answered: their devices' waiting readings go out now.
void release(forward_ptr self, const std::vector<held_ptr>& hs) {
  auto& st = self->state;
  std::vector<held_ptr> next;
  for (auto& h : hs) {
    const auto& device = h->item.batch->device;
    auto f = st.in_flight.find(device);
    if (f == st.in_flight.end() || --f->second > 0) continue;
    st.in_flight.erase(f);
    if (auto w = st.waiting.find(device); w != st.waiting.end()) {
      for (auto& x : w->second) next.push_back(std::move(x));
      st.waiting.erase(w);
    }
  }
  if (!next.empty()) send(self, std::move(next));
}

// Sends items to their owners, one request per owner. Every item sent is
// counted in flight for its device until its request is answered.
void send(forward_ptr self, std::vector<held_ptr> items) {
  auto& st = self->state;
  auto members = st.ctx->live_members();
  std::map<std::size_t, std::vector<held_ptr>> groups;
  for (auto& h : items) groups[owner_of(h->item.batch->device, *members).member].push_back(h);
  for (auto& h : items) ++st.in_flight[h->item.batch->device];
  auto timeout = st.ctx->settings.cluster.heartbeat_timeout + std::chrono::seconds(3);
  for (auto& [m, hs] : groups) {
    auto& dest = (*members)[m];
    if (!dest.owner) {
      for (auto& h : hs) {
        --st.in_flight[h->item.batch->device];
        st.retry.push_back(h);
      }
      arm_retry(self);
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
          for (auto& h : hs) {
            h->done = true;
            if (auto i = seqs.find(h->item.batch->device); i != seqs.end()) h->seq = i->second;
          }
          settle(self);
          release(self, hs);
        },
        [=](caf::error& err) {
          if (auto n = self->state.ctx->metrics.shed_log.admit())
            spdlog::warn("forwarder: {} batches for {} not written ({}); sending again ({} such "
                         "in the last second)", hs.size(), name, caf::to_string(err), n);
          // Still theirs: the retry sends them again first (in_flight is
          // counted again by that send), later readings keep waiting.
          for (auto& h : hs) {
            --self->state.in_flight[h->item.batch->device];
            self->state.retry.push_back(h);
          }
          arm_retry(self);
        });
  }
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
