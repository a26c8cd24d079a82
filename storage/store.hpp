#pragma once
// storage::store — the node's RocksDB database with its column families
// (`readings`, `rollups`, `meta`; DESIGN.md "Storage"; and `log`, the shards'
// head logs, head_log.hpp).
//
// Lifecycle: open() once at start-up, shared by the shards (writers, one per
// device set) and the query actor (reader). Concurrency: RocksDB's DB is
// thread-safe; every method here may be called from any thread. Writes go
// through storage::batcher, which builds one WriteBatch per flush.

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <vector>

#include "storage/model.hpp"

namespace rocksdb {
class DB;
class ColumnFamilyHandle;
class Env;
class WriteBatch;
}  // namespace rocksdb

namespace pulse::storage {

// What kind of storage fault a failed call met (none: a logic or data error,
// e.g. a corrupt record). The node refuses writes while the disk refuses them
// and takes them again once a probe write succeeds (actors/storage_guard.hpp).
enum class fault { none, no_space, io_error, corruption, closed };
const char* to_string(fault f);

// Outcome of a storage call: ok, or a message meant for logs and HTTP errors.
struct status {
  bool ok = true;
  std::string message;
  storage::fault fault = storage::fault::none;
  static status success() { return {}; }
  static status error(std::string msg, storage::fault f = storage::fault::none) {
    return {false, std::move(msg), f};
  }
  explicit operator bool() const { return ok; }
};

// Fault injection for tests (debug.fault-injection): every file RocksDB
// writes goes through a wrapper that fails appends or syncs while a mode is set.
enum class injected_fault { off, eio_write, eio_sync, no_space };
struct fault_injector {
  std::atomic<injected_fault> mode{injected_fault::off};
  std::atomic<std::uint64_t> hits{0};  // writes or syncs failed so far
};

struct store_options {
  // A path and the sync setting; the rest as below (tests and benches say only these).
  store_options(std::string p = {}, bool s = false) : path(std::move(p)), sync(s) {}
  std::string path;
  bool sync = false;  // true: fsync the WAL on every write (survives power loss)
  // RocksDB's WAL recovery at open: "point-in-time" (default: replay up to the
  // first damaged record, i.e. a torn tail after a crash or power loss) or
  // "absolute-consistency" (any damaged record stops the open).
  std::string wal_recovery = "point-in-time";
  // RocksDB's block cache (data blocks of every column family; index and
  // filter blocks of all but `meta`).
  std::size_t cache_bytes = 64 << 20;
  // Set: RocksDB's files are written through it (tests).
  std::shared_ptr<fault_injector> faults;
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

  // Applies one WriteBatch (with the configured sync setting). A failure
  // carries its fault kind.
  status write(rocksdb::WriteBatch& batch);

  // Every user of db() and the column family handles holds this (shared) for
  // as long as it uses them: reopen() swaps them under the exclusive lock.
  // Not recursive: take it once, at the outermost entry point.
  std::shared_lock<std::shared_mutex> lock() const { return std::shared_lock(mtx_); }
  // False after a reopen() that failed: nothing may touch db() then.
  bool is_open() const { return db_ != nullptr; }
  // What a call answers while the store is not open.
  static status closed() {
    return status::error("storage is closed (reopening after a fault)", fault::closed);
  }

  // After a write failed: whether storage takes writes again. Once a probe
  // file can be written and synced in the storage directory and there is
  // room for replaying the WAL, closes and reopens the database (replaying
  // the WAL up to its last good record) and writes a probe record. Takes the
  // locks it needs: call it without holding lock().
  status recover();

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

  const store_options& options() const { return opts_; }

  rocksdb::DB* db() const { return db_; }
  rocksdb::ColumnFamilyHandle* readings_cf() const { return cfs_[1]; }
  rocksdb::ColumnFamilyHandle* rollups_cf() const { return cfs_[2]; }
  rocksdb::ColumnFamilyHandle* meta_cf() const { return cfs_[3]; }
  rocksdb::ColumnFamilyHandle* log_cf() const { return cfs_[4]; }

 private:
  store() = default;
  status open_db();
  void close_db();
  status probe_write();

  store_options opts_;
  std::unique_ptr<rocksdb::Env> env_;  // with fault injection: the wrapped file system
  mutable std::shared_mutex mtx_;
  std::mutex write_mtx_;  // RocksDB writes one at a time (store.cpp, write())
  rocksdb::DB* db_ = nullptr;
  std::vector<rocksdb::ColumnFamilyHandle*> cfs_;  // default, readings, rollups, meta, log
  bool sync_ = false;
};

}  // namespace pulse::storage
