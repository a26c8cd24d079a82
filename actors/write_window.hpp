#pragma once
// write_window: a writer's (a session's, a POST's) view of the shards — the
// current shard table, and what it has sent each shard and not yet seen
// acked, in the order it was sent.
//
// Every write carries a ticket (increasing per writer). A shard's ack names
// the highest ticket its flush covered, so everything up to it leaves the
// window. When a shard restarts, the window resends that shard's entries to
// the new instance: the batches are kept as they were sent (shared, nothing
// is copied), and the shard deduplicates by seq, so a resend never stores a
// reading twice.
//
// Writes go through the shard's inbox (actors/inbox.hpp), naming the instance
// the window knows; an instance drops items meant for an earlier one.
//
// The window also keeps the node-wide per-shard load (node_context::shard_load:
// readings sent and not yet acked, which admission checks): + on send, - on
// ack, and whatever is still unacked when the window goes away.
//
// In a cluster the window also remembers which slot each device's unacked
// readings went to: a device whose owner changed (a member went down or came
// back) keeps going that way until they are answered (slot_router asks
// `slot_of`). Otherwise a reading routed the new way could be stored before
// an older one still on its way (or being retried) the old way, and the
// older one would then be dropped as a duplicate and acked: lost.
//
// Concurrency: owned by one actor (a POST) or one connection's ingest path
// (on its strand), touched by it alone. Sends are anonymous: shards answer
// the window's writer.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include <caf/actor.hpp>
#include <caf/fwd.hpp>
#include <caf/message.hpp>

#include "actors/actors.hpp"
#include "storage/model.hpp"

namespace pulse {

class write_window {
 public:
  write_window() = default;
  write_window(const write_window&) = delete;
  write_window& operator=(const write_window&) = delete;
  ~write_window();

  // The shard table from the router, the node (per-shard load counters and
  // inboxes), and who the shards answer. Until then the window has no shards.
  void start(std::vector<caf::actor> shards, node_context& ctx, writer_ptr writer);
  bool started() const { return ctx_ != nullptr; }

  std::size_t shards() const { return table_.size(); }
  // Readings any writer has sent shard i and not yet seen acked.
  std::uint64_t load(std::size_t i) const {
    return ctx_->shard_load[i].load(std::memory_order_relaxed);
  }

  // Puts `b` in shard i's inbox and keeps it until acked.
  void send(std::size_t i, reading_batch&& b);

  // Shard i acked up to `ticket`: drops those entries (and observes how long
  // each waited, in pulse_ack_latency_seconds; the caller has queued the acks).
  void ack(std::size_t i, std::uint64_t ticket);

  // Shard i was restarted as `a`: from now on writes go there, and what the
  // old instance had not acked is sent to it again, in order.
  void restarted(std::size_t i, caf::actor a);

  // Forgets what waits at shard i (it was refused, and will not be acked).
  void drop(std::size_t i);
  // The ticket of the last send.
  std::uint64_t last_ticket() const { return last_ticket_; }

  // Whether this writer has anything unacked at shard i.
  bool waiting_on(std::size_t i) const { return !pending_[i].empty(); }
  // The seq of the oldest unacked reading at shard i, if it has one.
  std::optional<std::uint64_t> first_seq(std::size_t i) const;
  // Cluster only: the slot the device's unacked readings are at, if any.
  std::optional<std::size_t> slot_of(const std::string& device) const;
  // Readings unacked over all shards.
  std::uint64_t readings() const { return readings_; }
  bool empty() const { return readings_ == 0; }

 private:
  struct entry {
    std::uint64_t ticket;
    std::uint64_t readings;
    std::shared_ptr<const reading_batch> batch;  // shared with the inbox, never copied
    std::chrono::steady_clock::time_point taken;  // for pulse_ack_latency_seconds
  };

  void push(std::size_t i, const entry& e);
  void forget_device(const entry& e);

  // A FIFO that allocates nothing until its first entry (std::deque
  // allocates on construction): an idle connection's window costs a few
  // words per shard.
  class fifo {
   public:
    bool empty() const { return head_ == items_.size(); }
    void push_back(entry e) { items_.push_back(std::move(e)); }
    const entry& front() const { return items_[head_]; }
    void pop_front() {
      items_[head_] = entry{};
      if (++head_ == items_.size()) {
        items_.clear();
        head_ = 0;
      } else if (head_ >= 64 && 2 * head_ >= items_.size()) {
        items_.erase(items_.begin(), items_.begin() + static_cast<std::ptrdiff_t>(head_));
        head_ = 0;
      }
    }
    auto begin() const { return items_.begin() + static_cast<std::ptrdiff_t>(head_); }
    auto end() const { return items_.end(); }

   private:
    std::vector<entry> items_;
    std::size_t head_ = 0;
  };

  std::vector<caf::actor> table_;
  node_context* ctx_ = nullptr;
  writer_ptr writer_;
  std::vector<fifo> pending_;
  std::uint64_t last_ticket_ = 0;
  std::uint64_t readings_ = 0;
  // Cluster only: device -> (slot, batches of it unacked there).
  bool track_devices_ = false;
  std::unordered_map<std::string, std::pair<std::size_t, std::size_t>> devices_;
};

}  // namespace pulse
