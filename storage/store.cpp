#include "storage/store.hpp"

#include <rocksdb/cache.h>
#include <rocksdb/convenience.h>
#include <rocksdb/db.h>
#include <rocksdb/env.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/options.h>
#include <rocksdb/table.h>
#include <rocksdb/utilities/checkpoint.h>
#include <rocksdb/write_batch.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <ctime>
#include <unordered_map>
#include <filesystem>
#include <map>

#include "storage/fault_fs.hpp"
#include "storage/codec.hpp"
#include "storage/head_log.hpp"
#include "storage/keys.hpp"
#include "storage/snapshot.hpp"
#include "storage/meta.hpp"
#include "storage/rollup_merge.hpp"

namespace pulse::storage {

namespace {

// Sizing for a small node (2 cores, a few GB of RAM shared with the rest of
// the process). Named here so they are easy to find and tune.
constexpr std::size_t readings_write_buffer = 32 << 20;
constexpr std::size_t rollups_write_buffer = 16 << 20;
constexpr std::size_t meta_write_buffer = 4 << 20;
// The head log lives seconds before a checkpoint deletes it: a small buffer
// gets its tombstones flushed (and compacted away) soon.
constexpr std::size_t log_write_buffer = 16 << 20;
// Bounds the WAL: a lightly written CF (meta) would otherwise pin old WAL
// files until its memtable fills.
constexpr std::uint64_t max_total_wal_bytes = 256 << 20;

const char* const cf_names[] = {"default", "readings", "rollups", "meta", "log"};

bool lz4_available() {
  auto all = rocksdb::GetSupportedCompressions();
  return std::find(all.begin(), all.end(), rocksdb::kLZ4Compression) != all.end();
}

// `pinned`: index and filter blocks live with the table readers (always in
// memory, outside the block cache). For `meta`, whose filter answers the one
// Get a device new to the node costs on the write path: with it in the block
// cache, a fleet larger than the cache evicted it and every such Get loaded,
// decompressed and checksummed a filter block again (perf, 1,000,000 devices:
// 75% of a shard thread). It costs ~10 bits per device.
rocksdb::ColumnFamilyOptions cf_options(const std::shared_ptr<rocksdb::Cache>& cache,
                                        std::size_t write_buffer, bool bloom, bool compress,
                                        bool pinned = false) {
  rocksdb::ColumnFamilyOptions o;
  o.write_buffer_size = write_buffer;
  o.max_write_buffer_number = 3;
  // Chunks are mostly raw doubles, so LZ4 gains little on them, but it is
  // cheap and the keys and varint framing do compress; skip it when the
  // library was built without LZ4.
  o.compression = compress && lz4_available() ? rocksdb::kLZ4Compression : rocksdb::kNoCompression;
  rocksdb::BlockBasedTableOptions t;
  t.block_cache = cache;
  // Rollups and meta are read by point Get: a Bloom filter turns the many
  // misses of sparse devices into memory-only checks.
  if (bloom) t.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  t.cache_index_and_filter_blocks = !pinned;
  t.pin_l0_filter_and_index_blocks_in_cache = true;
  o.table_factory.reset(rocksdb::NewBlockBasedTableFactory(t));
  return o;
}

// RocksDB's warnings and errors go to the node's log instead of RocksDB's
// own LOG file. Measured reason: on a full disk a failed append to that file
// leaves its writer in an error state, and RocksDB's next log line (its
// error handler logs the very fault) trips an assertion Debian's build keeps
// ('sync_without_flush_called_' in writable_file_writer.h) and aborts the
// node. Without a LOG file there is no such writer.
class rocksdb_log final : public rocksdb::Logger {
 public:
  rocksdb_log() : Logger(rocksdb::InfoLogLevel::WARN_LEVEL) {}
  using Logger::Logv;
  void Logv(const char* format, va_list ap) override {
    Logv(rocksdb::InfoLogLevel::INFO_LEVEL, format, ap);
  }
  void Logv(const rocksdb::InfoLogLevel level, const char* format, va_list ap) override {
    if (level < GetInfoLogLevel() || level == rocksdb::InfoLogLevel::HEADER_LEVEL) return;
    {
      // While the disk is full RocksDB repeats the same lines every second:
      // each of its messages (its format string) at most every 30 s.
      auto now = std::chrono::steady_clock::now();
      std::lock_guard lk(mtx_);
      auto [it, first] = last_.try_emplace(format, now);
      if (!first) {
        if (now - it->second < std::chrono::seconds(30)) return;
        it->second = now;
      }
      if (last_.size() > 256) last_.clear();
    }
    char buf[1024];
    std::vsnprintf(buf, sizeof(buf), format, ap);
    auto lvl = level >= rocksdb::InfoLogLevel::FATAL_LEVEL   ? spdlog::level::critical
               : level >= rocksdb::InfoLogLevel::ERROR_LEVEL ? spdlog::level::err
               : level >= rocksdb::InfoLogLevel::WARN_LEVEL  ? spdlog::level::warn
                                                             : spdlog::level::debug;
    spdlog::log(lvl, "rocksdb: {}", buf);
  }

 private:
  std::mutex mtx_;
  std::unordered_map<const char*, std::chrono::steady_clock::time_point> last_;
};

fault classify(const rocksdb::Status& s) {
  if (s.IsNoSpace()) return fault::no_space;
  if (s.IsCorruption()) return fault::corruption;
  return fault::io_error;
}

// An existing database without CURRENT: RocksDB (create_if_missing) would
// start a new, empty one over it, and every stored reading would seem gone.
bool orphaned_files(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::exists(std::filesystem::path(path) / "CURRENT", ec)) return false;
  for (const auto& e : std::filesystem::directory_iterator(path, ec)) {
    auto name = e.path().filename().string();
    auto ext = e.path().extension().string();
    if (name.rfind("MANIFEST-", 0) == 0 || ext == ".sst" || ext == ".log") return true;
  }
  return false;
}

}  // namespace

const char* to_string(fault f) {
  switch (f) {
    case fault::none: return "none";
    case fault::no_space: return "no_space";
    case fault::io_error: return "io_error";
    case fault::corruption: return "corruption";
    case fault::closed: return "closed";
  }
  return "unknown";
}

std::unique_ptr<store> store::open(const store_options& opts, status& st) {
  // RocksDB creates the last directory only; storage.path may be nested.
  std::error_code ec;
  std::filesystem::create_directories(opts.path, ec);
  if (ec) {
    st = status::error("cannot create " + opts.path + ": " + ec.message());
    return nullptr;
  }
  if (orphaned_files(opts.path)) {
    st = status::error(opts.path + "/CURRENT is missing but the directory holds RocksDB files; "
                       "not starting an empty store over them. Repair: restore a backup, or "
                       "run `ldb --db=" + opts.path + " repair` (Debian package rocksdb-tools), "
                       "which rebuilds CURRENT and the MANIFEST from the files that are there",
                       fault::corruption);
    return nullptr;
  }
  if (opts.wal_recovery != "point-in-time" && opts.wal_recovery != "absolute-consistency") {
    st = status::error("unknown WAL recovery mode " + opts.wal_recovery);
    return nullptr;
  }
  std::unique_ptr<store> s(new store());
  s->opts_ = opts;
  s->sync_ = opts.sync;
  if (opts.faults) s->env_ = make_fault_env(opts.faults);
  st = s->open_db();
  if (!st) return nullptr;
  return s;
}

status store::open_db() {
  rocksdb::DBOptions dbo;
  dbo.create_if_missing = true;
  dbo.create_missing_column_families = true;
  dbo.IncreaseParallelism(2);
  dbo.max_background_jobs = 2;
  dbo.max_total_wal_size = max_total_wal_bytes;
  dbo.keep_log_file_num = 4;
  dbo.wal_recovery_mode = opts_.wal_recovery == "absolute-consistency"
                            ? rocksdb::WALRecoveryMode::kAbsoluteConsistency
                            : rocksdb::WALRecoveryMode::kPointInTimeRecovery;
  if (env_) dbo.env = env_.get();
  dbo.info_log = std::make_shared<rocksdb_log>();

  auto cache = rocksdb::NewLRUCache(opts_.cache_bytes);
  std::vector<rocksdb::ColumnFamilyDescriptor> cfds;
  cfds.emplace_back(cf_names[0], cf_options(cache, meta_write_buffer, false, false));
  cfds.emplace_back(cf_names[1], cf_options(cache, readings_write_buffer, false, true));
  auto rollups = cf_options(cache, rollups_write_buffer, true, true);
  rollups.merge_operator = make_rollup_merge_operator();
  cfds.emplace_back(cf_names[2], std::move(rollups));
  cfds.emplace_back(cf_names[3], cf_options(cache, meta_write_buffer, true, true, true));
  cfds.emplace_back(cf_names[4], cf_options(cache, log_write_buffer, false, false));

  rocksdb::DB* db = nullptr;
  auto rs = rocksdb::DB::Open(dbo, opts_.path, cfds, &cfs_, &db);
  if (!rs.ok()) {
    cfs_.clear();
    std::string msg = "cannot open RocksDB at " + opts_.path + ": " + rs.ToString();
    if (rs.IsCorruption())
      msg += ". Repair: restore a backup, or run `ldb --db=" + opts_.path +
             " repair` (Debian package rocksdb-tools), which drops what is damaged";
    return status::error(std::move(msg), classify(rs));
  }
  db_ = db;
  return status::success();
}

void store::close_db() {
  if (!db_) return;
  for (auto* cf : cfs_) {
    // Only fails for a null handle; nothing to do about it here.
    db_->DestroyColumnFamilyHandle(cf).PermitUncheckedError();
  }
  cfs_.clear();
  // Close() flushes nothing (the WAL holds unflushed writes); after a fault
  // it may report that fault again, which changes nothing: the DB goes.
  db_->Close().PermitUncheckedError();
  delete db_;
  db_ = nullptr;
}

store::~store() { close_db(); }

status store::write(rocksdb::WriteBatch& batch) {
  if (!db_) return store::closed();
  rocksdb::WriteOptions wo;
  wo.sync = sync_;
  // One write at a time. Measured reason: on a full tmpfs with two shards
  // writing, a core dump showed a shard's write (a checkpoint, issued just
  // as the other shard's write failed) appending to a WAL file writer that
  // had already failed, and the writer's assertion aborting the node. In
  // turn, a write starts only once the one before has returned, by which time
  // RocksDB has recorded a failure and refuses writes until the reopen in
  // recover(). A shard's write is a whole flush: little group commit is lost.
  std::lock_guard serial(write_mtx_);
  auto s = db_->Write(wo, &batch);
  if (!s.ok()) return status::error("RocksDB write failed: " + s.ToString(), classify(s));
  return status::success();
}

status store::probe_write() {
  rocksdb::WriteOptions wo;
  wo.sync = sync_;
  std::lock_guard serial(write_mtx_);
  auto s = db_->Put(wo, cfs_[0], "pulse.probe", std::to_string(std::time(nullptr)));
  if (!s.ok()) return status::error("probe write failed: " + s.ToString(), classify(s));
  return status::success();
}

namespace {

// Whether the file system takes a small write and sync in the storage
// directory (through RocksDB's Env, so injected faults count).
rocksdb::Status probe_file(rocksdb::Env* env, const std::string& dir) {
  auto name = dir + "/.pulse-probe";
  std::unique_ptr<rocksdb::WritableFile> f;
  auto s = env->NewWritableFile(name, &f, rocksdb::EnvOptions());
  if (s.ok()) s = f->Append("probe");
  if (s.ok()) s = f->Sync();
  if (f) f->Close().PermitUncheckedError();
  env->DeleteFile(name).PermitUncheckedError();
  return s;
}

}  // namespace

status store::recover() {
  // Not RocksDB's Resume(): an I/O error on the WAL is fatal to the open DB,
  // and after a full disk RocksDB's own recovery may clear the error while
  // the WAL's file writer still remembers it, so that the next write aborts
  // the process (an assertion Debian's build keeps; seen here under load on
  // a full tmpfs). A reopen starts with fresh writers and replays the WAL up
  // to its last good record. Only once the disk takes a write again, and has
  // room for the replay's flush (about the WAL's size), so that a reopen
  // that cannot finish does not leave queries without a database.
  auto* env = env_ ? env_.get() : rocksdb::Env::Default();
  if (auto ps = probe_file(env, opts_.path); !ps.ok())
    return status::error("storage still refuses writes: " + ps.ToString(), classify(ps));
  std::error_code ec;
  std::uintmax_t wal = 0;
  for (const auto& e : std::filesystem::directory_iterator(opts_.path, ec))
    if (e.path().extension() == ".log") wal += e.file_size(ec);
  auto space = std::filesystem::space(opts_.path, ec);
  if (!ec && space.available < wal + (wal >> 2))
    return status::error("waiting for room to replay the WAL: " + std::to_string(wal >> 20) +
                           " MiB of WAL, " + std::to_string(space.available >> 20) + " MiB free",
                         fault::no_space);
  std::unique_lock lk(mtx_);
  close_db();
  if (auto st = open_db(); !st) return st;
  return probe_write();
}

std::optional<device_record> store::load_device(std::string_view device, status& st) const {
  meta_record rec;
  bool found = false;
  snapshot snap(*this);  // meta and the head log agree
  if (!snap.ok()) {
    st = closed();
    return std::nullopt;
  }
  st = read_device(*this, snap.options(), device, rec, found, nullptr);
  if (!st || !found) return std::nullopt;
  return to_device_record(device, rec);
}

std::vector<device_record> store::list_devices(std::string_view prefix, std::string_view after,
                                               std::size_t limit, status& st) const {
  st = status::success();
  std::vector<device_record> out;
  if (limit == 0) return out;
  std::string lower;
  append_meta_key(lower, prefix);
  // Every meta key starting with 'd' + prefix sorts below this bound.
  std::string upper = prefix_successor(lower);
  snapshot snap(*this);
  if (!snap.ok()) {
    st = closed();
    return {};
  }
  auto ro = snap.options();
  // Devices the head log knows: newer records, and devices not checkpointed yet.
  std::map<std::string, meta_record, std::less<>> head;
  st = read_head_records(*this, ro, prefix, head);
  if (!st) return {};
  auto head_it = after.empty() ? head.begin() : head.upper_bound(after);
  rocksdb::Slice upper_slice(upper);
  if (!upper.empty()) ro.iterate_upper_bound = &upper_slice;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, meta_cf()));
  std::string start = lower;
  if (!after.empty()) {
    std::string after_key;
    append_meta_key(after_key, after);
    if (after_key > start) start = std::move(after_key);
  }
  meta_record rec;
  for (it->Seek(start); it->Valid() && out.size() < limit; it->Next()) {
    auto k = it->key();
    std::string_view key(k.data(), k.size());
    std::string_view device;
    if (!decode_meta_key(key, device)) continue;  // not a device record
    if (!after.empty() && device == after) continue;
    // Head-only devices sorting before this one come first.
    for (; head_it != head.end() && head_it->first < device && out.size() < limit; ++head_it)
      out.push_back(to_device_record(head_it->first, head_it->second));
    if (out.size() == limit) break;
    if (head_it != head.end() && head_it->first == device) {
      out.push_back(to_device_record(device, head_it->second));
      ++head_it;
      continue;
    }
    auto v = it->value();
    if (!decode_meta(std::string_view(v.data(), v.size()), rec)) {
      st = status::error("corrupt meta record for device " + std::string(device));
      return {};
    }
    out.push_back(to_device_record(device, rec));
  }
  for (; head_it != head.end() && out.size() < limit; ++head_it)
    out.push_back(to_device_record(head_it->first, head_it->second));
  auto s = it->status();
  if (!s.ok()) {
    st = status::error("listing devices failed: " + s.ToString());
    return {};
  }
  return out;
}

namespace {

// [begin, end) of every key whose first bytes are `tag` (optional) and a
// big-endian u32 bucket below `end_bucket`.
std::pair<std::string, std::string> bucket_range(std::string_view tag, std::uint32_t end_bucket) {
  std::string begin(tag), end(tag);
  codec::put_u32_be(begin, 0);
  codec::put_u32_be(end, end_bucket);
  return {begin, end};
}

}  // namespace

status store::expire(std::int64_t readings_before_ms, std::int64_t rollups_before_ms) {
  auto lk = lock();  // the handles below must not be swapped by a reopen meanwhile
  if (!db_) return store::closed();
  struct range {
    rocksdb::ColumnFamilyHandle* cf;
    std::pair<std::string, std::string> keys;
  };
  std::vector<range> ranges;
  if (readings_before_ms > 0)
    ranges.push_back({readings_cf(), bucket_range({}, hour_bucket(readings_before_ms))});
  if (rollups_before_ms > 0) {
    const char minute_tag[] = {static_cast<char>(resolution::minute)};
    const char hour_tag[] = {static_cast<char>(resolution::hour)};
    ranges.push_back({rollups_cf(), bucket_range({minute_tag, 1}, minute_bucket(rollups_before_ms))});
    ranges.push_back({rollups_cf(), bucket_range({hour_tag, 1}, hour_bucket(rollups_before_ms))});
  }
  rocksdb::WriteBatch batch;
  for (auto& r : ranges) {
    if (r.keys.first >= r.keys.second) continue;
    rocksdb::Slice b(r.keys.first), e(r.keys.second);
    // Whole SST files inside the range go at once (no compaction needed for them).
    auto s = rocksdb::DeleteFilesInRange(db_, r.cf, &b, &e);
    if (!s.ok()) return status::error("retention: dropping files: " + s.ToString());
    s = batch.DeleteRange(r.cf, b, e);
    if (!s.ok()) return status::error("retention: " + s.ToString());
  }
  if (batch.Count() == 0) return status::success();
  return write(batch);
}

status store::checkpoint(const std::string& dir, std::uint64_t& bytes,
                         std::uint64_t& files) const {
  bytes = files = 0;
  auto lk = lock();
  if (!db_) return store::closed();
  rocksdb::Checkpoint* raw = nullptr;
  auto s = rocksdb::Checkpoint::Create(db_, &raw);
  if (!s.ok()) return status::error("checkpoint: " + s.ToString());
  std::unique_ptr<rocksdb::Checkpoint> cp(raw);
  // log_size_for_flush 0: memtables are flushed first, so the copy needs
  // little WAL; the WAL files it still needs are copied, never linked.
  s = cp->CreateCheckpoint(dir, 0);
  if (!s.ok()) return status::error("checkpoint to " + dir + ": " + s.ToString());
  std::error_code ec;
  for (auto& e : std::filesystem::recursive_directory_iterator(dir, ec)) {
    if (!e.is_regular_file(ec)) continue;
    bytes += e.file_size(ec);
    ++files;
  }
  return status::success();
}

std::string store::stats_text() const {
  // Prometheus text (HELP, TYPE, `name{cf="..."} value`) so /metrics can append it as-is.
  struct prop {
    const char* rocksdb_name;
    const char* metric;
    const char* help;
  };
  // All gauges. num-files-at-level<N> is a string property: GetIntProperty
  // knows only the names in RocksDB's int-property table and returns false
  // for it, which is why pulse_rocksdb_l0_files was never emitted.
  static const prop per_cf[] = {
      {"rocksdb.estimate-num-keys", "pulse_rocksdb_estimate_num_keys",
       "Estimated keys in the column family (RocksDB estimate-num-keys)."},
      {"rocksdb.cur-size-all-mem-tables", "pulse_rocksdb_memtable_bytes",
       "Bytes in the column family's memtables."},
      {"rocksdb.live-sst-files-size", "pulse_rocksdb_live_sst_bytes",
       "Bytes of the column family's live SST files."},
      {"rocksdb.num-files-at-level0", "pulse_rocksdb_l0_files",
       "SST files at level 0 (many slow reads; RocksDB stalls writes past its limits)."},
      {"rocksdb.estimate-pending-compaction-bytes", "pulse_rocksdb_pending_compaction_bytes",
       "Estimated bytes compaction still has to rewrite."},
  };
  static const prop per_db[] = {
      {"rocksdb.num-running-compactions", "pulse_rocksdb_running_compactions",
       "Compactions running now."},
      {"rocksdb.num-running-flushes", "pulse_rocksdb_running_flushes",
       "Memtable flushes running now."},
      {"rocksdb.block-cache-usage", "pulse_rocksdb_block_cache_bytes",
       "Bytes held by the block cache."},
  };
  auto read = [this](rocksdb::ColumnFamilyHandle* cf, const char* name, std::uint64_t& v) {
    if (db_->GetIntProperty(cf, name, &v)) return true;
    std::string text;
    if (!db_->GetProperty(cf, name, &text)) return false;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    return ec == std::errc{} && end == text.data() + text.size();
  };
  auto header = [](std::string& out, const prop& p) {
    out += "# HELP ";
    out += p.metric;
    out += ' ';
    out += p.help;
    out += "\n# TYPE ";
    out += p.metric;
    out += " gauge\n";
  };
  std::string out;
  std::uint64_t v = 0;
  auto lk = lock();
  if (!db_) return out;
  for (const auto& p : per_cf) {
    header(out, p);
    for (std::size_t i = 1; i < cfs_.size(); ++i) {
      if (!read(cfs_[i], p.rocksdb_name, v)) continue;
      out += p.metric;
      out += "{cf=\"";
      out += cf_names[i];
      out += "\"} ";
      out += std::to_string(v);
      out += '\n';
    }
  }
  for (const auto& p : per_db) {
    if (!read(db_->DefaultColumnFamily(), p.rocksdb_name, v)) continue;
    header(out, p);
    out += p.metric;
    out += ' ';
    out += std::to_string(v);
    out += '\n';
  }
  return out;
}

}  // namespace pulse::storage
