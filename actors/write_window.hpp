#pragma once
// write_window: a writer's (a session's, a POST's) view of the shards — the
// current shard table, and what it has sent each shard and not yet seen
// acked, in the order it was sent.
//
// Every write carries a ticket (increasing per writer). A shard's ack names
// the highest ticket its flush covered, so everything up to it leaves the
// window. When a shard restarts, the window resends that shard's entries to
// the new instance: the messages are kept as they were sent (CAF shares
// them, nothing is copied), and the shard deduplicates by seq, so a resend
// never stores a reading twice.
//
// The window also keeps the node-wide per-shard load (node_context::shard_load:
// readings sent and not yet acked, which admission checks): + on send, - on
// ack, and whatever is still unacked when the window goes away.
//
// Concurrency: owned by one actor, touched by it alone.

#include <atomic>
#include <cstdint>
#include <deque>
#include <vector>

#include <caf/actor.hpp>
#include <caf/fwd.hpp>
#include <caf/message.hpp>

#include "storage/model.hpp"

namespace pulse {

class write_window {
 public:
  write_window() = default;
  write_window(const write_window&) = delete;
  write_window& operator=(const write_window&) = delete;
  ~write_window();

  // The shard table from the router and the node's per-shard load counters
  // (one per shard). Until then the window has no shards.
  void start(std::vector<caf::actor> shards, std::atomic<std::uint64_t>* load);

  std::size_t shards() const { return table_.size(); }
  const caf::actor& shard(std::size_t i) const { return table_[i]; }
  // Readings any writer has sent shard i and not yet seen acked.
  std::uint64_t load(std::size_t i) const { return load_[i].load(std::memory_order_relaxed); }

  // Sends `b` to shard i as (write_atom, ticket, b) and keeps it until acked.
  void send(caf::event_based_actor* self, std::size_t i, reading_batch&& b);

  // Shard i acked up to `ticket`: drops those entries.
  void ack(std::size_t i, std::uint64_t ticket);

  // Shard i was restarted as `a`: from now on writes go there, and what the
  // old instance had not acked is sent to it again, in order.
  void restarted(caf::event_based_actor* self, std::size_t i, caf::actor a);

  // Whether this writer has anything unacked at shard i.
  bool waiting_on(std::size_t i) const { return !pending_[i].empty(); }
  // Readings unacked over all shards.
  std::uint64_t readings() const { return readings_; }
  bool empty() const { return readings_ == 0; }

 private:
  struct entry {
    std::uint64_t ticket;
    std::uint64_t readings;
    caf::message msg;  // (write_atom, ticket, reading_batch)
  };

  std::vector<caf::actor> table_;
  std::atomic<std::uint64_t>* load_ = nullptr;
  std::vector<std::deque<entry>> pending_;
  std::uint64_t last_ticket_ = 0;
  std::uint64_t readings_ = 0;
};

}  // namespace pulse
