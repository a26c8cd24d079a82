#pragma once
// shard_inbox: how readings reach a shard without waking its thread for every
// frame. Writers (connections on their strands, POSTs) push write_items;
// the first push after a drain sends the shard one `inbox_atom` (a kick),
// the shard arms its batch.max-delay timer and drains everything at once when
// it fires (or at once when the inbox holds batch.max-readings). So a shard
// wakes about once per flush, not once per frame: with one reading per frame
// the per-frame futex wake-up and context switch were the biggest cost left.
//
// Each item names the shard instance its writer sent it to; an instance
// drops items meant for an earlier one (they died with it and their writers
// resend them, in order, when the router says the shard is up again), so a
// resend can never arrive after newer readings of the same device.
//
// Lifecycle: one per shard index, created with the node context, outlives
// shard restarts. Concurrency: any thread; a mutex guards the items and the
// current instance (held for a push_back or a swap, never across a call out).

#include <cstdint>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#include <caf/actor.hpp>
#include <caf/actor_addr.hpp>
#include <caf/actor_cast.hpp>

#include "storage/model.hpp"

namespace pulse {

class shard_writer;

struct write_item {
  std::shared_ptr<shard_writer> writer;
  std::uint64_t ticket = 0;
  std::shared_ptr<const reading_batch> batch;
  caf::actor_id target = 0;  // the shard instance the writer sent it to
};

class shard_inbox {
 public:
  enum class kick { none, soon, now };

  // Appends an item; says whether (and how urgently) to kick `to`, the
  // current instance.
  kick push(write_item item, std::size_t max_readings, caf::actor& to) {
    std::lock_guard<std::mutex> guard{mtx_};
    readings_ += item.batch->size();
    items_.push_back(std::move(item));
    kick k = kick::none;
    if (!kicked_) {
      kicked_ = true;
      k = kick::soon;
    }
    if (readings_ >= max_readings && !urged_) {
      urged_ = true;
      k = kick::now;
    }
    if (k != kick::none) to = caf::actor_cast<caf::actor>(current_);
    return k;
  }

  // A shard instance starts: it becomes the one kicked. True if items wait
  // (the caller arms its timer: a kick for them may have gone to the old one).
  bool attach(const caf::actor& self) {
    std::lock_guard<std::mutex> guard{mtx_};
    current_ = self.address();
    kicked_ = !items_.empty();
    urged_ = false;
    return kicked_;
  }

  // Takes every item (swapped into `out`, which is cleared first).
  void drain(std::vector<write_item>& out) {
    out.clear();
    std::lock_guard<std::mutex> guard{mtx_};
    out.swap(items_);
    readings_ = 0;
    kicked_ = urged_ = false;
  }

 private:
  std::mutex mtx_;
  std::vector<write_item> items_;
  std::size_t readings_ = 0;
  bool kicked_ = false;  // a kick is out since the last drain
  bool urged_ = false;   // an urgent kick is out since the last drain
  caf::actor_addr current_;  // weak: an inbox keeps no shard alive
};

}  // namespace pulse
