#include "storage/query.hpp"

#include <rocksdb/db.h>

#include <algorithm>
#include <iterator>
#include <map>
#include <thread>

#include "storage/chunk.hpp"
#include "storage/codec.hpp"
#include "storage/head_log.hpp"
#include "storage/keys.hpp"
#include "storage/snapshot.hpp"
#include "storage/meta.hpp"
#include "storage/rollup.hpp"

namespace pulse::storage {

namespace {

constexpr std::int64_t minutes_per_hour = ms_per_hour / ms_per_minute;

// Decoding a reading from a chunk costs a fraction of a point Get (measured
// with bench/storage_bench.cpp: ~0.2-0.5 us against ~2-6 us): an hour with
// at most this many values per minute row it would need is read raw.
constexpr std::uint64_t raw_readings_per_minute_get = 4;

std::int64_t floor_div(std::int64_t a, std::int64_t b) {
  auto q = a / b;
  return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

std::int64_t bucket_start(std::int64_t ts, std::int64_t step) { return floor_div(ts, step) * step; }

// Saturating, so that a huge step cannot overflow.
std::int64_t bucket_end(std::int64_t start, std::int64_t step) {
  return start > INT64_MAX - step ? INT64_MAX : start + step;
}

// One consistent view for the whole query: the meta record, rollup rows and
// chunks then all come from the same set of flushes, so ids resolve and
// rollups agree with raw data even while a shard writes.
class snapshot_reader {
 public:
  explicit snapshot_reader(const store& db) : db_(db), snap_(db) {}

  const rocksdb::ReadOptions& options() const { return snap_.options(); }

  // Appends every chunk of `device` in hour bucket `hour` to `out` (unsorted
  // across chunks: chunks of one hour may overlap in ts).
  status read_hour(std::uint32_t hour, std::string_view device, decoded_chunk& out) {
    if (!it_) it_.reset(db_.db()->NewIterator(options(), db_.readings_cf()));
    prefix_.clear();
    append_readings_prefix(prefix_, hour, device);
    for (it_->Seek(prefix_); it_->Valid(); it_->Next()) {
      auto k = it_->key();
      std::string_view key(k.data(), k.size());
      if (key.substr(0, prefix_.size()) != prefix_) break;
      readings_key_parts parts;
      auto v = it_->value();
      if (!decode_readings_key(key, parts) ||
          !decode_chunk(std::string_view(v.data(), v.size()), parts.first_ts, parts.first_seq, out))
        return status::error("corrupt chunk of device " + std::string(device));
    }
    auto s = it_->status();
    if (!s.ok()) return status::error("reading chunks failed: " + s.ToString());
    return status::success();
  }

  const store& db() const { return db_; }
  bool ok() const { return snap_.ok(); }

 private:
  const store& db_;
  snapshot snap_;
  std::unique_ptr<rocksdb::Iterator> it_;
  std::string prefix_;
};

// The device's record and the dictionary id of `metric`; false (with st ok)
// when either is unknown. `head` gets the readings still in the head log.
bool resolve(snapshot_reader& r, std::string_view device, std::string_view metric, meta_record& rec,
             std::uint32_t& id, decoded_chunk& head, status& st) {
  bool found = false;
  st = read_device(r.db(), r.options(), device, rec, found, &head);
  if (!st || !found) return false;
  auto i = std::find(rec.metrics.begin(), rec.metrics.end(), metric);
  if (i == rec.metrics.end()) return false;
  id = static_cast<std::uint32_t>(i - rec.metrics.begin());
  return true;
}

// Adds the values of `metric` of the readings in `c` with ts in [from, to)
// to their buckets.
void add_raw(const decoded_chunk& c, std::uint32_t metric, std::int64_t from, std::int64_t to,
             std::int64_t step, std::map<std::int64_t, aggregate>& out) {
  for (const auto& r : c.rows) {
    if (r.ts < from || r.ts >= to) continue;
    for (std::uint32_t k = r.first; k < r.first + r.count; ++k)
      if (c.values[k].metric == metric)
        out[bucket_start(r.ts, step)].add(c.values[k].value, r.ts, r.seq);
  }
}

std::vector<bucket> to_buckets(const std::map<std::int64_t, aggregate>& m) {
  std::vector<bucket> out;
  out.reserve(m.size());
  for (const auto& [t, agg] : m)
    if (agg.count > 0) out.push_back({t, agg});
  return out;
}

// Whether [s, e) lies inside the window and inside one bucket.
bool covered(std::int64_t s, std::int64_t e, std::int64_t from, std::int64_t to,
             std::int64_t step) {
  if (s < from || e > to) return false;
  auto b = bucket_start(s, step);
  return e <= bucket_end(b, step);
}


// Checks the arguments, resolves the metric id and narrows [from, to) to
// [lo, hi), the part the device has stored readings in (hours outside its ts
// range hold nothing). false: nothing to aggregate; `st` says if that is an error.
bool narrow_window(snapshot_reader& reader, std::string_view device, std::string_view metric,
                   std::int64_t from, std::int64_t to, std::int64_t step_ms, meta_record& rec,
                   std::uint32_t& id, decoded_chunk& head, std::int64_t& lo, std::int64_t& hi,
                   status& st) {
  st = status::success();
  if (step_ms <= 0) {
    st = status::error("step must be positive");
    return false;
  }
  if (from >= to || !resolve(reader, device, metric, rec, id, head, st)) return false;
  lo = std::max(from, rec.earliest_ts);
  hi = std::min(to, rec.latest_ts + 1);
  return lo < hi;
}

}  // namespace

std::string encode_cursor(std::int64_t ts, std::uint64_t seq) {
  static const char hex[] = "0123456789abcdef";
  std::string out = "c";
  auto put = [&](std::uint64_t v) {
    for (int i = 15; i >= 0; --i) out.push_back(hex[(v >> (4 * i)) & 0xf]);
  };
  put(static_cast<std::uint64_t>(ts));
  put(seq);
  return out;
}

bool decode_cursor(std::string_view s, std::int64_t& ts, std::uint64_t& seq) {
  if (s.size() != 33 || s[0] != 'c') return false;
  auto get = [&](std::size_t pos, std::uint64_t& v) {
    v = 0;
    for (std::size_t i = pos; i < pos + 16; ++i) {
      char c = s[i];
      int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
      if (d < 0) return false;
      v = (v << 4) | static_cast<std::uint64_t>(d);
    }
    return true;
  };
  std::uint64_t t;
  if (!get(1, t) || !get(17, seq) || t > static_cast<std::uint64_t>(max_ts)) return false;
  ts = static_cast<std::int64_t>(t);
  return true;
}

namespace {

// The stored part (rollups and chunks) of one device's aggregate over
// [from, to), narrowed to [lo, hi), merged into `out`. The caller adds the
// head's readings.
status aggregate_stored(snapshot_reader& reader, std::string_view device, std::uint32_t id,
                        std::int64_t from, std::int64_t to, std::int64_t step_ms, std::int64_t lo,
                        std::int64_t hi, std::map<std::int64_t, aggregate>& out) {
  const store& db = reader.db();
  status st;
  rollup_row hour_row, minute_row;
  decoded_chunk chunk;
  std::vector<std::string> minute_keys(minutes_per_hour);
  std::vector<rocksdb::Slice> slices;
  std::vector<rocksdb::PinnableSlice> values(minutes_per_hour);
  std::vector<rocksdb::Status> statuses(minutes_per_hour);
  std::vector<std::int64_t> minute_starts;
  slices.reserve(minutes_per_hour);
  minute_starts.reserve(minutes_per_hour);
  // The hour rows of the whole window in MultiGets of up to 256 keys: a
  // month at step 1h is 720 rows, and one batched lookup costs a fraction of
  // 720 Gets.
  constexpr std::uint32_t hours_per_multiget = 256;
  std::vector<std::string> hour_keys(hours_per_multiget);
  std::vector<rocksdb::Slice> hour_slices;
  std::vector<rocksdb::PinnableSlice> hour_values(hours_per_multiget);
  std::vector<rocksdb::Status> hour_statuses(hours_per_multiget);
  hour_slices.reserve(hours_per_multiget);
  const std::uint32_t first_hour = hour_bucket(lo), last_hour = hour_bucket(hi - 1);
  std::uint32_t batch_first = first_hour;
  std::size_t batch_size = 0, batch_index = 0;
  for (auto hour = first_hour; hour <= last_hour && hour >= first_hour; ++hour) {
    if (batch_index == batch_size) {  // fetch the next batch of hour rows
      batch_first = hour;
      batch_size = std::min<std::uint64_t>(hours_per_multiget, std::uint64_t{last_hour} - hour + 1);
      batch_index = 0;
      hour_slices.clear();
      for (std::size_t i = 0; i < batch_size; ++i) {
        hour_keys[i].clear();
        append_rollup_key(hour_keys[i], resolution::hour, batch_first + static_cast<std::uint32_t>(i),
                          device);
        hour_slices.emplace_back(hour_keys[i]);
        hour_values[i].Reset();
      }
      db.db()->MultiGet(reader.options(), db.rollups_cf(), batch_size, hour_slices.data(),
                        hour_values.data(), hour_statuses.data(), false);
    }
    const std::size_t bi = batch_index++;
    const std::int64_t hs = static_cast<std::int64_t>(hour) * ms_per_hour;
    const std::int64_t he = hs + ms_per_hour;
    if (hour_statuses[bi].IsNotFound()) continue;
    if (!hour_statuses[bi].ok())
      return status::error("rollup read failed: " + hour_statuses[bi].ToString());
    if (!decode_rollup_row(std::string_view(hour_values[bi].data(), hour_values[bi].size()),
                           hour_row))
      return status::error("corrupt rollup row of device " + std::string(device));
    const aggregate* hour_agg = hour_row.find(id);
    if (!hour_agg) continue;  // no value of this metric in this hour
    if (covered(hs, he, from, to, step_ms)) {
      out[bucket_start(hs, step_ms)].merge(*hour_agg);
      continue;
    }
    // Partly covered. Only minutes between the hour's first and last value
    // can hold data. A chunk may span its whole hour, so if any of those
    // minutes needs raw readings, all of the hour's chunks are decoded
    // anyway: take every minute from them rather than paying extra Gets.
    // Otherwise (the common minute-aligned case) use the minute rows.
    const auto first_ts = std::max(hour_agg->first_ts, from);
    const auto last_ts = std::min(hour_agg->last_ts, to - 1);
    if (first_ts > last_ts) continue;
    const auto m_first = minute_bucket(first_ts), m_last = minute_bucket(last_ts);
    // A sparse hour is cheaper to decode than to fetch minute by minute.
    bool need_raw = hour_agg->count <= raw_readings_per_minute_get * (m_last - m_first + 1);
    for (auto m = m_first; m <= m_last && !need_raw; ++m) {
      const std::int64_t ms = static_cast<std::int64_t>(m) * ms_per_minute;
      need_raw = !covered(ms, ms + ms_per_minute, from, to, step_ms);
    }
    if (need_raw) {
      chunk.clear();
      if (st = reader.read_hour(hour, device, chunk); !st) return st;
      add_raw(chunk, id, from, to, step_ms, out);
      continue;
    }
    slices.clear();
    minute_starts.clear();
    for (auto m = m_first; m <= m_last; ++m) {
      const std::int64_t ms = static_cast<std::int64_t>(m) * ms_per_minute;
      auto& k = minute_keys[slices.size()];
      k.clear();
      append_rollup_key(k, resolution::minute, m, device);
      slices.emplace_back(k);
      minute_starts.push_back(ms);
    }
    if (!slices.empty()) {
      for (std::size_t i = 0; i < slices.size(); ++i) values[i].Reset();
      // Keys ascend with the minute (same resolution and device).
      db.db()->MultiGet(reader.options(), db.rollups_cf(), slices.size(), slices.data(),
                        values.data(), statuses.data(), true);
      for (std::size_t i = 0; i < slices.size(); ++i) {
        if (statuses[i].IsNotFound()) continue;
        if (!statuses[i].ok()) {
          return status::error("rollup read failed: " + statuses[i].ToString());
        }
        if (!decode_rollup_row(std::string_view(values[i].data(), values[i].size()), minute_row)) {
          return status::error("corrupt rollup row of device " + std::string(device));
        }
        if (const auto* a = minute_row.find(id))
          out[bucket_start(minute_starts[i], step_ms)].merge(*a);
      }
    }
  }
  return status::success();
}

}  // namespace


namespace {

// A key between `lo` and `hi` (lo < hi, hi empty = no bound) that splits the
// bytes of `cf` in [lo, hi) roughly in half, found by bisecting with
// RocksDB's size estimates (SST index blocks and memtables). Any key in
// between is correct for a split; only the balance depends on the estimate.
std::string split_key(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf, const std::string& lo,
                      std::string hi) {
  if (hi.empty()) hi.assign(lo.size() + 8, '\xff');
  auto size_of = [&](const std::string& a, const std::string& b) {
    rocksdb::Range r(a, b);
    std::uint64_t n = 0;
    rocksdb::SizeApproximationOptions o;
    o.include_memtables = true;
    o.include_files = true;
    if (!db->GetApproximateSizes(o, cf, &r, 1, &n).ok()) return std::uint64_t{0};
    return n;
  };
  // The 8 bytes after the common prefix of two keys, as a number.
  auto mid = [](const std::string& a, const std::string& b) {
    std::size_t p = 0;
    while (p < a.size() && p < b.size() && a[p] == b[p]) ++p;
    auto word = [&](const std::string& k) {
      std::uint64_t v = 0;
      for (std::size_t i = 0; i < 8; ++i)
        v = v << 8 | (p + i < k.size() ? static_cast<unsigned char>(k[p + i]) : 0u);
      return v;
    };
    std::uint64_t va = word(a), vb = word(b);
    std::uint64_t vm = va + (vb - va) / 2;
    std::string m = a.substr(0, p);
    for (int i = 7; i >= 0; --i) m.push_back(static_cast<char>(vm >> (8 * i)));
    while (m.size() > p + 1 && m.back() == '\0') m.pop_back();
    return m;
  };
  const auto total = size_of(lo, hi);
  std::string a = lo, b = hi, m;
  for (int step = 0; step < 24; ++step) {
    m = mid(a, b);
    if (!(a < m && m < b)) break;
    if (size_of(lo, m) < total / 2)
      a = m;
    else
      b = m;
  }
  return a > lo ? a : std::string();
}

}  // namespace

status aggregate_fleet(const store& db, std::string_view prefix, std::string_view metric,
                       std::int64_t from, std::int64_t to, std::int64_t step_ms, bool group,
                       std::map<std::int64_t, aggregate>& merged,
                       std::map<std::string, std::map<std::int64_t, aggregate>>& groups,
                       std::size_t parallel_min) {
  if (step_ms <= 0) return status::error("step must be positive");
  if (from >= to) return status::success();
  snapshot_reader reader(db);
  if (!reader.ok()) return store::closed();
  std::map<std::string, head_device, std::less<>> head;
  if (auto st = read_head_devices(db, reader.options(), prefix, head); !st) return st;

  // Every device of the prefix with the metric: the metric's id in its
  // dictionary and its stored ts range (the head's record when newer). Meta
  // records are only skimmed for these (decode_meta_summary): a fleet of a
  // million devices is a million records. A large fleet is read by two
  // threads, each over half of the keys (the node has the cores; measured at
  // 1,000,000 devices: meta scan 450-700 ms, rollup scan ~780 ms alone).
  struct member {
    std::string device;
    std::uint32_t id = 0;
    std::int64_t earliest_ts = 0, latest_ts = 0;
    const head_device* head = nullptr;
  };
  std::vector<member> members;  // in id order
  std::string lower;
  append_meta_key(lower, prefix);
  const std::string upper = prefix_successor(lower);
  auto scan_meta = [&](const std::string& lo, const std::string& hi, std::vector<member>& out) {
    auto ro = reader.options();
    rocksdb::Slice upper_slice(hi);
    if (!hi.empty()) ro.iterate_upper_bound = &upper_slice;
    std::unique_ptr<rocksdb::Iterator> it(db.db()->NewIterator(ro, db.meta_cf()));
    meta_summary sum;
    for (it->Seek(lo); it->Valid(); it->Next()) {
      std::string_view device;
      auto k = it->key();
      if (!decode_meta_key(std::string_view(k.data(), k.size()), device)) continue;
      if (head.count(device)) continue;  // taken from the head below
      auto v = it->value();
      if (!decode_meta_summary(std::string_view(v.data(), v.size()), metric, sum))
        return status::error("corrupt meta record for device " + std::string(device));
      if (sum.found)
        out.push_back(member{std::string(device), sum.id, sum.earliest_ts, sum.latest_ts, nullptr});
    }
    if (auto s = it->status(); !s.ok()) return status::error("listing devices failed: " + s.ToString());
    return status::success();
  };
  {
    std::uint64_t keys = 0;
    db.db()->GetIntProperty(db.meta_cf(), "rocksdb.estimate-num-keys", &keys);
    std::string split;
    if (keys >= parallel_min) split = split_key(db.db(), db.meta_cf(), lower, upper);
    if (split.empty()) {
      if (auto st = scan_meta(lower, upper, members); !st) return st;
    } else {
      std::vector<member> second;
      status st2;
      std::thread other([&] { st2 = scan_meta(split, upper, second); });
      auto st1 = scan_meta(lower, split, members);
      other.join();
      if (!st1) return st1;
      if (!st2) return st2;
      members.insert(members.end(), std::make_move_iterator(second.begin()),
                     std::make_move_iterator(second.end()));
    }
    std::vector<member> from_head;
    for (auto& [device, h] : head) {
      const auto& m = h.rec.metrics;
      auto at = std::find(m.begin(), m.end(), metric);
      if (at == m.end()) continue;
      from_head.push_back(member{device, static_cast<std::uint32_t>(at - m.begin()),
                                 h.rec.earliest_ts, h.rec.latest_ts, &h});
    }
    if (!from_head.empty()) {
      auto mid = members.size();
      members.insert(members.end(), std::make_move_iterator(from_head.begin()),
                     std::make_move_iterator(from_head.end()));
      std::inplace_merge(members.begin(), members.begin() + static_cast<std::ptrdiff_t>(mid),
                         members.end(),
                         [](const member& a, const member& b) { return a.device < b.device; });
    }
  }
  auto target = [&](const std::string& device) -> std::map<std::int64_t, aggregate>& {
    return group ? groups[device] : merged;
  };
  for (const auto& m : members)
    if (m.head) add_raw(m.head->rows, m.id, from, to, step_ms, target(m.device));

  // Rollup rows bucket-major: one range of keys holds every device's rows of
  // the window, whenever each row lies inside one bucket and the window.
  const bool by_hour = from % ms_per_hour == 0 && to % ms_per_hour == 0 && step_ms % ms_per_hour == 0;
  const bool by_minute =
    from % ms_per_minute == 0 && to % ms_per_minute == 0 && step_ms % ms_per_minute == 0;
  if (by_hour || by_minute) {
    const auto res = by_hour ? resolution::hour : resolution::minute;
    const auto unit = by_hour ? ms_per_hour : ms_per_minute;
    const auto first_bucket =
      static_cast<std::uint32_t>(std::min<std::int64_t>(from / unit, UINT32_MAX));
    const auto end_bucket = static_cast<std::uint32_t>(std::min<std::int64_t>(to / unit, UINT32_MAX));
    const std::size_t plen = std::max<std::size_t>(prefix.size(), 1);
    // Members in rollup key order, (length, id), so that each bucket's keys
    // meet them in order: a cursor that only moves forward, no lookups.
    auto shorter = [](const member& a, const member& b) { return a.device.size() < b.device.size(); };
    if (!std::is_sorted(members.begin(), members.end(), shorter))  // ids of one length: already so
      std::stable_sort(members.begin(), members.end(), shorter);
    // The order of ids in rollup keys: by length, then bytewise.
    auto key_order = [](std::string_view a, std::string_view b) {
      return a.size() != b.size() ? a.size() < b.size() : a < b;
    };
    auto key_less = [&](const member& m, std::string_view d) { return key_order(m.device, d); };
    auto before = [&](std::string_view d, const member& m) { return key_order(d, m.device); };
    // Scans the members [lo_m, hi_m) (a contiguous part of `members`) in
    // every bucket of the window into `sums` / `per_device`.
    auto scan = [&](std::size_t lo_m, std::size_t hi_m, std::map<std::int64_t, aggregate>& sums,
                    std::map<std::string, std::map<std::int64_t, aggregate>>& per_device) {
      if (lo_m >= hi_m) return status::success();
      const member& first = members[lo_m];
      const member* limit = hi_m < members.size() ? &members[hi_m] : nullptr;
      std::string seek_key, upper_key(1, static_cast<char>(res));
      codec::put_u32_be(upper_key, end_bucket);
      auto ro = reader.options();
      rocksdb::Slice upper_slice(upper_key);
      ro.iterate_upper_bound = &upper_slice;
      std::unique_ptr<rocksdb::Iterator> it(db.db()->NewIterator(ro, db.rollups_cf()));
      // `bucket | len | id`: every key of a bucket sorts by (id length, id).
      auto seek = [&](std::uint32_t bucket, std::size_t len, std::string_view id) {
        seek_key.assign(1, static_cast<char>(res));
        codec::put_u32_be(seek_key, bucket);
        seek_key.push_back(static_cast<char>(len));
        seek_key.append(id.data(), id.size());
        it->Seek(seek_key);
      };
      auto at_next_bucket = [&](std::uint32_t bucket) {
        if (bucket == UINT32_MAX || bucket + 1 >= end_bucket) return false;
        seek(bucket + 1, first.device.size(), first.device);
        return true;
      };
      rollup_row row;
      rollup_key_parts parts;
      std::size_t cursor = lo_m;
      std::uint32_t cursor_bucket = first_bucket;
      bool started = false;
      seek(first_bucket, first.device.size(), first.device);
      while (it->Valid()) {
        auto k = it->key();
        if (!decode_rollup_key(std::string_view(k.data(), k.size()), parts) || parts.res != res) {
          it->Next();
          continue;
        }
        if (!started || parts.bucket != cursor_bucket) {
          started = true;
          cursor = lo_m;
          cursor_bucket = parts.bucket;
          // A new bucket reached by Next(): start it at the first member.
          if (before(parts.device, first)) {
            seek(parts.bucket, first.device.size(), first.device);
            continue;
          }
        }
        // Past this part's last member: on to the next bucket.
        if (limit && !before(parts.device, *limit)) {
          if (!at_next_bucket(parts.bucket)) break;
          continue;
        }
        if (!prefix.empty()) {
          // A prefix is a skip scan: within a bucket the prefix's devices of
          // each id length are one range; a key outside it seeks straight to
          // the next such range (every target sorts after this key).
          auto head_of = parts.device.substr(0, prefix.size());
          if (parts.device.size() < plen || head_of < prefix) {
            seek(parts.bucket, std::max(plen, parts.device.size()), prefix);
            continue;
          }
          if (head_of > prefix) {
            if (parts.device.size() < max_device_len)
              seek(parts.bucket, parts.device.size() + 1, prefix);
            else if (!at_next_bucket(parts.bucket))
              break;
            continue;
          }
        }
        // Rows mostly come for consecutive members: try the cursor first.
        auto at = members.begin() + static_cast<std::ptrdiff_t>(cursor);
        auto end = members.begin() + static_cast<std::ptrdiff_t>(hi_m);
        if (at == end || key_less(*at, parts.device)) at = std::lower_bound(at, end, parts.device, key_less);
        cursor = static_cast<std::size_t>(at - members.begin());
        if (at != end && at->device == parts.device) {
          auto v = it->value();
          if (!decode_rollup_row(std::string_view(v.data(), v.size()), row))
            return status::error("corrupt rollup row of device " + std::string(parts.device));
          if (const auto* a = row.find(at->id)) {
            auto& out = group ? per_device[at->device] : sums;
            out[bucket_start(static_cast<std::int64_t>(parts.bucket) * unit, step_ms)].merge(*a);
          }
        }
        it->Next();
      }
      if (auto s = it->status(); !s.ok()) return status::error("reading rollups failed: " + s.ToString());
      return status::success();
    };
    if (members.size() < std::max<std::size_t>(parallel_min, 2))
      return scan(0, members.size(), merged, groups);
    const std::size_t half = members.size() / 2;
    std::map<std::int64_t, aggregate> sums2;
    std::map<std::string, std::map<std::int64_t, aggregate>> groups2;
    status st2;
    std::thread other([&] { st2 = scan(half, members.size(), sums2, groups2); });
    auto st1 = scan(0, half, merged, groups);
    other.join();
    if (!st1) return st1;
    if (!st2) return st2;
    for (auto& [t, a] : sums2) merged[t].merge(a);
    for (auto& [device, m] : groups2)
      for (auto& [t, a] : m) groups[device][t].merge(a);
    return status::success();
  }
  for (const auto& m : members) {
    auto lo = std::max(from, m.earliest_ts);
    auto hi = std::min(to, m.latest_ts + 1);
    if (lo >= hi) continue;
    if (auto st = aggregate_stored(reader, m.device, m.id, from, to, step_ms, lo, hi, target(m.device)); !st)
      return st;
  }
  return status::success();
}

namespace {

// One device's aggregate from one snapshot: the head log's readings raw, then
// the stored part from rollups and chunks, or (`raw_only`) chunks alone.
std::vector<bucket> aggregate_one(const store& db, std::string_view device,
                                  std::string_view metric, std::int64_t from, std::int64_t to,
                                  std::int64_t step_ms, bool raw_only, status& st) {
  snapshot_reader reader(db);
  if (!reader.ok()) {
    st = store::closed();
    return {};
  }
  meta_record rec;
  std::uint32_t id = 0;
  std::int64_t lo = 0, hi = 0;
  decoded_chunk head;
  if (!narrow_window(reader, device, metric, from, to, step_ms, rec, id, head, lo, hi, st))
    return {};
  // Readings still in the head log are in no chunk or rollup row yet.
  std::map<std::int64_t, aggregate> out;
  add_raw(head, id, from, to, step_ms, out);
  if (!raw_only) {
    if (st = aggregate_stored(reader, device, id, from, to, step_ms, lo, hi, out); !st) return {};
    return to_buckets(out);
  }
  decoded_chunk chunk;
  for (auto hour = hour_bucket(lo), last = hour_bucket(hi - 1); hour <= last; ++hour) {
    chunk.clear();
    if (st = reader.read_hour(hour, device, chunk); !st) return {};
    add_raw(chunk, id, from, to, step_ms, out);
  }
  return to_buckets(out);
}

}  // namespace

std::vector<bucket> aggregate_device(const store& db, std::string_view device,
                                     std::string_view metric, std::int64_t from, std::int64_t to,
                                     std::int64_t step_ms, status& st) {
  return aggregate_one(db, device, metric, from, to, step_ms, false, st);
}

std::vector<bucket> aggregate_device_raw(const store& db, std::string_view device,
                                         std::string_view metric, std::int64_t from,
                                         std::int64_t to, std::int64_t step_ms, status& st) {
  return aggregate_one(db, device, metric, from, to, step_ms, true, st);
}

std::vector<stored_reading> read_readings(const store& db, std::string_view device,
                                          std::int64_t from, std::int64_t to, std::size_t limit,
                                          std::string_view cursor, std::string& next_cursor,
                                          status& st) {
  st = status::success();
  std::int64_t after_ts = 0;
  std::uint64_t after_seq = 0;
  bool has_cursor = !cursor.empty();
  // Decoded before next_cursor is touched: callers may pass the same string for both.
  bool cursor_ok = !has_cursor || decode_cursor(cursor, after_ts, after_seq);
  next_cursor.clear();
  if (!cursor_ok) {
    st = status::error("malformed cursor");
    return {};
  }
  if (limit == 0) {
    st = status::error("limit must be positive");
    return {};
  }
  if (from >= to) return {};
  snapshot_reader reader(db);
  if (!reader.ok()) {
    st = store::closed();
    return {};
  }
  meta_record rec;
  bool found = false;
  decoded_chunk head;
  st = read_device(db, reader.options(), device, rec, found, &head);
  if (!st || !found) return {};
  auto lo = std::max(from, rec.earliest_ts);
  if (has_cursor) lo = std::max(lo, after_ts);
  auto hi = std::min(to, rec.latest_ts + 1);
  std::vector<stored_reading> out;
  if (lo >= hi) return out;

  decoded_chunk chunk;
  for (auto hour = hour_bucket(lo), last = hour_bucket(hi - 1); hour <= last; ++hour) {
    chunk.clear();
    if (st = reader.read_hour(hour, device, chunk); !st) return {};
    for (const auto& r : head.rows) {
      if (hour_bucket(r.ts) != hour) continue;
      auto row = r;
      row.first = static_cast<std::uint32_t>(chunk.values.size());
      chunk.values.insert(chunk.values.end(), head.values.begin() + r.first,
                          head.values.begin() + r.first + r.count);
      chunk.rows.push_back(row);
    }
    if (!std::is_sorted(chunk.rows.begin(), chunk.rows.end(), row_less))
      std::sort(chunk.rows.begin(), chunk.rows.end(), row_less);
    for (const auto& r : chunk.rows) {
      if (r.ts < from || r.ts >= to) continue;
      if (has_cursor && (r.ts < after_ts || (r.ts == after_ts && r.seq <= after_seq))) continue;
      if (out.size() == limit) {
        // One more reading exists: the page is full and not the last.
        next_cursor = encode_cursor(out.back().ts, out.back().seq);
        return out;
      }
      stored_reading sr;
      sr.seq = r.seq;
      sr.ts = r.ts;
      sr.values.reserve(r.count);
      for (std::uint32_t k = r.first; k < r.first + r.count; ++k) {
        auto mid = chunk.values[k].metric;
        if (mid >= rec.metrics.size()) {
          st = status::error("chunk of device " + std::string(device) +
                             " refers to an unknown metric id");
          return {};
        }
        sr.values.emplace_back(rec.metrics[mid], chunk.values[k].value);
      }
      out.push_back(std::move(sr));
    }
  }
  return out;
}

}  // namespace pulse::storage
