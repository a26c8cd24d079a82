#pragma once
// storage::store — the node's RocksDB database with its column families
// (`readings`, `rollups`, `meta`; DESIGN.md "Storage"; and `log`, the shards'
// head logs, head_log.hpp).
//
// Lifecycle: open() once at start-up, shared by the shards (writers, one per
// device set) and the query actor (reader). Concurrency: RocksDB's DB is
// thread-safe; every method here may be called from any thread. Writes go
// through storage::batcher, which builds one WriteBatch per flush.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "storage/model.hpp"

namespace rocksdb {
class DB;
class ColumnFamilyHandle;
class WriteBatch;
}  // namespace rocksdb

namespace pulse::storage {

// Outcome of a storage call: ok, or a message meant for logs and HTTP errors.
struct status {
  bool ok = true;
  std::string message;
  static status success() { return {}; }
  static status error(std::string msg) { return {false, std::move(msg)}; }
  explicit operator bool() const { return ok; }
};

struct store_options {
  std::string path;
  bool sync = false;  // true: fsync the WAL on every write (survives power loss)
};

// What `meta` holds per device.
struct device_record {
  std::string id;
  std::uint64_t last_seq = 0;     // highest seq durably stored; 0 = none
  std::int64_t first_seen = 0;    // server time (ms) of the first stored write
  std::int64_t last_seen = 0;     // server time (ms) of the latest stored write
  std::vector<std::string> metrics;  // dictionary: metric id = index
  std::string meta;                  // latest `meta` object, compact JSON ("" if none)
  std::int64_t latest_ts = 0;        // ts of the newest reading (by ts)
  std::vector<std::pair<std::string, double>> latest;  // its values
};

class store {
 public:
  ~store();
  store(const store&) = delete;
  store& operator=(const store&) = delete;

  // Opens (creating if missing) the database and its column families.
  static std::unique_ptr<store> open(const store_options& opts, status& st);

  bool sync() const { return sync_; }

  // Applies one WriteBatch (with the configured sync setting).
  status write(rocksdb::WriteBatch& batch);

  // Device record from `meta`, overlaid with what the head log holds (so an
  // acked reading shows at once); nullopt if the device was never stored.
  std::optional<device_record> load_device(std::string_view device, status& st) const;

  // Devices whose id starts with `prefix`, ordered by id, starting after
  // `after` (exclusive; "" = from the start), at most `limit`.
  std::vector<device_record> list_devices(std::string_view prefix, std::string_view after,
                                          std::size_t limit, status& st) const;

  // A consistent copy of every column family in `dir` (rocksdb::Checkpoint:
  // SST files hard-linked when on the same file system, else copied, plus the
  // WAL), taken while writes go on. `dir` must not exist; its parent must.
  // A store opened on the copy is this one at one instant, and replays its
  // head log like any restart. `bytes` and `files`: what the copy holds.
  status checkpoint(const std::string& dir, std::uint64_t& bytes, std::uint64_t& files) const;

  // Retention: drops every readings chunk in an hour bucket that ends at or
  // before `readings_before_ms`, and every minute and hour rollup row whose
  // period ends at or before `rollups_before_ms` (0 = keep). Whole buckets
  // only, with range deletes (the keys are bucket-first: one DeleteRange per
  // kind, and SST files wholly inside the range are dropped first), so the
  // cost does not grow with what is deleted and writers are not held up.
  // Device records (last_seq, latest values) stay. Safe to call while shards
  // write; a chunk or rollup row an old reading writes later is dropped by
  // the next call.
  status expire(std::int64_t readings_before_ms, std::int64_t rollups_before_ms);

  // A short multi-line text of RocksDB statistics for /metrics (may be empty).
  std::string stats_text() const;

  rocksdb::DB* db() const { return db_; }
  rocksdb::ColumnFamilyHandle* readings_cf() const { return cfs_[1]; }
  rocksdb::ColumnFamilyHandle* rollups_cf() const { return cfs_[2]; }
  rocksdb::ColumnFamilyHandle* meta_cf() const { return cfs_[3]; }
  rocksdb::ColumnFamilyHandle* log_cf() const { return cfs_[4]; }

 private:
  store() = default;
  rocksdb::DB* db_ = nullptr;
  std::vector<rocksdb::ColumnFamilyHandle*> cfs_;  // default, readings, rollups, meta, log
  bool sync_ = false;
};

}  // namespace pulse::storage
