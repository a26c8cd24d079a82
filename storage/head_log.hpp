#pragma once
// The head log: what a shard has acked but not yet written as chunks and
// rollup rows. Every flush appends ONE record to the `log` column family (one
// Put, acked once it is in the WAL); a checkpoint writes the head's chunks,
// rollup rows and meta records and deletes the shard's log records in the
// same WriteBatch, so a query's snapshot sees every acked reading exactly
// once: either in a chunk or in a log record.
//
// Key:   shard u16 BE | record number u64 BE   (record numbers increase)
// Value: u8 version (=1) | varint n | n device sections:
//          bytes device | bytes meta record (meta.hpp, the device's record as
//          of this flush: last_seq, dictionary, ts range, latest values) |
//          varint first_ts | varint first_seq | bytes chunk (chunk.hpp: the
//          device's readings of this flush, sorted by (ts, seq); its metric
//          ids index that record's dictionary)
// where bytes = varint length + raw bytes. A reader looking for one device
// skips the other sections without decoding them.

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "storage/chunk.hpp"
#include "storage/meta.hpp"

namespace pulse::storage {

inline constexpr std::uint8_t log_version = 1;
inline constexpr std::size_t log_key_size = 2 + 8;

void append_log_key(std::string& out, std::uint16_t shard, std::uint64_t record);
bool decode_log_key(std::string_view key, std::uint16_t& shard, std::uint64_t& record);

// Streaming writer of one record: begin(), section() per device, finish().
class log_record_writer {
 public:
  void begin(std::string& out);
  // Appends a section; the chunk bytes come from chunk_encoder (without its
  // key's first ts/seq, which are passed here).
  void section(std::string_view device, const meta_record& rec, std::int64_t first_ts,
               std::uint64_t first_seq, std::string_view chunk);
  // Patches the section count (kept in a fixed 5-byte varint).
  void finish();

 private:
  std::string* out_ = nullptr;
  std::size_t count_pos_ = 0;
  std::uint32_t sections_ = 0;
  std::string scratch_;
};

// One section of a record, undecoded.
struct log_section {
  std::string_view device;
  std::string_view meta;   // encoded meta record
  std::int64_t first_ts = 0;
  std::uint64_t first_seq = 0;
  std::string_view chunk;  // encoded chunk
};

// Calls fn(const log_section&) for every section (fn returns false to stop).
// False if the record is malformed.
template <class F>
bool for_each_log_section(std::string_view record, F&& fn);

// Decodes a section's meta record and appends its readings to `rows`.
bool decode_log_section(const log_section& s, meta_record& rec, decoded_chunk& rows);

// Reads a device as the query side sees it under `ro` (give it a snapshot):
// its meta record overlaid with the newest one in the head log (`found` if
// either exists), and, when `head_rows` is given, the readings the head log
// holds for it (metric ids index `rec`'s dictionary; not sorted).
status read_device(const store& db, const rocksdb::ReadOptions& ro, std::string_view device,
                   meta_record& rec, bool& found, decoded_chunk* head_rows);

// The newest head-log record of every device whose id starts with `prefix`.
status read_head_records(const store& db, const rocksdb::ReadOptions& ro, std::string_view prefix,
                         std::map<std::string, meta_record, std::less<>>& out);

// The same with the devices' logged readings (metric ids index `rec`).
struct head_device {
  meta_record rec;
  decoded_chunk rows;
};
status read_head_devices(const store& db, const rocksdb::ReadOptions& ro, std::string_view prefix,
                         std::map<std::string, head_device, std::less<>>& out);

namespace detail {
bool log_record_header(std::string_view record, std::uint64_t& count, std::string_view& rest);
bool next_log_section(std::string_view& rest, log_section& s);
}  // namespace detail

template <class F>
bool for_each_log_section(std::string_view record, F&& fn) {
  std::uint64_t n = 0;
  std::string_view rest;
  if (!detail::log_record_header(record, n, rest)) return false;
  for (std::uint64_t i = 0; i < n; ++i) {
    log_section s;
    if (!detail::next_log_section(rest, s)) return false;
    if (!fn(static_cast<const log_section&>(s))) return true;
  }
  return rest.empty();
}

}  // namespace pulse::storage
