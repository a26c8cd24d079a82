#include "storage/meta.hpp"

#include <rocksdb/db.h>

#include "storage/codec.hpp"
#include "storage/keys.hpp"

namespace pulse::storage {

void meta_record::clear() {
  last_seq = 0;
  first_seen = last_seen = 0;
  metrics.clear();
  meta.clear();
  earliest_ts = latest_ts = 0;
  latest_seq = 0;
  latest.clear();
}

void encode_meta(const meta_record& rec, std::string& out) {
  out.push_back(static_cast<char>(meta_version));
  codec::put_varint(out, rec.last_seq);
  codec::put_varint(out, codec::zigzag(rec.first_seen));
  codec::put_varint(out, codec::zigzag(rec.last_seen));
  codec::put_varint(out, rec.metrics.size());
  for (const auto& m : rec.metrics) codec::put_bytes(out, m);
  codec::put_bytes(out, rec.meta);
  codec::put_varint(out, static_cast<std::uint64_t>(rec.earliest_ts));
  codec::put_varint(out, static_cast<std::uint64_t>(rec.latest_ts));
  codec::put_varint(out, rec.latest_seq);
  codec::put_varint(out, rec.latest.size());
  for (const auto& v : rec.latest) {
    codec::put_varint(out, v.metric);
    codec::put_double(out, v.value);
  }
}

bool decode_meta(std::string_view data, meta_record& out) {
  out.clear();
  auto fail = [&] {
    out.clear();
    return false;
  };
  codec::reader r(data);
  std::uint8_t version;
  std::uint64_t first_seen, last_seen, n;
  if (!r.get_u8(version) || version != meta_version || !r.get_varint(out.last_seq) ||
      !r.get_varint(first_seen) || !r.get_varint(last_seen) || !r.get_varint(n))
    return fail();
  out.first_seen = codec::unzigzag(first_seen);
  out.last_seen = codec::unzigzag(last_seen);
  if (n > max_metrics_per_device || n > r.remaining() / 2) return fail();
  out.metrics.reserve(n);
  for (std::uint64_t i = 0; i < n; ++i) {
    std::string_view name;
    if (!r.get_bytes(name, max_metric_name_len) || !valid_metric_name(name.data(), name.size()))
      return fail();
    out.metrics.emplace_back(name);
  }
  std::string_view meta;
  std::uint64_t earliest, latest_ts;
  if (!r.get_bytes(meta, max_meta_json_len) || !r.get_varint(earliest) ||
      !r.get_varint(latest_ts) || !r.get_varint(out.latest_seq) || !r.get_varint(n))
    return fail();
  out.meta.assign(meta);
  if (earliest > latest_ts || latest_ts > static_cast<std::uint64_t>(max_ts)) return fail();
  out.earliest_ts = static_cast<std::int64_t>(earliest);
  out.latest_ts = static_cast<std::int64_t>(latest_ts);
  if (n > max_metrics_per_reading) return fail();
  out.latest.reserve(n);
  for (std::uint64_t i = 0; i < n; ++i) {
    chunk_value v;
    if (!r.get_varint32(v.metric) || v.metric >= out.metrics.size() || !r.get_double(v.value))
      return fail();
    out.latest.push_back(v);
  }
  if (!r.done()) return fail();
  return true;
}

bool decode_meta_summary(std::string_view data, std::string_view metric, meta_summary& out) {
  out = meta_summary{};
  codec::reader r(data);
  std::uint8_t version;
  std::uint64_t skip, n;
  if (!r.get_u8(version) || version != meta_version || !r.get_varint(skip) ||
      !r.get_varint(skip) || !r.get_varint(skip) || !r.get_varint(n))
    return false;
  if (n > max_metrics_per_device || n > r.remaining() / 2) return false;
  for (std::uint64_t i = 0; i < n; ++i) {
    std::string_view name;
    if (!r.get_bytes(name, max_metric_name_len)) return false;
    if (!out.found && name == metric) {
      out.found = true;
      out.id = static_cast<std::uint32_t>(i);
    }
  }
  std::string_view meta;
  std::uint64_t earliest, latest_ts;
  if (!r.get_bytes(meta, max_meta_json_len) || !r.get_varint(earliest) || !r.get_varint(latest_ts))
    return false;
  if (earliest > latest_ts || latest_ts > static_cast<std::uint64_t>(max_ts)) return false;
  out.earliest_ts = static_cast<std::int64_t>(earliest);
  out.latest_ts = static_cast<std::int64_t>(latest_ts);
  return true;
}

device_record to_device_record(std::string_view device, const meta_record& rec) {
  device_record d;
  d.id.assign(device);
  d.last_seq = rec.last_seq;
  d.first_seen = rec.first_seen;
  d.last_seen = rec.last_seen;
  d.metrics = rec.metrics;
  d.meta = rec.meta;
  d.latest_ts = rec.latest_ts;
  d.latest.reserve(rec.latest.size());
  for (const auto& v : rec.latest) d.latest.emplace_back(rec.metrics[v.metric], v.value);
  return d;
}

status read_meta(const store& db, const rocksdb::ReadOptions& ro, std::string_view device,
                 meta_record& out, bool& found) {
  found = false;
  out.clear();
  if (!valid_device_id(device.data(), device.size())) return status::success();
  std::string key;
  append_meta_key(key, device);
  rocksdb::PinnableSlice value;
  auto s = db.db()->Get(ro, db.meta_cf(), key, &value);
  if (s.IsNotFound()) return status::success();
  if (!s.ok())
    return status::error("meta read failed for " + std::string(device) + ": " + s.ToString(),
                         s.IsCorruption() ? fault::corruption : fault::io_error);
  if (!decode_meta(std::string_view(value.data(), value.size()), out))
    return status::error("corrupt meta record for device " + std::string(device));
  found = true;
  return status::success();
}

}  // namespace pulse::storage
