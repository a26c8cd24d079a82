#include "storage/batcher.hpp"

#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <cmath>

#include "storage/chunk.hpp"
#include "storage/head_log.hpp"
#include "storage/keys.hpp"
#include "storage/meta.hpp"
#include "storage/rollup.hpp"

namespace pulse::storage {

namespace {

// Rollup rows not touched in this many flushes leave the cache; a later
// reading for them adds a Merge operand instead of the whole row.
constexpr std::uint64_t rollup_cache_keep_flushes = 32;
// Hard bound on cached rollup rows (2 per active device: minute and hour).
constexpr std::size_t rollup_cache_max_rows = 200'000;
// How often (in flushes) the rollup cache is swept when under its bound.
constexpr std::uint64_t sweep_every_flushes = 16;
// Dictionaries up to this size are searched linearly (no map per device).
constexpr std::size_t linear_dictionary = 16;

constexpr std::uint32_t unmapped = UINT32_MAX;

}  // namespace

struct batcher::impl {
  // Everything the batcher knows about one device. `rec` is the meta record
  // as it will be written by the next flush (dictionary growth and `meta`
  // are applied at add time; seq and latest values at flush time).
  struct device_state {
    std::string id;
    meta_record rec;
    // Dictionary name -> id, only for dictionaries over linear_dictionary.
    std::unique_ptr<std::unordered_map<std::string, std::uint32_t>> ids;
    // Every rollup row of this device on disk is for a ts <= disk_max_ts
    // (-1: none): a bucket after it has no stored row, so its row can be
    // written whole without reading anything.
    std::int64_t disk_max_ts = -1;
    std::size_t bytes = 0;  // footprint counted in the device cache
    bool has_record = false;        // a meta record is stored (so readings are too)
    bool seen_any = false;          // some seq is stored or buffered: seq 0 is taken
    std::uint64_t highest_seq = 0;  // highest seq stored or buffered
    bool first_seen_set = false;
    bool dirty = false;                      // listed in dirty_ (added since the last flush)
    bool in_head = false;                    // listed in head_ (for the next checkpoint)
    bool meta_changed = false;               // rec.meta differs from what is checkpointed
    bool meta_pending = false;               // rec.meta changed since the last flush
    std::uint64_t touched = 0;               // flush generation of the last add
    std::size_t row_begin = 0, row_end = 0;  // its rows_ range during a flush
  };

  // A buffered reading; its values are values_[first, first + count).
  struct pending_row {
    std::uint32_t device;
    std::uint16_t count;
    std::int64_t ts;
    std::uint64_t seq;
    std::uint32_t first;
  };

  struct ack_key {
    std::uint64_t owner;
    std::uint32_t device;
    bool operator==(const ack_key& o) const { return owner == o.owner && device == o.device; }
  };
  struct ack_key_hash {
    std::size_t operator()(const ack_key& k) const {
      return std::hash<std::uint64_t>()(k.owner * 0x9E3779B97F4A7C15ull ^ k.device);
    }
  };

  struct cached_rollup {
    rollup_row row;
    std::uint64_t touched = 0;
  };

  impl(store& db, std::uint16_t shard, head_options opts, bool all_shards)
      : db_(db), shard_(shard), opts_(opts) {
    // The log keys this batcher owns: its shard's, or every shard's.
    append_log_key(log_lo_, all_shards ? 0 : shard, 0);
    append_log_key(log_hi_, all_shards ? UINT16_MAX : shard, UINT64_MAX);
  }

  store& db_;
  std::uint16_t shard_;
  head_options opts_;
  std::string log_lo_, log_hi_;  // [lo, hi): this batcher's log records
  std::vector<std::uint32_t> head_;  // devices the next checkpoint writes
  std::size_t logged_ = 0;           // rows_[0, logged_) are in log records
  std::uint64_t next_record_ = 1;
  bool log_nonempty_ = false;        // log records exist that a checkpoint deletes
  bool needs_recovery_ = false;      // a write failed: reload meta and the log first
  log_record_writer log_writer_;
  std::string chunk_buf_;
  std::uint64_t generation_ = 1;  // incremented by every flush

  std::vector<std::unique_ptr<device_state>> slots_;
  std::vector<std::uint32_t> free_slots_;
  std::unordered_map<std::string_view, std::uint32_t> index_;  // keys view device_state::id
  std::size_t state_bytes_ = 0;  // footprint of the device states held
  std::uint64_t evicted_ = 0;    // device states dropped over the budget, ever
  std::vector<std::uint32_t> dirty_;

  // The buffer, shared by all devices so that capacity is reused across
  // flushes whatever the mix of devices.
  std::vector<pending_row> rows_;
  std::vector<chunk_value> values_;
  std::size_t pending_ = 0;  // rows_ plus duplicates awaiting their ack

  std::unordered_map<ack_key, std::size_t, ack_key_hash> ack_index_;
  std::vector<std::pair<ack_key, std::uint64_t>> acks_;

  std::unordered_map<std::string, cached_rollup> rollups_;

  // Scratch reused by every add() and flush().
  std::vector<std::uint32_t> local_ids_;
  rocksdb::WriteBatch batch_;
  std::string key_;
  std::string value_;
  chunk_encoder encoder_;
  rollup_row minute_partial_;
  rollup_row hour_partial_;

  // Finds or loads the state of `device`; nullptr with `st` set on a read
  // error. `load` false: a new state is not read from `meta` (log replay
  // installs a newer record over it anyway).
  device_state* touch(const std::string& device, std::uint32_t& slot, status& st,
                      bool load = true);
  void index_dictionary(device_state& d);
  static std::size_t footprint(const device_state& d);
  void recount(device_state& d);
  std::uint32_t metric_id(device_state& d, const std::string& name);
  status add_rollup(resolution res, std::uint32_t bucket, const device_state& d,
                    const rollup_row& partial);
  void update_record(device_state& d, std::size_t begin, std::size_t end);
  void note_ranges(std::size_t from);
  status build(flush_stats& stats);
  status log_flush(flush_stats& stats, bool& wrote);
  status checkpoint(flush_stats& stats);
  status recover(std::size_t& replayed);
  // Replays the log first when a failed write left the in-memory state unknown.
  status ensure_recovered();
  void reset();
  void sweep();
  void evict_states();
};

batcher::impl::device_state* batcher::impl::touch(const std::string& device, std::uint32_t& slot,
                                                  status& st, bool load) {
  st = status::success();
  auto i = index_.find(device);
  if (i != index_.end()) {
    slot = i->second;
    auto* d = slots_[slot].get();
    d->touched = generation_;
    return d;
  }
  auto d = std::make_unique<device_state>();
  bool found = false;
  if (load) st = read_meta(db_, rocksdb::ReadOptions(), device, d->rec, found);
  if (!st) return nullptr;
  d->id = device;
  d->touched = generation_;
  if (found) {
    d->has_record = true;
    d->seen_any = true;
    d->first_seen_set = true;
    d->highest_seq = d->rec.last_seq;
    d->disk_max_ts = d->rec.latest_ts;
    index_dictionary(*d);
  }
  if (!free_slots_.empty()) {
    slot = free_slots_.back();
    free_slots_.pop_back();
    slots_[slot] = std::move(d);
  } else {
    slot = static_cast<std::uint32_t>(slots_.size());
    slots_.push_back(std::move(d));
  }
  auto* state = slots_[slot].get();
  index_.emplace(std::string_view(state->id), slot);
  recount(*state);
  return state;
}

void batcher::impl::index_dictionary(device_state& d) {
  d.ids.reset();
  if (d.rec.metrics.size() <= linear_dictionary) return;
  d.ids = std::make_unique<std::unordered_map<std::string, std::uint32_t>>();
  d.ids->reserve(d.rec.metrics.size());
  for (std::uint32_t k = 0; k < d.rec.metrics.size(); ++k) d.ids->emplace(d.rec.metrics[k], k);
}

// What a device state costs in memory, roughly (allocator overhead aside):
// the state, its strings and vectors, and its index entry.
std::size_t batcher::impl::footprint(const device_state& d) {
  std::size_t n = sizeof(device_state) + 64 + d.id.capacity() + d.rec.meta.capacity() +
                  d.rec.metrics.capacity() * sizeof(std::string) +
                  d.rec.latest.capacity() * sizeof(chunk_value);
  for (const auto& m : d.rec.metrics) n += m.capacity() > 15 ? m.capacity() + 1 : 0;
  if (d.ids) n += d.ids->size() * 64;
  return n;
}

void batcher::impl::recount(device_state& d) {
  auto n = footprint(d);
  state_bytes_ += n - d.bytes;
  d.bytes = n;
}

std::uint32_t batcher::impl::metric_id(device_state& d, const std::string& name) {
  if (d.ids) {
    auto i = d.ids->find(name);
    if (i != d.ids->end()) return i->second;
  } else {
    for (std::size_t k = 0; k < d.rec.metrics.size(); ++k)
      if (d.rec.metrics[k] == name) return static_cast<std::uint32_t>(k);
  }
  if (d.rec.metrics.size() >= max_metrics_per_device || !valid_metric_name(name)) return unmapped;
  auto id = static_cast<std::uint32_t>(d.rec.metrics.size());
  d.rec.metrics.push_back(name);
  if (d.ids)
    d.ids->emplace(name, id);
  else if (d.rec.metrics.size() > linear_dictionary)
    index_dictionary(d);
  return id;
}

// Adds `partial` to the device's row of `bucket` without reading anything:
// a cached row (known whole) gets it merged and is Put whole; a bucket after
// everything the device has on disk starts a cached row; any other bucket
// (late data, or a row that left the cache) gets `partial` as a Merge
// operand, which the `rollups` merge operator (rollup_merge.hpp) folds into
// the stored row when it is read or compacted.
status batcher::impl::add_rollup(resolution res, std::uint32_t bucket, const device_state& d,
                                 const rollup_row& partial) {
  key_.clear();
  append_rollup_key(key_, res, bucket, d.id);
  auto it = rollups_.find(key_);
  if (it == rollups_.end()) {
    bool nothing_stored =
      d.disk_max_ts < 0 || bucket > (res == resolution::minute ? minute_bucket(d.disk_max_ts)
                                                               : hour_bucket(d.disk_max_ts));
    if (!nothing_stored) {
      value_.clear();
      encode_rollup_row(partial, value_);
      auto s = batch_.Merge(db_.rollups_cf(), key_, value_);
      if (!s.ok()) return status::error("WriteBatch merge failed: " + s.ToString());
      return status::success();
    }
    it = rollups_.emplace(key_, cached_rollup{}).first;
  }
  it->second.touched = generation_;
  it->second.row.merge(partial);
  value_.clear();
  encode_rollup_row(it->second.row, value_);
  auto s = batch_.Put(db_.rollups_cf(), key_, value_);
  if (!s.ok()) return status::error("WriteBatch put failed: " + s.ToString());
  return status::success();
}

// Fills batch_ from the buffer. Mutates cached rollup rows; on failure the
// caller resets everything.
// Sorts rows_[from, end) by (device, ts, seq) and sets each device's
// row_begin/row_end to its range there (devices without rows get an empty one).
void batcher::impl::note_ranges(std::size_t from) {
  std::sort(rows_.begin() + static_cast<std::ptrdiff_t>(from), rows_.end(),
            [](const pending_row& a, const pending_row& b) {
              if (a.device != b.device) return a.device < b.device;
              if (a.ts != b.ts) return a.ts < b.ts;
              return a.seq < b.seq;
            });
  for (auto slot : dirty_) slots_[slot]->row_begin = slots_[slot]->row_end = 0;
  for (auto slot : head_) slots_[slot]->row_begin = slots_[slot]->row_end = 0;
  for (std::size_t i = from; i < rows_.size();) {
    std::size_t j = i;
    while (j < rows_.size() && rows_[j].device == rows_[i].device) ++j;
    auto& d = *slots_[rows_[i].device];
    d.row_begin = i;
    d.row_end = j;
    i = j;
  }
}

// The meta record as of rows_[begin, end) (sorted by ts, seq): seq, range of
// ts and latest values. Idempotent, so a checkpoint may apply it again over
// rows a log flush already applied.
void batcher::impl::update_record(device_state& d, std::size_t begin, std::size_t end) {
  if (begin == end) return;
  auto& rec = d.rec;
  rec.last_seq = d.highest_seq;
  const auto& lo = rows_[begin];
  const auto& hi = rows_[end - 1];
  bool newer = !d.has_record || hi.ts > rec.latest_ts ||
               (hi.ts == rec.latest_ts && hi.seq > rec.latest_seq);
  if (newer) {
    rec.latest_ts = hi.ts;
    rec.latest_seq = hi.seq;
    rec.latest.assign(values_.begin() + hi.first, values_.begin() + hi.first + hi.count);
  }
  rec.earliest_ts = d.has_record ? std::min(rec.earliest_ts, lo.ts) : lo.ts;
  d.has_record = true;
}

status batcher::impl::build(flush_stats& stats) {
  note_ranges(0);
  for (auto slot : head_) {
    auto& d = *slots_[slot];
    const std::size_t begin = d.row_begin, end = d.row_end;
    if (begin == end && !d.meta_changed) continue;  // duplicates only: nothing to write
    ++stats.devices;

    // One chunk per hour bucket.
    for (std::size_t i = begin; i < end;) {
      auto hour = hour_bucket(rows_[i].ts);
      std::size_t j = i;
      while (j < end && hour_bucket(rows_[j].ts) == hour) ++j;
      key_.clear();
      append_readings_key(key_, hour, d.id, rows_[i].ts, rows_[i].seq);
      value_.clear();
      encoder_.begin(value_, j - i, rows_[i].ts, rows_[i].seq);
      for (std::size_t k = i; k < j; ++k)
        encoder_.add(rows_[k].ts, rows_[k].seq, values_.data() + rows_[k].first, rows_[k].count);
      auto s = batch_.Put(db_.readings_cf(), key_, value_);
      if (!s.ok()) return status::error("WriteBatch put failed: " + s.ToString());
      ++stats.chunks;
      i = j;
    }

    // Minute partials, merged into their cached rows; hour partials are the
    // merge of their minutes, so each value is aggregated once.
    hour_partial_.clear();
    for (std::size_t i = begin; i < end;) {
      auto minute = minute_bucket(rows_[i].ts);
      auto hour = hour_bucket(rows_[i].ts);
      minute_partial_.clear();
      std::size_t j = i;
      for (; j < end && minute_bucket(rows_[j].ts) == minute; ++j) {
        const auto& r = rows_[j];
        for (std::size_t k = r.first; k < r.first + r.count; ++k)
          minute_partial_.at(values_[k].metric).add(values_[k].value, r.ts, r.seq);
      }
      if (auto st = add_rollup(resolution::minute, minute, d, minute_partial_); !st) return st;
      hour_partial_.merge(minute_partial_);
      if (j == end || hour_bucket(rows_[j].ts) != hour) {
        if (auto st = add_rollup(resolution::hour, hour, d, hour_partial_); !st) return st;
        hour_partial_.clear();
      }
      i = j;
    }

    update_record(d, begin, end);
    if (d.meta_changed) d.has_record = true;
    value_.clear();
    encode_meta(d.rec, value_);
    key_.clear();
    append_meta_key(key_, d.id);
    auto s = batch_.Put(db_.meta_cf(), key_, value_);
    if (!s.ok()) return status::error("WriteBatch put failed: " + s.ToString());
  }
  stats.checkpointed = rows_.size();
  return status::success();
}

// Appends one log record holding what was added since the last flush: per
// device its record as of now and its new readings. `wrote` false when there
// was nothing to log (duplicates only).
status batcher::impl::log_flush(flush_stats& stats, bool& wrote) {
  wrote = false;
  note_ranges(logged_);
  value_.clear();
  log_writer_.begin(value_);
  std::size_t sections = 0;
  for (auto slot : dirty_) {
    auto& d = *slots_[slot];
    const std::size_t begin = d.row_begin, end = d.row_end;
    if (begin == end && !d.meta_pending) continue;
    ++stats.devices;
    ++sections;
    update_record(d, begin, end);
    if (d.meta_pending) d.has_record = true;
    chunk_buf_.clear();
    std::int64_t first_ts = 0;
    std::uint64_t first_seq = 0;
    if (begin < end) {
      first_ts = rows_[begin].ts;
      first_seq = rows_[begin].seq;
      encoder_.begin(chunk_buf_, end - begin, first_ts, first_seq);
      for (std::size_t k = begin; k < end; ++k)
        encoder_.add(rows_[k].ts, rows_[k].seq, values_.data() + rows_[k].first, rows_[k].count);
    }
    log_writer_.section(d.id, d.rec, first_ts, first_seq, chunk_buf_);
  }
  log_writer_.finish();
  stats.readings = rows_.size() - logged_;
  if (sections == 0) return status::success();
  key_.clear();
  append_log_key(key_, shard_, next_record_);
  batch_.Clear();
  auto s = batch_.Put(db_.log_cf(), key_, value_);
  if (!s.ok()) return status::error("WriteBatch put failed: " + s.ToString());
  stats.bytes = batch_.GetDataSize();
  if (auto st = db_.write(batch_); !st) return st;
  ++next_record_;
  wrote = true;
  return status::success();
}

// Writes the whole head (chunks, rollups, meta) and deletes this batcher's
// log records, in one WriteBatch.
status batcher::impl::checkpoint(flush_stats& stats) {
  batch_.Clear();
  if (auto st = build(stats); !st) return st;
  if (log_nonempty_) {
    auto s = batch_.DeleteRange(db_.log_cf(), log_lo_, log_hi_);
    if (!s.ok()) return status::error("WriteBatch delete failed: " + s.ToString());
  }
  stats.readings = rows_.size() - logged_;
  stats.bytes = batch_.GetDataSize();
  stats.checkpoint = true;
  if (batch_.Count() > 0)
    if (auto st = db_.write(batch_); !st) return st;
  for (auto slot : head_) {
    auto& d = *slots_[slot];
    d.in_head = false;
    d.meta_changed = false;
    d.row_begin = d.row_end = 0;
    if (d.has_record) d.disk_max_ts = std::max(d.disk_max_ts, d.rec.latest_ts);
    recount(d);
  }
  head_.clear();
  rows_.clear();
  values_.clear();
  logged_ = 0;
  log_nonempty_ = false;
  return status::success();
}

// Replays the log records this batcher owns into the head, then checkpoints.
status batcher::impl::recover(std::size_t& replayed) {
  reset();
  needs_recovery_ = false;
  replayed = 0;
  // Whatever fails leaves nothing half-replayed, and the next call tries again.
  auto fail = [&](status why) {
    reset();
    needs_recovery_ = true;
    return why;
  };
  rocksdb::ReadOptions ro;
  rocksdb::Slice upper(log_hi_);
  ro.iterate_upper_bound = &upper;
  std::unique_ptr<rocksdb::Iterator> it(db_.db()->NewIterator(ro, db_.log_cf()));
  meta_record rec;
  decoded_chunk rows;
  status st;
  bool good = true;
  for (it->Seek(log_lo_); it->Valid(); it->Next()) {
    auto k = it->key();
    auto v = it->value();
    std::uint16_t shard = 0;
    std::uint64_t record = 0;
    if (!decode_log_key(std::string_view(k.data(), k.size()), shard, record))
      return fail(status::error("malformed log key"));
    if (shard == shard_) next_record_ = std::max(next_record_, record + 1);
    log_nonempty_ = true;
    bool ok = for_each_log_section(std::string_view(v.data(), v.size()), [&](const log_section& s) {
      rows.clear();
      if (!decode_log_section(s, rec, rows) || !valid_device_id(s.device.data(), s.device.size()))
        return good = false;
      std::uint32_t slot = 0;
      auto* d = touch(std::string(s.device), slot, st, false);
      if (!d) return good = false;
      d->rec = rec;
      index_dictionary(*d);
      // The record is as of this log record, so it covers whatever is stored.
      d->disk_max_ts = std::max(d->disk_max_ts, d->rec.latest_ts);
      d->highest_seq = std::max(d->highest_seq, d->rec.last_seq);
      d->seen_any = d->has_record = d->first_seen_set = true;
      d->meta_changed = true;  // the checkpoint writes the record even without rows
      for (const auto& r : rows.rows) {
        pending_row pr{slot, r.count, r.ts, r.seq, static_cast<std::uint32_t>(values_.size())};
        values_.insert(values_.end(), rows.values.begin() + r.first,
                       rows.values.begin() + r.first + r.count);
        rows_.push_back(pr);
      }
      if (!d->in_head) {
        d->in_head = true;
        head_.push_back(slot);
      }
      return true;
    });
    if (!ok || !good)
      return fail(!st ? st : status::error("corrupt log record " + std::to_string(record)));
  }
  if (auto s = it->status(); !s.ok())
    return fail(status::error("reading the log failed: " + s.ToString(),
                              s.IsCorruption() ? fault::corruption : fault::io_error));
  replayed = rows_.size();
  logged_ = rows_.size();
  if (!log_nonempty_) return status::success();
  ++generation_;
  flush_stats fs;
  if (st = checkpoint(fs); !st) return fail(st);
  sweep();
  return status::success();
}

status batcher::impl::ensure_recovered() {
  if (!needs_recovery_) return status::success();
  std::size_t replayed = 0;
  return recover(replayed);
}

void batcher::impl::reset() {
  head_.clear();
  logged_ = 0;
  log_nonempty_ = false;
  slots_.clear();
  free_slots_.clear();
  index_.clear();
  state_bytes_ = 0;
  dirty_.clear();
  rows_.clear();
  values_.clear();
  pending_ = 0;
  ack_index_.clear();
  acks_.clear();
  rollups_.clear();
  batch_.Clear();
}

// Drops cold cache entries. Runs after a successful checkpoint, when no
// device has buffered data, so any device state may go.
void batcher::impl::sweep() {
  bool periodic = generation_ % sweep_every_flushes == 0;
  if (periodic || rollups_.size() > rollup_cache_max_rows) {
    for (auto it = rollups_.begin(); it != rollups_.end();)
      it = it->second.touched + rollup_cache_keep_flushes < generation_ ? rollups_.erase(it)
                                                                        : std::next(it);
    // Still too big: one flush touched more rows than the bound; keep none.
    if (rollups_.size() > rollup_cache_max_rows) rollups_.clear();
  }
  if (state_bytes_ > opts_.device_cache_bytes) evict_states();
}

// Over the device cache budget: drops the least recently used states until
// they hold 3/4 of it (so this runs once per quarter of the budget churned,
// not every checkpoint). A dropped device is read back from `meta` (one Get)
// when it sends again.
void batcher::impl::evict_states() {
  std::vector<std::pair<std::uint64_t, std::uint32_t>> order;  // (touched, slot)
  order.reserve(index_.size());
  for (const auto& [id, slot] : index_) order.emplace_back(slots_[slot]->touched, slot);
  std::sort(order.begin(), order.end());
  const auto target = opts_.device_cache_bytes / 4 * 3;
  for (const auto& [touched, slot] : order) {
    if (state_bytes_ <= target) break;
    auto& d = slots_[slot];
    state_bytes_ -= d->bytes;
    index_.erase(std::string_view(d->id));
    d.reset();
    free_slots_.push_back(slot);
    ++evicted_;
  }
}

batcher::batcher(store& db, std::uint16_t shard, head_options opts, bool all_shards)
    : impl_(std::make_unique<impl>(db, shard, opts, all_shards)) {}

status batcher::recover(std::size_t& replayed) {
  auto lk = impl_->db_.lock();
  if (!impl_->db_.is_open())
    return store::closed();
  return impl_->recover(replayed);
}

std::size_t batcher::head_readings() const { return impl_->rows_.size(); }

void batcher::abandon() {
  impl_->reset();
  impl_->needs_recovery_ = true;
}

batcher::~batcher() = default;

add_result batcher::add(std::uint64_t owner, const reading_batch& b, std::int64_t now_ms) {
  auto& m = *impl_;
  add_result res;
  auto lk = m.db_.lock();
  if (!m.db_.is_open()) {
    res.unavailable = store::closed();
    return res;
  }
  if (auto st = m.ensure_recovered(); !st) {
    if (st.fault == fault::none) st.fault = fault::corruption;  // its log cannot be replayed
    res.unavailable = std::move(st);
    return res;
  }
  if (!valid_device_id(b.device)) {
    res.rejected = b.rows.size();
    return res;
  }
  std::uint32_t slot = 0;
  status st;
  auto* d = m.touch(b.device, slot, st);
  if (!d) {
    if (st.fault != fault::none)
      res.unavailable = std::move(st);
    else
      res.rejected = b.rows.size();
    return res;
  }
  m.local_ids_.assign(b.metrics.size(), unmapped);
  std::uint64_t ack_seq = 0;
  bool ack = false;
  for (const auto& row : b.rows) {
    bool ok = valid_ts(row.ts) && row.count >= 1 && row.count <= max_metrics_per_reading &&
              static_cast<std::size_t>(row.first) + row.count <= b.samples.size();
    for (std::size_t k = row.first; ok && k < row.first + row.count; ++k) {
      const auto& smp = b.samples[k];
      ok = smp.metric < b.metrics.size() && std::isfinite(smp.value);
    }
    std::uint64_t seq = 0;
    if (ok) {
      if (row.has_seq)
        seq = row.seq;
      else if (!d->seen_any)
        seq = 1;
      else if (d->highest_seq == UINT64_MAX)
        ok = false;  // no seq left to assign
      else
        seq = d->highest_seq + 1;
    }
    if (!ok) {
      ++res.rejected;
      continue;
    }
    if (d->seen_any && seq <= d->highest_seq) {
      ++res.duplicates;
      ack_seq = std::max(ack_seq, seq);
      ack = true;
      continue;
    }
    // Map the batch's metric indices to dictionary ids before buffering
    // anything, so a reading is stored whole or not at all.
    for (std::size_t k = row.first; ok && k < row.first + row.count; ++k) {
      auto& id = m.local_ids_[b.samples[k].metric];
      if (id == unmapped) id = m.metric_id(*d, b.metrics[b.samples[k].metric]);
      ok = id != unmapped;
    }
    if (!ok) {
      ++res.rejected;
      continue;
    }
    impl::pending_row pr;
    pr.device = slot;
    pr.count = row.count;
    pr.ts = row.ts;
    pr.seq = seq;
    pr.first = static_cast<std::uint32_t>(m.values_.size());
    for (std::size_t k = row.first; k < row.first + row.count; ++k)
      m.values_.push_back({m.local_ids_[b.samples[k].metric], b.samples[k].value});
    m.rows_.push_back(pr);
    d->highest_seq = seq;
    d->seen_any = true;
    ++res.accepted;
    ack_seq = std::max(ack_seq, seq);
    ack = true;
  }
  if (!ack) return res;
  if (res.accepted > 0) {
    if (!d->first_seen_set) {
      d->rec.first_seen = now_ms;
      d->first_seen_set = true;
    }
    d->rec.last_seen = now_ms;
  }
  if (!b.meta.empty() && b.meta.size() <= max_meta_json_len && b.meta != d->rec.meta) {
    d->rec.meta = b.meta;
    d->meta_changed = d->meta_pending = true;
  }
  if (!d->dirty) {
    d->dirty = true;
    m.dirty_.push_back(slot);
  }
  if (!d->in_head) {
    d->in_head = true;
    m.head_.push_back(slot);
  }
  impl::ack_key key{owner, slot};
  auto [it, inserted] = m.ack_index_.emplace(key, m.acks_.size());
  if (inserted)
    m.acks_.emplace_back(key, ack_seq);
  else
    m.acks_[it->second].second = std::max(m.acks_[it->second].second, ack_seq);
  m.pending_ += res.accepted + res.duplicates;
  return res;
}

std::size_t batcher::pending() const { return impl_->pending_; }

cache_stats batcher::cache() const {
  return {impl_->index_.size(), impl_->state_bytes_, impl_->evicted_, impl_->rollups_.size()};
}

status batcher::flush(std::vector<ack_entry>& acks, flush_stats& stats, bool checkpoint) {
  auto& m = *impl_;
  acks.clear();
  stats = flush_stats{};
  auto lk = m.db_.lock();
  if (!m.db_.is_open())
    return store::closed();
  if (auto st = m.ensure_recovered(); !st) return st;
  bool want_checkpoint = checkpoint && !m.head_.empty();
  if (m.dirty_.empty() && !want_checkpoint) {
    // Nothing buffered, but adds whose readings were all rejected may still
    // have loaded device states.
    if (m.state_bytes_ > m.opts_.device_cache_bytes && m.head_.empty()) m.evict_states();
    return status::success();
  }
  ++m.generation_;
  bool cp = want_checkpoint || m.opts_.max_readings == 0 || m.rows_.size() >= m.opts_.max_readings;
  bool logged = false;
  auto st = cp ? m.checkpoint(stats) : m.log_flush(stats, logged);
  if (!st) {
    m.reset();
    m.needs_recovery_ = true;
    stats = flush_stats{};
    return st;
  }
  acks.reserve(m.acks_.size());
  for (const auto& [key, seq] : m.acks_) acks.push_back({key.owner, m.slots_[key.device]->id, seq});
  for (auto slot : m.dirty_) {
    auto& d = *m.slots_[slot];
    d.dirty = false;
    d.meta_pending = false;
  }
  if (!cp) {
    m.logged_ = m.rows_.size();
    m.log_nonempty_ = m.log_nonempty_ || logged;
  }
  m.dirty_.clear();
  m.pending_ = 0;
  m.ack_index_.clear();
  m.acks_.clear();
  m.batch_.Clear();
  if (cp) m.sweep();
  return status::success();
}

std::uint64_t batcher::last_seq(const std::string& device) {
  if (!valid_device_id(device)) return 0;
  auto lk = impl_->db_.lock();
  if (!impl_->db_.is_open()) return 0;
  if (!impl_->ensure_recovered()) {
    // Storage refuses writes, so the replay's checkpoint failed; what is
    // durable is still readable, the head log included. A welcome must not
    // say 0 then: a device that numbers its readings from last_seq + 1 would
    // reuse seqs, and those readings would be dropped as duplicates later.
    meta_record rec;
    bool found = false;
    auto st = read_device(impl_->db_, rocksdb::ReadOptions(), device, rec, found, nullptr);
    return st && found ? rec.last_seq : 0;
  }
  if (auto i = impl_->index_.find(device); i != impl_->index_.end())
    return impl_->slots_[i->second]->highest_seq;
  // Not cached on purpose: hellos of devices that never send would fill the
  // device cache, which is only swept by flushes.
  meta_record rec;
  bool found = false;
  auto st = read_meta(impl_->db_, rocksdb::ReadOptions(), device, rec, found);
  return st && found ? rec.last_seq : 0;
}

}  // namespace pulse::storage
