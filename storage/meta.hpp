#pragma once
// Meta records: the value of a `meta` key, one per device. Written by the
// device's batcher in the same WriteBatch as its chunks and rollups, so the
// dictionary always covers the metric ids of every stored chunk.
//
// Layout: u8 version (=1) | varint last_seq | zigzag first_seen |
//   zigzag last_seen | varint n + n x bytes (metric dictionary) |
//   bytes meta JSON | varint earliest_ts | varint latest_ts |
//   varint latest_seq | varint n + n x (varint metric id, double)
// where bytes = varint length + raw bytes.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "storage/chunk.hpp"
#include "storage/store.hpp"

namespace rocksdb {
struct ReadOptions;
}

namespace pulse::storage {

inline constexpr std::uint8_t meta_version = 1;

// Most distinct metric names one device may accumulate over its life; beyond
// it new names are rejected (keeps meta records and rollup rows bounded).
inline constexpr std::size_t max_metrics_per_device = 4096;

// Largest `meta` JSON kept per device.
inline constexpr std::size_t max_meta_json_len = 64 * 1024;

struct meta_record {
  std::uint64_t last_seq = 0;
  std::int64_t first_seen = 0;
  std::int64_t last_seen = 0;
  std::vector<std::string> metrics;  // dictionary: id = index
  std::string meta;
  // Range of stored ts: lets queries skip hours that cannot hold data.
  std::int64_t earliest_ts = 0;
  std::int64_t latest_ts = 0;
  std::uint64_t latest_seq = 0;     // seq of the reading with the greatest (ts, seq)
  std::vector<chunk_value> latest;  // its values

  void clear();
};

void encode_meta(const meta_record& rec, std::string& out);

// Replaces `out`; false on malformed input (including latest ids outside the
// dictionary or earliest_ts after latest_ts).
bool decode_meta(std::string_view data, meta_record& out);

// What a fleet query needs of a meta record, read without building it: the
// id of `metric` in the dictionary (found false if absent) and the stored ts
// range. False on malformed input (as decode_meta would be).
struct meta_summary {
  bool found = false;
  std::uint32_t id = 0;
  std::int64_t earliest_ts = 0;
  std::int64_t latest_ts = 0;
};
bool decode_meta_summary(std::string_view data, std::string_view metric, meta_summary& out);

device_record to_device_record(std::string_view device, const meta_record& rec);

// Reads the meta record of `device`. Sets `found`; an I/O error or a corrupt
// record is a failed status.
status read_meta(const store& db, const rocksdb::ReadOptions& ro, std::string_view device,
                 meta_record& out, bool& found);

}  // namespace pulse::storage
