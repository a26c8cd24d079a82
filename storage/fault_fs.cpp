#include "storage/fault_fs.hpp"

#include <rocksdb/file_system.h>

namespace pulse::storage {

namespace {

using rocksdb::IODebugContext;
using rocksdb::IOOptions;
using rocksdb::IOStatus;
using rocksdb::Slice;

class faulty_file final : public rocksdb::FSWritableFileOwnerWrapper {
 public:
  faulty_file(std::unique_ptr<rocksdb::FSWritableFile> f, std::shared_ptr<fault_injector> faults)
      : FSWritableFileOwnerWrapper(std::move(f)), faults_(std::move(faults)) {}

  IOStatus Append(const Slice& data, const IOOptions& o, IODebugContext* dbg) override {
    if (auto s = on_write(); !s.ok()) return s;
    return FSWritableFileOwnerWrapper::Append(data, o, dbg);
  }
  IOStatus Append(const Slice& data, const IOOptions& o, const rocksdb::DataVerificationInfo& v,
                  IODebugContext* dbg) override {
    if (auto s = on_write(); !s.ok()) return s;
    return FSWritableFileOwnerWrapper::Append(data, o, v, dbg);
  }
  IOStatus PositionedAppend(const Slice& data, uint64_t offset, const IOOptions& o,
                            IODebugContext* dbg) override {
    if (auto s = on_write(); !s.ok()) return s;
    return FSWritableFileOwnerWrapper::PositionedAppend(data, offset, o, dbg);
  }
  IOStatus Sync(const IOOptions& o, IODebugContext* dbg) override {
    if (auto s = on_sync(); !s.ok()) return s;
    return FSWritableFileOwnerWrapper::Sync(o, dbg);
  }
  IOStatus Fsync(const IOOptions& o, IODebugContext* dbg) override {
    if (auto s = on_sync(); !s.ok()) return s;
    return FSWritableFileOwnerWrapper::Fsync(o, dbg);
  }

 private:
  IOStatus on_write() {
    switch (faults_->mode.load(std::memory_order_relaxed)) {
      case injected_fault::eio_write:
        faults_->hits.fetch_add(1, std::memory_order_relaxed);
        return IOStatus::IOError("injected EIO on write");
      case injected_fault::no_space:
        faults_->hits.fetch_add(1, std::memory_order_relaxed);
        return IOStatus::NoSpace("injected ENOSPC");
      default:
        return IOStatus::OK();
    }
  }
  IOStatus on_sync() {
    if (faults_->mode.load(std::memory_order_relaxed) != injected_fault::eio_sync)
      return IOStatus::OK();
    faults_->hits.fetch_add(1, std::memory_order_relaxed);
    return IOStatus::IOError("injected EIO on sync");
  }

  std::shared_ptr<fault_injector> faults_;
};

class faulty_fs final : public rocksdb::FileSystemWrapper {
 public:
  explicit faulty_fs(std::shared_ptr<fault_injector> faults)
      : FileSystemWrapper(rocksdb::FileSystem::Default()), faults_(std::move(faults)) {}
  const char* Name() const override { return "PulseFaultInjection"; }

  IOStatus NewWritableFile(const std::string& f, const rocksdb::FileOptions& o,
                           std::unique_ptr<rocksdb::FSWritableFile>* r,
                           IODebugContext* dbg) override {
    return wrap(target()->NewWritableFile(f, o, r, dbg), r);
  }
  IOStatus ReopenWritableFile(const std::string& f, const rocksdb::FileOptions& o,
                              std::unique_ptr<rocksdb::FSWritableFile>* r,
                              IODebugContext* dbg) override {
    return wrap(target()->ReopenWritableFile(f, o, r, dbg), r);
  }
  IOStatus ReuseWritableFile(const std::string& f, const std::string& old,
                             const rocksdb::FileOptions& o,
                             std::unique_ptr<rocksdb::FSWritableFile>* r,
                             IODebugContext* dbg) override {
    return wrap(target()->ReuseWritableFile(f, old, o, r, dbg), r);
  }

 private:
  IOStatus wrap(IOStatus s, std::unique_ptr<rocksdb::FSWritableFile>* r) {
    if (s.ok()) *r = std::make_unique<faulty_file>(std::move(*r), faults_);
    return s;
  }
  std::shared_ptr<fault_injector> faults_;
};

}  // namespace

std::unique_ptr<rocksdb::Env> make_fault_env(std::shared_ptr<fault_injector> faults) {
  return rocksdb::NewCompositeEnv(std::make_shared<faulty_fs>(std::move(faults)));
}

}  // namespace pulse::storage
