#pragma once
// Rollup rows: the value of a `rollups` key, i.e. for one device and one
// minute or hour, an `aggregate` (query.hpp) per metric id of the device's
// dictionary that had values in that period.
//
// Layout: u8 version (=1) | varint n | n entries in increasing metric id:
//   varint metric | varint count | 6 doubles (sum_hi, sum_lo, min, max,
//   first, last) | varint first_ts | varint last_ts - first_ts |
//   varint first_seq | varint last_seq

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "storage/query.hpp"

namespace pulse::storage {

inline constexpr std::uint8_t rollup_version = 1;

struct rollup_entry {
  std::uint32_t metric = 0;
  aggregate agg;
};

struct rollup_row {
  std::vector<rollup_entry> entries;  // sorted by metric id, each count >= 1

  // The aggregate of `metric`, inserted empty if absent.
  aggregate& at(std::uint32_t metric);
  const aggregate* find(std::uint32_t metric) const;
  void merge(const rollup_row& other);
  void clear() { entries.clear(); }
  bool empty() const { return entries.empty(); }
};

// Appends the encoding of `row` to `out`. Entries with count 0 are skipped.
void encode_rollup_row(const rollup_row& row, std::string& out);

// Replaces `out` with the decoded row; false (and `out` cleared) on malformed
// input: truncated, trailing bytes, ids not increasing, count 0, ts beyond
// max_ts or first after last.
bool decode_rollup_row(std::string_view data, rollup_row& out);

}  // namespace pulse::storage
