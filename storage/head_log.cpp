#include "storage/head_log.hpp"

#include <rocksdb/db.h>

#include <memory>

#include "storage/codec.hpp"
#include "storage/keys.hpp"

namespace pulse::storage {

void append_log_key(std::string& out, std::uint16_t shard, std::uint64_t record) {
  out.push_back(static_cast<char>(shard >> 8));
  out.push_back(static_cast<char>(shard & 0xff));
  codec::put_u64_be(out, record);
}

bool decode_log_key(std::string_view key, std::uint16_t& shard, std::uint64_t& record) {
  if (key.size() != log_key_size) return false;
  codec::reader r(key);
  std::uint8_t hi = 0, lo = 0;
  if (!r.get_u8(hi) || !r.get_u8(lo) || !r.get_u64_be(record)) return false;
  shard = static_cast<std::uint16_t>(hi << 8 | lo);
  return true;
}

void log_record_writer::begin(std::string& out) {
  out_ = &out;
  out.push_back(static_cast<char>(log_version));
  count_pos_ = out.size();
  out.append(5, '\0');
  sections_ = 0;
}

void log_record_writer::section(std::string_view device, const meta_record& rec,
                                std::int64_t first_ts, std::uint64_t first_seq,
                                std::string_view chunk) {
  codec::put_bytes(*out_, device);
  scratch_.clear();
  encode_meta(rec, scratch_);
  codec::put_bytes(*out_, scratch_);
  codec::put_varint(*out_, static_cast<std::uint64_t>(first_ts));
  codec::put_varint(*out_, first_seq);
  codec::put_bytes(*out_, chunk);
  ++sections_;
}

void log_record_writer::finish() {
  // A fixed-width varint: 4 bytes of 7 bits with the continuation bit, then the rest.
  auto v = sections_;
  for (int i = 0; i < 5; ++i) {
    auto byte = static_cast<std::uint8_t>(v & 0x7f);
    v >>= 7;
    if (i < 4) byte |= 0x80;
    (*out_)[count_pos_ + i] = static_cast<char>(byte);
  }
}

namespace detail {

bool log_record_header(std::string_view record, std::uint64_t& count, std::string_view& rest) {
  codec::reader r(record);
  std::uint8_t version = 0;
  if (!r.get_u8(version) || version != log_version || !r.get_varint(count)) return false;
  rest = record.substr(record.size() - r.remaining());
  return count <= rest.size();
}

bool next_log_section(std::string_view& rest, log_section& s) {
  codec::reader r(rest);
  std::uint64_t ts = 0;
  if (!r.get_bytes(s.device, max_device_len) || s.device.empty() ||
      !r.get_bytes(s.meta, rest.size()) || !r.get_varint(ts) || !r.get_varint(s.first_seq) ||
      !r.get_bytes(s.chunk, rest.size()) || !valid_ts(static_cast<std::int64_t>(ts)))
    return false;
  s.first_ts = static_cast<std::int64_t>(ts);
  rest = rest.substr(rest.size() - r.remaining());
  return true;
}

}  // namespace detail

bool decode_log_section(const log_section& s, meta_record& rec, decoded_chunk& rows) {
  if (!decode_meta(s.meta, rec)) return false;
  if (s.chunk.empty()) return true;  // a section that only changes the record (meta)
  auto before = rows.values.size();
  if (!decode_chunk(s.chunk, s.first_ts, s.first_seq, rows)) return false;
  for (auto i = before; i < rows.values.size(); ++i)
    if (rows.values[i].metric >= rec.metrics.size()) return false;
  return true;
}

namespace {

// Calls fn(section) for every section of every log record visible under `ro`.
template <class F>
status scan_log(const store& db, const rocksdb::ReadOptions& ro, F&& fn) {
  std::unique_ptr<rocksdb::Iterator> it(db.db()->NewIterator(ro, db.log_cf()));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    auto v = it->value();
    bool good = true;
    bool ok = for_each_log_section(std::string_view(v.data(), v.size()), [&](const log_section& s) {
      good = fn(s);
      return good;
    });
    if (!ok || !good) return status::error("corrupt head log record");
  }
  auto s = it->status();
  if (!s.ok()) return status::error("reading the head log failed: " + s.ToString());
  return status::success();
}

}  // namespace

status read_device(const store& db, const rocksdb::ReadOptions& ro, std::string_view device,
                   meta_record& rec, bool& found, decoded_chunk* head_rows) {
  auto st = read_meta(db, ro, device, rec, found);
  if (!st) return st;
  decoded_chunk scratch;
  auto* rows = head_rows ? head_rows : &scratch;
  return scan_log(db, ro, [&](const log_section& s) {
    if (s.device != device) return true;
    scratch.clear();
    if (!decode_log_section(s, rec, *rows)) return false;
    found = true;
    return true;
  });
}

status read_head_devices(const store& db, const rocksdb::ReadOptions& ro, std::string_view prefix,
                         std::map<std::string, head_device, std::less<>>& out) {
  return scan_log(db, ro, [&](const log_section& s) {
    if (s.device.substr(0, prefix.size()) != prefix) return true;
    auto& d = out[std::string(s.device)];
    return decode_log_section(s, d.rec, d.rows);
  });
}

status read_head_records(const store& db, const rocksdb::ReadOptions& ro, std::string_view prefix,
                         std::map<std::string, meta_record, std::less<>>& out) {
  decoded_chunk rows;
  return scan_log(db, ro, [&](const log_section& s) {
    if (s.device.substr(0, prefix.size()) != prefix) return true;
    rows.clear();
    auto& rec = out[std::string(s.device)];
    return decode_log_section(s, rec, rows);
  });
}

}  // namespace pulse::storage
