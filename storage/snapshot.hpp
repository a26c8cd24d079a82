#pragma once
// A RocksDB snapshot held for the life of one read, so that everything the
// read looks at (meta, head log, rollups, chunks) comes from the same set of
// writes. Internal to storage/.

#include <rocksdb/db.h>

#include "storage/store.hpp"

namespace pulse::storage {

class snapshot {
 public:
  explicit snapshot(const store& db) : db_(db.db()), snap_(db_->GetSnapshot()) {
    options_.snapshot = snap_;
  }
  ~snapshot() { db_->ReleaseSnapshot(snap_); }
  snapshot(const snapshot&) = delete;
  snapshot& operator=(const snapshot&) = delete;

  const rocksdb::ReadOptions& options() const { return options_; }

 private:
  rocksdb::DB* db_;
  const rocksdb::Snapshot* snap_;
  rocksdb::ReadOptions options_;
};

}  // namespace pulse::storage
