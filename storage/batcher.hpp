#pragma once
// storage::batcher — the write side of one shard: buffers the readings of the
// devices it owns, deduplicates by seq, keeps rollup partials and the metric
// dictionaries, and makes each flush durable with ONE RocksDB write.
//
// With a head (head_options::max_readings > 0) a flush appends one record to
// the `log` column family (head_log.hpp) and keeps the readings in memory; a
// checkpoint, when the head holds max_readings or the shard asks for one,
// writes every head device's chunks, rollup rows and meta record and deletes
// the shard's log records in one WriteBatch. So a flush costs one Put however
// many devices it holds, and a device's chunk holds many flushes. Without a
// head every flush is a checkpoint.
//
// Lifecycle: one per shard actor, created when the shard starts; recover()
// replays the shard's log records (a restart after a crash) and checkpoints
// them. Device state is loaded lazily from `meta` the first time a device is
// seen. Concurrency: not thread-safe; only its shard touches it. flush() and
// recover() block on RocksDB.

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
  // Set when storage could not be read (its log replay or the device's meta
  // record failed on a storage fault, or the store is closed): nothing of the
  // batch was taken, and `unavailable` says why. Not the readings' fault.
  storage::status unavailable = storage::status::success();
};

struct flush_stats {
  std::size_t readings = 0;  // readings made durable by this flush
  std::size_t devices = 0;   // devices touched (written or logged)
  std::size_t chunks = 0;    // chunk keys put (a checkpoint)
  std::size_t bytes = 0;     // WriteBatch size in bytes
  bool checkpoint = false;   // chunks, rollups and meta written, log truncated
  std::size_t checkpointed = 0;  // readings moved from the head into chunks
};

struct head_options {
  // Readings the head may hold before a flush checkpoints it; 0 = no head
  // (every flush writes chunks, rollup rows and meta records directly).
  std::size_t max_readings = 0;
  // Budget for the device states the batcher keeps in memory (last_seq,
  // dictionary, latest values, meta): over it, the least recently used are
  // dropped after a checkpoint and read back from `meta` when they send again.
  std::size_t device_cache_bytes = 256 << 20;
};

// What a batcher holds in memory, for metrics and tests.
struct cache_stats {
  std::size_t devices = 0;        // device states held
  std::size_t device_bytes = 0;   // their footprint (counted against the budget)
  std::uint64_t evicted = 0;      // device states dropped over the budget, ever
  std::size_t rollup_rows = 0;    // cached rollup rows
};

class batcher {
 public:
  // `shard` names this batcher's log records; `all_shards` makes it own every
  // shard's records (the node's start-up recovery, whatever the shard count was).
  explicit batcher(store& db, std::uint16_t shard = 0, head_options opts = {},
                   bool all_shards = false);
  ~batcher();

  // Replays this shard's log records into the head (as after a crash: they
  // were acked, their chunks not yet written) and checkpoints them. `replayed`
  // counts the readings found. Call once before the first add().
  status recover(std::size_t& replayed);

  // Buffers the readings of `b` for `owner` (an opaque id of the sender: the
  // session actor's id). Readings without seq get last_seq + 1, ... Readings
  // with seq <= the highest seq seen for the device (stored or buffered) are
  // duplicates: not stored, but still acked on the next flush.
  // `now_ms` is the server time, recorded as first/last seen.
  add_result add(std::uint64_t owner, const reading_batch& b, std::int64_t now_ms);

  // Readings buffered since the last flush (duplicates count too, they wait for an ack).
  std::size_t pending() const;

  // Makes what was added since the last flush durable with one write: a log
  // record, or (no head, head full, or `checkpoint`) a checkpoint: per device
  // and hour bucket one chunk, the touched minute and hour rollup rows, the
  // device's meta record, and the deletion of the shard's log records.
  // On success fills `acks` (one per owner and device, the highest seq) and
  // `stats`. On failure nothing is acked, the buffer and head are dropped,
  // and the in-memory state is reloaded from disk (meta and the log) before
  // the next add (callers resend their unacked readings).
  status flush(std::vector<ack_entry>& acks, flush_stats& stats, bool checkpoint = false);

  // Readings held in the head (logged, not yet in chunks) plus those buffered.
  std::size_t head_readings() const;

  // Drops what is buffered and not flushed (storage refused it; nothing of it
  // was acked), and with it the in-memory head: the next call replays the
  // head from the log.
  void abandon();

  cache_stats cache() const;

  // Highest seq durably stored (or buffered) for a device, loading it from
  // disk if needed. 0 if none.
  std::uint64_t last_seq(const std::string& device);

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace pulse::storage
