#pragma once
// Read side: aggregates and raw readings from a store. Stateless functions,
// safe to call from any thread concurrently with writers.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "storage/store.hpp"

namespace pulse::storage {

// Aggregate of one metric over some set of readings. `sum` is kept as a
// compensated (double-double) sum so that the result does not depend on the
// order readings arrived in.
struct aggregate {
  std::uint64_t count = 0;
  double sum_hi = 0, sum_lo = 0;
  double min = 0, max = 0;
  double first = 0, last = 0;
  std::int64_t first_ts = 0, last_ts = 0;    // ts of first and last
  std::uint64_t first_seq = 0, last_seq = 0;  // seq tie-breakers of first and last

  double sum() const { return sum_hi + sum_lo; }
  double avg() const { return count ? sum() / static_cast<double>(count) : 0.0; }
  void add(double v, std::int64_t ts, std::uint64_t seq);
  void merge(const aggregate& other);
};

struct bucket {
  std::int64_t t = 0;  // bucket start, ms since epoch
  aggregate agg;
};

// Aggregates `metric` of `device` over [from, to) in buckets of `step_ms`
// aligned to multiples of step_ms since the epoch. Buckets without data are
// left out. Uses hour rollups for whole hours, minute rollups for whole
// minutes, raw chunks for the rest; the answer is the same either way.
std::vector<bucket> aggregate_device(const store& db, std::string_view device,
                                     std::string_view metric, std::int64_t from, std::int64_t to,
                                     std::int64_t step_ms, status& st);

// Same as aggregate_device but reading only raw chunks (for tests and checks).
std::vector<bucket> aggregate_device_raw(const store& db, std::string_view device,
                                         std::string_view metric, std::int64_t from,
                                         std::int64_t to, std::int64_t step_ms, status& st);

// Aggregates `metric` over every device whose id starts with `prefix`, from
// one snapshot: merged into `merged` (bucket start -> aggregate), or per
// device into `groups` when `group` is set. Whole-minute windows and steps
// read minute rollup rows bucket-major (one range scan over all devices),
// whole-hour ones hour rows; others go device by device as
// aggregate_device does. Readings still in the head log are added raw.
// Answers are the same either way. From `parallel_min` devices (members,
// and keys in `meta`) on, two threads each read half of the keys.
status aggregate_fleet(const store& db, std::string_view prefix, std::string_view metric,
                       std::int64_t from, std::int64_t to, std::int64_t step_ms, bool group,
                       std::map<std::int64_t, aggregate>& merged,
                       std::map<std::string, std::map<std::int64_t, aggregate>>& groups,
                       std::size_t parallel_min = 100000);

struct stored_reading {
  std::uint64_t seq = 0;
  std::int64_t ts = 0;
  std::vector<std::pair<std::string, double>> values;
};

// A page cursor: the (ts, seq) of the last reading of a page ("c" + 32 hex
// digits), the same on every node, so pages merged from cluster members
// continue with it too.
std::string encode_cursor(std::int64_t ts, std::uint64_t seq);
bool decode_cursor(std::string_view s, std::int64_t& ts, std::uint64_t& seq);

// Raw readings of `device` with ts in [from, to), ordered by (ts, seq),
// at most `limit`. `cursor` is "" for the first page, else a next_cursor
// from a previous page; `next_cursor` is set empty on the last page.
std::vector<stored_reading> read_readings(const store& db, std::string_view device,
                                          std::int64_t from, std::int64_t to, std::size_t limit,
                                          std::string_view cursor, std::string& next_cursor,
                                          status& st);

}  // namespace pulse::storage
