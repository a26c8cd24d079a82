#pragma once
// storage_guard: whether the node's storage takes writes now, and why not.
//
// A flush that fails on a storage fault (RocksDB reports no space, an I/O
// error, corruption) or free space under storage.min-free-bytes marks storage
// unwritable: writers are refused with `storage_unavailable` (WebSocket: error
// frame with the seq, close 1013; POST: 503 + Retry-After), /readyz says why,
// queries and live updates go on. The storage probe (spawn_storage_probe)
// checks free space every second and, while unwritable, tries every 250 ms to
// bring storage back (store::recover(): RocksDB's own resume, a probe write,
// a reopen when RocksDB cannot resume); the first success makes it writable
// again. A storage fault is not a shard failure: shards stay up and the
// supervisor's restart intensity is not spent on a disk.
//
// Concurrency: writable() is one relaxed atomic load (read on every frame);
// the rest takes a mutex and is called on faults and by the probe.

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>

#include "storage/store.hpp"

namespace pulse {

class storage_guard {
 public:
  // Kinds counted by pulse_storage_errors_total{kind}: storage::fault's
  // (none counted as io_error), then low_space.
  static constexpr std::size_t kinds = 5;
  static const char* kind_name(std::size_t i);

  bool writable() const { return writable_.load(std::memory_order_relaxed); }

  // A write or read met a storage fault: refuse writes until a probe succeeds.
  void fault(storage::fault kind, const std::string& why);
  // Free space fell under storage.min-free-bytes.
  void low_space(std::uint64_t free, std::uint64_t min);
  // Whether the current fault is only low space (writable again once there is room).
  bool only_low_space() const;
  // The probe brought storage back.
  void cleared();
  // The probe tried and storage still refuses; logged at most every 30 s.
  void still_failing(const std::string& why);

  // "" while writable; else what /readyz and refusals say.
  std::string reason() const;

  std::atomic<std::int64_t> free_bytes{-1};  // at the last probe; -1 unknown
  // /metrics lines (with HELP and TYPE).
  void render(std::string& out) const;

 private:
  void enter(std::size_t kind, const std::string& why);

  std::atomic<bool> writable_{true};
  std::array<std::atomic<std::uint64_t>, kinds> errors_{};
  std::atomic<std::uint64_t> recoveries_{0};
  mutable std::mutex mtx_;
  std::string reason_;
  bool low_space_only_ = false;
  std::chrono::steady_clock::time_point since_{};
  std::chrono::steady_clock::time_point last_log_{};
};

}  // namespace pulse
