#include "storage/store.hpp"

#include <rocksdb/cache.h>
#include <rocksdb/convenience.h>
#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/options.h>
#include <rocksdb/table.h>
#include <rocksdb/utilities/checkpoint.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <filesystem>
#include <map>

#include "storage/codec.hpp"
#include "storage/head_log.hpp"
#include "storage/keys.hpp"
#include "storage/snapshot.hpp"
#include "storage/meta.hpp"

namespace pulse::storage {

namespace {

// Sizing for a small node (2 cores, a few GB of RAM shared with the rest of
// the process). Named here so they are easy to find and tune.
constexpr std::size_t block_cache_bytes = 64 << 20;
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

rocksdb::ColumnFamilyOptions cf_options(const std::shared_ptr<rocksdb::Cache>& cache,
                                        std::size_t write_buffer, bool bloom, bool compress) {
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
  t.cache_index_and_filter_blocks = true;
  t.pin_l0_filter_and_index_blocks_in_cache = true;
  o.table_factory.reset(rocksdb::NewBlockBasedTableFactory(t));
  return o;
}

}  // namespace

std::unique_ptr<store> store::open(const store_options& opts, status& st) {
  // RocksDB creates the last directory only; storage.path may be nested.
  std::error_code ec;
  std::filesystem::create_directories(opts.path, ec);
  if (ec) {
    st = status::error("cannot create " + opts.path + ": " + ec.message());
    return nullptr;
  }
  rocksdb::DBOptions dbo;
  dbo.create_if_missing = true;
  dbo.create_missing_column_families = true;
  dbo.IncreaseParallelism(2);
  dbo.max_background_jobs = 2;
  dbo.max_total_wal_size = max_total_wal_bytes;
  dbo.keep_log_file_num = 4;

  auto cache = rocksdb::NewLRUCache(block_cache_bytes);
  std::vector<rocksdb::ColumnFamilyDescriptor> cfds;
  cfds.emplace_back(cf_names[0], cf_options(cache, meta_write_buffer, false, false));
  cfds.emplace_back(cf_names[1], cf_options(cache, readings_write_buffer, false, true));
  cfds.emplace_back(cf_names[2], cf_options(cache, rollups_write_buffer, true, true));
  cfds.emplace_back(cf_names[3], cf_options(cache, meta_write_buffer, true, true));
  cfds.emplace_back(cf_names[4], cf_options(cache, log_write_buffer, false, false));

  std::unique_ptr<store> s(new store());
  s->sync_ = opts.sync;
  rocksdb::DB* db = nullptr;
  auto rs = rocksdb::DB::Open(dbo, opts.path, cfds, &s->cfs_, &db);
  if (!rs.ok()) {
    st = status::error("cannot open RocksDB at " + opts.path + ": " + rs.ToString());
    return nullptr;
  }
  s->db_ = db;
  st = status::success();
  return s;
}

store::~store() {
  if (!db_) return;
  for (auto* cf : cfs_) {
    // Only fails for a null handle; nothing to do about it in a destructor.
    db_->DestroyColumnFamilyHandle(cf).PermitUncheckedError();
  }
  // Close() flushes nothing (the WAL holds unflushed writes) and an error
  // here cannot be reported from a destructor; the DB is deleted either way.
  db_->Close().PermitUncheckedError();
  delete db_;
}

status store::write(rocksdb::WriteBatch& batch) {
  rocksdb::WriteOptions wo;
  wo.sync = sync_;
  auto s = db_->Write(wo, &batch);
  if (!s.ok()) return status::error("RocksDB write failed: " + s.ToString());
  return status::success();
}

std::optional<device_record> store::load_device(std::string_view device, status& st) const {
  meta_record rec;
  bool found = false;
  snapshot snap(*this);  // meta and the head log agree
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
  // Prometheus-ready lines (`name{cf="..."} value`) so /metrics can append them as-is.
  struct prop {
    const char* rocksdb_name;
    const char* metric;
  };
  static const prop per_cf[] = {
      {"rocksdb.estimate-num-keys", "pulse_rocksdb_estimate_num_keys"},
      {"rocksdb.cur-size-all-mem-tables", "pulse_rocksdb_memtable_bytes"},
      {"rocksdb.live-sst-files-size", "pulse_rocksdb_live_sst_bytes"},
      {"rocksdb.num-files-at-level0", "pulse_rocksdb_l0_files"},
      {"rocksdb.estimate-pending-compaction-bytes", "pulse_rocksdb_pending_compaction_bytes"},
  };
  static const prop per_db[] = {
      {"rocksdb.num-running-compactions", "pulse_rocksdb_running_compactions"},
      {"rocksdb.num-running-flushes", "pulse_rocksdb_running_flushes"},
      {"rocksdb.block-cache-usage", "pulse_rocksdb_block_cache_bytes"},
  };
  std::string out;
  std::uint64_t v = 0;
  for (const auto& p : per_cf) {
    for (std::size_t i = 1; i < cfs_.size(); ++i) {
      if (!db_->GetIntProperty(cfs_[i], p.rocksdb_name, &v)) continue;
      out += p.metric;
      out += "{cf=\"";
      out += cf_names[i];
      out += "\"} ";
      out += std::to_string(v);
      out += '\n';
    }
  }
  for (const auto& p : per_db) {
    if (!db_->GetIntProperty(p.rocksdb_name, &v)) continue;
    out += p.metric;
    out += ' ';
    out += std::to_string(v);
    out += '\n';
  }
  return out;
}

}  // namespace pulse::storage
