#include "storage/batcher.hpp"

#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <cmath>

#include "storage/chunk.hpp"
#include "storage/keys.hpp"
#include "storage/meta.hpp"
#include "storage/rollup.hpp"

namespace pulse::storage {

namespace {

// Rollup rows not touched in this many flushes leave the cache; a late
// reading for them costs one Get (read-through), never a wrong answer.
constexpr std::uint64_t rollup_cache_keep_flushes = 32;
// Hard bound on cached rollup rows (2 per active device: minute and hour).
constexpr std::size_t rollup_cache_max_rows = 200'000;
// Device states (dictionary, latest values, last_seq) idle this long are
// dropped and reloaded from `meta` on their next reading.
constexpr std::uint64_t device_cache_keep_flushes = 4096;
constexpr std::size_t device_cache_max = 100'000;
// How often (in flushes) the caches are swept when under their bounds.
constexpr std::uint64_t sweep_every_flushes = 16;

constexpr std::uint32_t unmapped = UINT32_MAX;

}  // namespace

struct batcher::impl {
  // Everything the batcher knows about one device. `rec` is the meta record
  // as it will be written by the next flush (dictionary growth and `meta`
  // are applied at add time; seq and latest values at flush time).
  struct device_state {
    std::string id;
    meta_record rec;
    std::unordered_map<std::string, std::uint32_t> ids;  // dictionary name -> id
    bool has_record = false;        // a meta record is stored (so readings are too)
    bool seen_any = false;          // some seq is stored or buffered: seq 0 is taken
    std::uint64_t highest_seq = 0;  // highest seq stored or buffered
    bool first_seen_set = false;
    bool dirty = false;                      // listed in dirty_
    bool meta_changed = false;               // rec.meta differs from what is stored
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

  explicit impl(store& db) : db_(db) {}

  store& db_;
  std::uint64_t generation_ = 1;  // incremented by every flush

  std::vector<std::unique_ptr<device_state>> slots_;
  std::vector<std::uint32_t> free_slots_;
  std::unordered_map<std::string, std::uint32_t> index_;
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

  // Finds or loads the state of `device`; nullptr with `st` set on a read error.
  device_state* touch(const std::string& device, std::uint32_t& slot, status& st);
  std::uint32_t metric_id(device_state& d, const std::string& name);
  status add_rollup(resolution res, std::uint32_t bucket, const device_state& d,
                    const rollup_row& partial);
  status build(flush_stats& stats);
  void reset();
  void sweep();
};

batcher::impl::device_state* batcher::impl::touch(const std::string& device, std::uint32_t& slot,
                                                  status& st) {
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
  st = read_meta(db_, rocksdb::ReadOptions(), device, d->rec, found);
  if (!st) return nullptr;
  d->id = device;
  d->touched = generation_;
  if (found) {
    d->has_record = true;
    d->seen_any = true;
    d->first_seen_set = true;
    d->highest_seq = d->rec.last_seq;
    d->ids.reserve(d->rec.metrics.size());
    for (std::uint32_t k = 0; k < d->rec.metrics.size(); ++k) d->ids.emplace(d->rec.metrics[k], k);
  }
  if (!free_slots_.empty()) {
    slot = free_slots_.back();
    free_slots_.pop_back();
    slots_[slot] = std::move(d);
  } else {
    slot = static_cast<std::uint32_t>(slots_.size());
    slots_.push_back(std::move(d));
  }
  index_.emplace(device, slot);
  return slots_[slot].get();
}

std::uint32_t batcher::impl::metric_id(device_state& d, const std::string& name) {
  auto i = d.ids.find(name);
  if (i != d.ids.end()) return i->second;
  if (d.rec.metrics.size() >= max_metrics_per_device || !valid_metric_name(name)) return unmapped;
  auto id = static_cast<std::uint32_t>(d.rec.metrics.size());
  d.rec.metrics.push_back(name);
  d.ids.emplace(name, id);
  return id;
}

// Merges `partial` into the cached row (reading it from disk on a miss, so
// late data and restarts stay exact) and puts the merged row in the batch.
status batcher::impl::add_rollup(resolution res, std::uint32_t bucket, const device_state& d,
                                 const rollup_row& partial) {
  key_.clear();
  append_rollup_key(key_, res, bucket, d.id);
  auto it = rollups_.find(key_);
  if (it == rollups_.end()) {
    cached_rollup c;
    rocksdb::PinnableSlice v;
    auto s = db_.db()->Get(rocksdb::ReadOptions(), db_.rollups_cf(), key_, &v);
    if (s.ok()) {
      if (!decode_rollup_row(std::string_view(v.data(), v.size()), c.row))
        return status::error("corrupt rollup row of device " + d.id);
    } else if (!s.IsNotFound()) {
      return status::error("rollup read failed: " + s.ToString());
    }
    it = rollups_.emplace(key_, std::move(c)).first;
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
status batcher::impl::build(flush_stats& stats) {
  std::sort(rows_.begin(), rows_.end(), [](const pending_row& a, const pending_row& b) {
    if (a.device != b.device) return a.device < b.device;
    if (a.ts != b.ts) return a.ts < b.ts;
    return a.seq < b.seq;
  });
  for (std::size_t i = 0; i < rows_.size();) {
    std::size_t j = i;
    while (j < rows_.size() && rows_[j].device == rows_[i].device) ++j;
    auto& d = *slots_[rows_[i].device];
    d.row_begin = i;
    d.row_end = j;
    i = j;
  }

  for (auto slot : dirty_) {
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

    // Meta record: seq, range of ts and latest values.
    auto& rec = d.rec;
    if (begin < end) {
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
    }
    value_.clear();
    encode_meta(rec, value_);
    key_.clear();
    append_meta_key(key_, d.id);
    auto s = batch_.Put(db_.meta_cf(), key_, value_);
    if (!s.ok()) return status::error("WriteBatch put failed: " + s.ToString());
  }
  stats.readings = rows_.size();
  stats.bytes = batch_.GetDataSize();
  return status::success();
}

void batcher::impl::reset() {
  slots_.clear();
  free_slots_.clear();
  index_.clear();
  dirty_.clear();
  rows_.clear();
  values_.clear();
  pending_ = 0;
  ack_index_.clear();
  acks_.clear();
  rollups_.clear();
  batch_.Clear();
}

// Drops cold cache entries. Runs after a successful flush, when no device
// has buffered data, so any device state may go.
void batcher::impl::sweep() {
  bool periodic = generation_ % sweep_every_flushes == 0;
  if (periodic || rollups_.size() > rollup_cache_max_rows) {
    for (auto it = rollups_.begin(); it != rollups_.end();)
      it = it->second.touched + rollup_cache_keep_flushes < generation_ ? rollups_.erase(it)
                                                                        : std::next(it);
    // Still too big: one flush touched more rows than the bound; keep none.
    if (rollups_.size() > rollup_cache_max_rows) rollups_.clear();
  }
  if (periodic || index_.size() > device_cache_max) {
    auto keep = index_.size() > device_cache_max ? 1 : device_cache_keep_flushes;
    for (auto it = index_.begin(); it != index_.end();) {
      auto slot = it->second;
      if (slots_[slot]->touched + keep < generation_) {
        slots_[slot].reset();
        free_slots_.push_back(slot);
        it = index_.erase(it);
      } else {
        ++it;
      }
    }
  }
}

batcher::batcher(store& db) : impl_(std::make_unique<impl>(db)) {}

batcher::~batcher() = default;

add_result batcher::add(std::uint64_t owner, const reading_batch& b, std::int64_t now_ms) {
  auto& m = *impl_;
  add_result res;
  if (!valid_device_id(b.device)) {
    res.rejected = b.rows.size();
    return res;
  }
  std::uint32_t slot = 0;
  status st;
  auto* d = m.touch(b.device, slot, st);
  if (!d) {
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
    d->meta_changed = true;
  }
  if (!d->dirty) {
    d->dirty = true;
    m.dirty_.push_back(slot);
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

status batcher::flush(std::vector<ack_entry>& acks, flush_stats& stats) {
  auto& m = *impl_;
  acks.clear();
  stats = flush_stats{};
  if (m.dirty_.empty()) {
    // Nothing buffered, but adds whose readings were all rejected may still
    // have loaded device states.
    if (m.index_.size() > device_cache_max) m.sweep();
    return status::success();
  }
  ++m.generation_;
  m.batch_.Clear();
  auto st = m.build(stats);
  if (st && m.batch_.Count() > 0) st = m.db_.write(m.batch_);
  if (!st) {
    m.reset();
    stats = flush_stats{};
    return st;
  }
  acks.reserve(m.acks_.size());
  for (const auto& [key, seq] : m.acks_) acks.push_back({key.owner, m.slots_[key.device]->id, seq});
  for (auto slot : m.dirty_) {
    auto& d = *m.slots_[slot];
    if (d.row_begin < d.row_end || d.meta_changed) d.has_record = true;
    d.dirty = false;
    d.meta_changed = false;
    d.row_begin = d.row_end = 0;
  }
  m.dirty_.clear();
  m.rows_.clear();
  m.values_.clear();
  m.pending_ = 0;
  m.ack_index_.clear();
  m.acks_.clear();
  m.batch_.Clear();
  m.sweep();
  return status::success();
}

std::uint64_t batcher::last_seq(const std::string& device) {
  if (!valid_device_id(device)) return 0;
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
