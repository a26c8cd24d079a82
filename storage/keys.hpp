#pragma once
// Key layouts of the three column families (DESIGN.md "Storage"). All integers
// are big-endian so that RocksDB's bytewise order is numeric order:
//
//   readings: bucket u32 (hours since epoch) | len u8 | device | first ts u64 | first seq u64
//   rollups:  resolution u8 ('m' | 'h') | bucket u32 (minutes|hours since epoch) | len u8 | device
//   meta:     'd' | device
//
// The length prefix keeps one device's keys of a bucket contiguous and makes
// `bucket|len|device` a prefix of no other device's keys. Meta keys carry no
// length so that they sort by device id (list_devices pages by id).

#include <cstdint>
#include <string>
#include <string_view>

#include "storage/model.hpp"

namespace pulse::storage {

// Largest ts accepted: 9999-12-31T23:59:59.999Z. Keeps minute buckets in u32
// and leaves headroom for arithmetic on ts without overflow.
inline constexpr std::int64_t max_ts = 253'402'300'799'999;

inline bool valid_ts(std::int64_t ts) { return ts >= 0 && ts <= max_ts; }

// Callers pass valid ts (see valid_ts); the casts cannot truncate then.
inline std::uint32_t hour_bucket(std::int64_t ts) {
  return static_cast<std::uint32_t>(ts / ms_per_hour);
}
inline std::uint32_t minute_bucket(std::int64_t ts) {
  return static_cast<std::uint32_t>(ts / ms_per_minute);
}

enum class resolution : char { minute = 'm', hour = 'h' };

inline constexpr std::size_t readings_key_fixed = 4 + 1 + 8 + 8;

struct readings_key_parts {
  std::uint32_t bucket = 0;
  std::string_view device;  // points into the decoded key
  std::int64_t first_ts = 0;
  std::uint64_t first_seq = 0;
};

struct rollup_key_parts {
  resolution res = resolution::minute;
  std::uint32_t bucket = 0;
  std::string_view device;  // points into the decoded key
};

// Encoders append to `out` (so callers can reuse one buffer). The device must
// be 1..max_device_len bytes (valid_device_id); ts must satisfy valid_ts.
void append_readings_key(std::string& out, std::uint32_t bucket, std::string_view device,
                         std::int64_t first_ts, std::uint64_t first_seq);
// `bucket | len | device`: the prefix shared by one device's chunks of one hour.
void append_readings_prefix(std::string& out, std::uint32_t bucket, std::string_view device);
void append_rollup_key(std::string& out, resolution res, std::uint32_t bucket,
                       std::string_view device);
void append_meta_key(std::string& out, std::string_view device);

std::string readings_key(std::uint32_t bucket, std::string_view device, std::int64_t first_ts,
                         std::uint64_t first_seq);
std::string readings_prefix(std::uint32_t bucket, std::string_view device);
std::string rollup_key(resolution res, std::uint32_t bucket, std::string_view device);
std::string meta_key(std::string_view device);

// Decoders return false for anything that is not a well-formed key (wrong
// length, bad tag, empty or over-long device, ts beyond max_ts).
bool decode_readings_key(std::string_view key, readings_key_parts& out);
bool decode_rollup_key(std::string_view key, rollup_key_parts& out);
bool decode_meta_key(std::string_view key, std::string_view& device);

// The smallest string greater than every string starting with `prefix`
// ("" if there is none, i.e. the prefix is all 0xff): an exclusive upper
// bound for iterating a prefix.
std::string prefix_successor(std::string_view prefix);

}  // namespace pulse::storage
