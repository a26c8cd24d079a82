#pragma once
// storage::batcher — the write side of one shard: buffers the readings of the
// devices it owns, deduplicates by seq, keeps rollup partials and the metric
// dictionaries, and flushes everything as ONE RocksDB WriteBatch.
//
// Lifecycle: one per shard actor, created when the shard starts (state is
// loaded lazily from `meta` the first time a device is seen, so a restarted
// shard picks up last_seq and dictionaries from disk). Concurrency: not
// thread-safe; only its shard touches it. flush() blocks on RocksDB.

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "storage/model.hpp"
#include "storage/store.hpp"

namespace pulse::storage {

// One cumulative ack: everything `owner` sent for `device` up to `seq` is durable.
struct ack_entry {
  std::uint64_t owner = 0;
  std::string device;
  std::uint64_t seq = 0;
};

struct add_result {
  std::size_t accepted = 0;    // new readings buffered
  std::size_t duplicates = 0;  // seq <= last seen seq: will be acked, not stored
  // Readings the storage layer cannot take (normally caught upstream by the
  // wire codec): invalid device id, ts outside [0, max_ts], 0 or >64 values,
  // sample indices out of range, non-finite values, a full metric dictionary,
  // or the device's meta record unreadable. Neither stored nor acked.
  std::size_t rejected = 0;
};

struct flush_stats {
  std::size_t readings = 0;  // readings written
  std::size_t devices = 0;   // devices touched
  std::size_t chunks = 0;    // chunk keys put
  std::size_t bytes = 0;     // WriteBatch size in bytes
};

class batcher {
 public:
  explicit batcher(store& db);
  ~batcher();

  // Buffers the readings of `b` for `owner` (an opaque id of the sender: the
  // session actor's id). Readings without seq get last_seq + 1, ... Readings
  // with seq <= the highest seq seen for the device (stored or buffered) are
  // duplicates: not stored, but still acked on the next flush.
  // `now_ms` is the server time, recorded as first/last seen.
  add_result add(std::uint64_t owner, const reading_batch& b, std::int64_t now_ms);

  // Readings buffered since the last flush (duplicates count too, they wait for an ack).
  std::size_t pending() const;

  // Builds and writes one WriteBatch: per device and hour bucket one chunk,
  // the touched minute and hour rollup rows, and the device's meta record.
  // On success fills `acks` (one per owner and device, the highest seq) and
  // `stats`, and clears the buffer. On failure nothing is acked, the buffer
  // is dropped, and the in-memory state is reset so that it is reloaded from
  // disk (callers resend their unacked readings).
  status flush(std::vector<ack_entry>& acks, flush_stats& stats);

  // Highest seq durably stored (or buffered) for a device, loading it from
  // disk if needed. 0 if none.
  std::uint64_t last_seq(const std::string& device);

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace pulse::storage
