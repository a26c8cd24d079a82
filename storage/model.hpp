#pragma once
// The data model shared by the wire codec, the actors and the storage layer.
// Plain structs, no CAF, no Beast, no RocksDB.

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace pulse {

// Limits of the data model (DESIGN.md, "Data model").
inline constexpr std::size_t max_device_len = 128;
inline constexpr std::size_t max_metrics_per_reading = 64;
inline constexpr std::size_t max_metric_name_len = 64;
inline constexpr std::int64_t ms_per_minute = 60'000;
inline constexpr std::int64_t ms_per_hour = 3'600'000;

// One metric value of a reading; `metric` indexes reading_batch::metrics.
struct sample {
  std::uint16_t metric = 0;
  double value = 0;
};

// One reading; its samples are reading_batch::samples[first, first + count).
struct reading_row {
  std::int64_t ts = 0;      // ms since epoch
  std::uint64_t seq = 0;    // meaningful only when has_seq
  std::uint32_t first = 0;  // index of the first sample
  std::uint16_t count = 0;  // number of samples (1..64)
  bool has_seq = false;     // false: the shard assigns last_seq + 1
};

// Readings of one device, laid out flat so that a frame of N readings costs a
// handful of allocations, not N. This is what sessions hand to shards.
struct reading_batch {
  std::string device;
  std::vector<std::string> metrics;  // names referenced by sample::metric
  std::vector<reading_row> rows;
  std::vector<sample> samples;
  std::string meta;  // latest `meta` object as compact JSON text; empty if none

  std::size_t size() const { return rows.size(); }
  bool empty() const { return rows.empty(); }
  void clear() {
    device.clear();
    metrics.clear();
    rows.clear();
    samples.clear();
    meta.clear();
  }
};

// Validation helpers for identifiers (DESIGN.md: device `[A-Za-z0-9:._-]{1,128}`,
// metric `[A-Za-z0-9_.]{1,64}`).
inline bool valid_device_id(const char* p, std::size_t n) {
  if (n == 0 || n > max_device_len) return false;
  for (std::size_t i = 0; i < n; ++i) {
    char c = p[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == ':' || c == '.' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}
inline bool valid_device_id(const std::string& s) { return valid_device_id(s.data(), s.size()); }

inline bool valid_metric_name(const char* p, std::size_t n) {
  if (n == 0 || n > max_metric_name_len) return false;
  for (std::size_t i = 0; i < n; ++i) {
    char c = p[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.';
    if (!ok) return false;
  }
  return true;
}
inline bool valid_metric_name(const std::string& s) { return valid_metric_name(s.data(), s.size()); }

}  // namespace pulse
