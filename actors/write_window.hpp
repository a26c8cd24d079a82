#pragma once
// write_window: what a writer (a session, a POST) has sent to the shards and
// not yet seen acked, per shard, in the order it was sent.
//
// Every write carries a ticket (increasing per writer). A shard's ack names
// the highest ticket its flush covered, so everything up to it leaves the
// window. When a shard restarts, the writer resends that shard's entries to
// the new instance: the messages are kept as they were sent (CAF shares
// them, nothing is copied), and the shard deduplicates by seq, so a resend
// never stores a reading twice.
//
// Concurrency: owned by one actor, touched by it alone.

#include <cstdint>
#include <deque>
#include <vector>

#include <caf/message.hpp>

namespace pulse {

class write_window {
 public:
  struct entry {
    std::uint64_t ticket;
    std::uint64_t readings;
    caf::message msg;  // (write_atom, ticket, reading_batch)
  };

  void resize(std::size_t shards) { by_shard_.resize(shards); }
  std::size_t shards() const { return by_shard_.size(); }

  std::uint64_t next_ticket() { return ++last_ticket_; }

  void push(std::size_t shard, std::uint64_t ticket, std::uint64_t readings, caf::message msg) {
    by_shard_[shard].push_back(entry{ticket, readings, std::move(msg)});
    readings_ += readings;
  }

  // Drops the entries of `shard` up to `ticket`; returns how many readings left.
  std::uint64_t ack(std::size_t shard, std::uint64_t ticket) {
    if (shard >= by_shard_.size()) return 0;
    std::uint64_t done = 0;
    auto& q = by_shard_[shard];
    while (!q.empty() && q.front().ticket <= ticket) {
      done += q.front().readings;
      q.pop_front();
    }
    readings_ -= done;
    return done;
  }

  const std::deque<entry>& pending(std::size_t shard) const { return by_shard_[shard]; }
  std::uint64_t pending_readings(std::size_t shard) const {
    std::uint64_t n = 0;
    for (auto& e : by_shard_[shard]) n += e.readings;
    return n;
  }

  // Readings unacked over all shards.
  std::uint64_t readings() const { return readings_; }
  bool empty() const { return readings_ == 0; }

 private:
  std::vector<std::deque<entry>> by_shard_;
  std::uint64_t last_ticket_ = 0;
  std::uint64_t readings_ = 0;
};

}  // namespace pulse
