#pragma once
// Helpers shared by the wire tests: a flat view of a parsed frame and the
// structural invariants every parse result must keep.

#include <catch2/catch.hpp>
#include <cmath>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "wire/codec.hpp"

namespace pulse::wire::test {

// 2024-11-17T00:01:55.542Z: "now" for every test, so ts checks are stable.
inline constexpr std::int64_t now_ms = 1'731'801'715'542;

// One reading as a test wants to see it.
struct flat_reading {
  std::string device;
  std::optional<std::uint64_t> seq;
  std::int64_t ts = 0;
  std::vector<std::pair<std::string, double>> values;  // in sample order
  double value(const std::string& name) const {
    for (const auto& [n, v] : values)
      if (n == name) return v;
    FAIL("no metric " << name);
    return 0;
  }
};

inline std::vector<flat_reading> flatten(const frame& f) {
  std::vector<flat_reading> out;
  for (const auto& b : f.batches) {
    for (const auto& r : b.rows) {
      flat_reading fr;
      fr.device = b.device;
      if (r.has_seq) fr.seq = r.seq;
      fr.ts = r.ts;
      for (std::uint32_t i = r.first; i < r.first + r.count; ++i)
        fr.values.emplace_back(b.metrics[b.samples[i].metric], b.samples[i].value);
      out.push_back(std::move(fr));
    }
  }
  return out;
}

// What every parse must guarantee, whatever the input.
inline void check_invariants(const frame& f) {
  for (std::size_t i = 0; i < f.batches.size(); ++i) {
    const auto& b = f.batches[i];
    REQUIRE(valid_device_id(b.device));
    REQUIRE_FALSE(b.rows.empty());
    for (std::size_t j = 0; j < i; ++j) REQUIRE(f.batches[j].device != b.device);
    for (const auto& m : b.metrics) REQUIRE(valid_metric_name(m));
    std::size_t next = 0;
    for (const auto& r : b.rows) {
      REQUIRE(r.first == next);  // rows tile samples in order
      REQUIRE(r.count >= 1);
      REQUIRE(r.count <= max_metrics_per_reading);
      next = r.first + r.count;
      REQUIRE(r.ts >= 0);
      for (std::uint32_t k = r.first; k < r.first + r.count; ++k) {
        REQUIRE(b.samples[k].metric < b.metrics.size());
        REQUIRE(std::isfinite(b.samples[k].value));
        for (std::uint32_t l = r.first; l < k; ++l)
          REQUIRE(b.samples[l].metric != b.samples[k].metric);
      }
      if (!r.has_seq) REQUIRE(r.seq == 0);
    }
    REQUIRE(next == b.samples.size());
  }
  for (const auto& e : f.errors) REQUIRE_FALSE(e.message.empty());
}

// Parses with a parser shared by the calling test case.
inline frame parse(frame_parser& p, std::string_view text) {
  frame f;
  p.parse(text, now_ms, f);
  check_invariants(f);
  return f;
}

inline bool only_invalid_json(const frame& f) {
  return f.errors.size() == 1 && f.errors[0].code == error_code::invalid_json &&
         f.batches.empty() && !f.hello && f.subscribe.empty() && f.unsubscribe.empty();
}

}  // namespace pulse::wire::test
