#pragma once
// A RocksDB file system that fails writes on demand (debug.fault-injection):
// every file RocksDB creates for writing (WAL, SST, MANIFEST, its info log)
// is wrapped; while the injector's mode is set, appends (eio_write,
// no_space) or syncs (eio_sync) fail the way a failing disk makes them fail.
// Internal to storage/.

#include <memory>

#include <rocksdb/env.h>

#include "storage/store.hpp"

namespace pulse::storage {

std::unique_ptr<rocksdb::Env> make_fault_env(std::shared_ptr<fault_injector> faults);

}  // namespace pulse::storage
