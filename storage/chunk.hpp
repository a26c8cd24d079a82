#pragma once
// Chunk codec: the value of a `readings` key, i.e. one device's readings from
// one flush that fall in one hour bucket, sorted by (ts, seq).
//
// Layout (all varints LEB128, doubles raw 8-byte little-endian):
//   u8 version (=1) | varint count
//   per reading, in (ts, seq) order:
//     varint  ts - previous ts          (the first relative to the key's first ts)
//     zigzag  seq - previous seq        (wrapping u64; seq may go down when ts goes up)
//     varint  n << 1 | same_ids         (n = number of values, 1..64)
//     same_ids == 0: n x (varint metric id, double)
//     same_ids == 1: n x double         (metric ids as in the previous reading)
// A device that reports the same metrics every time thus costs ~3 bytes of
// framing plus 8 bytes per value per reading.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace pulse::storage {

inline constexpr std::uint8_t chunk_version = 1;

// One value: `metric` is an id in the device's dictionary (meta record).
struct chunk_value {
  std::uint32_t metric = 0;
  double value = 0;
};

// One reading; its values are values[first, first + count) of the owning array.
struct chunk_row {
  std::int64_t ts = 0;
  std::uint64_t seq = 0;
  std::uint32_t first = 0;
  std::uint16_t count = 0;
};

inline bool row_less(const chunk_row& a, const chunk_row& b) {
  return a.ts != b.ts ? a.ts < b.ts : a.seq < b.seq;
}

// Decoded readings of one or more chunks, laid out flat like reading_batch.
struct decoded_chunk {
  std::vector<chunk_row> rows;
  std::vector<chunk_value> values;
  void clear() {
    rows.clear();
    values.clear();
  }
};

// Streaming encoder, so that the batcher can encode straight from its buffer
// without copying rows. Usage: begin(), then exactly `count` add() calls in
// strictly increasing (ts, seq) order. Reusable; holds no allocation.
class chunk_encoder {
 public:
  // Appends the chunk header to `out`; `first_ts`/`first_seq` are the key's.
  void begin(std::string& out, std::size_t count, std::int64_t first_ts, std::uint64_t first_seq);
  // `n` must be 1..64 (max_metrics_per_reading).
  void add(std::int64_t ts, std::uint64_t seq, const chunk_value* values, std::size_t n);

 private:
  std::string* out_ = nullptr;
  std::int64_t prev_ts_ = 0;
  std::uint64_t prev_seq_ = 0;
  std::uint32_t prev_ids_[64] = {};
  std::size_t prev_n_ = 0;
};

// Sorts `rows` by (ts, seq) in place and appends their chunk to `out`.
// Returns the first row (the key's first ts/seq); `rows` must not be empty.
chunk_row encode_chunk(std::vector<chunk_row>& rows, const std::vector<chunk_value>& values,
                       std::string& out);

// Appends the readings of `data` to `out`. On malformed input (truncated,
// trailing bytes, counts out of range, ts beyond max_ts, rows out of order)
// returns false and leaves `out` as it was.
bool decode_chunk(std::string_view data, std::int64_t first_ts, std::uint64_t first_seq,
                  decoded_chunk& out);

}  // namespace pulse::storage
