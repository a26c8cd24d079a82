#pragma once
// A RocksDB snapshot held for the life of one read, so that everything the
// read looks at (meta, head log, rollups, chunks) comes from the same set of
// writes. Internal to storage/.

#include <rocksdb/db.h>

#include "storage/store.hpp"

namespace pulse::storage {

// Holds the store's lock for its life (store::lock()); check ok() first: a
// store closed by a failed reopen has no DB to read.
class snapshot {
 public:
  explicit snapshot(const store& db)
      : lock_(db.lock()), db_(db.db()), snap_(db_ ? db_->GetSnapshot() : nullptr) {
    options_.snapshot = snap_;
  }
  ~snapshot() {
    if (db_) db_->ReleaseSnapshot(snap_);
  }
  bool ok() const { return db_ != nullptr; }
  snapshot(const snapshot&) = delete;
  snapshot& operator=(const snapshot&) = delete;

  const rocksdb::ReadOptions& options() const { return options_; }

 private:
  std::shared_lock<std::shared_mutex> lock_;
  rocksdb::DB* db_;
  const rocksdb::Snapshot* snap_;
  rocksdb::ReadOptions options_;
};

}  // namespace pulse::storage
