#pragma once
// Checks shared by the fuzz targets: what every parse result must satisfy,
// whatever the input. A broken invariant aborts, so libFuzzer keeps the input
// as a crash just like a sanitizer report.

#include <cmath>
#include <cstdio>
#include <cstdlib>

#include <nlohmann/json.hpp>

#include "storage/keys.hpp"
#include "wire/codec.hpp"

#define PULSE_FUZZ_CHECK(cond)                                                        \
  do {                                                                                \
    if (!(cond)) {                                                                    \
      std::fprintf(stderr, "fuzz invariant failed: %s (%s:%d)\n", #cond, __FILE__, __LINE__); \
      std::abort();                                                                   \
    }                                                                                 \
  } while (0)

namespace pulse::fuzz {

// Fixed "now" (2024-11-17T00:01:55.542Z) so that a crash reproduces on replay.
inline constexpr std::int64_t now_ms = 1'731'801'715'542;

// What a frame handed to a shard must look like: the storage layer rejects
// anything else, and a reading the wire accepted but storage refuses would
// be neither stored nor acked.
inline void check_frame(const wire::frame& f) {
  for (std::size_t i = 0; i < f.batches.size(); ++i) {
    const auto& b = f.batches[i];
    PULSE_FUZZ_CHECK(valid_device_id(b.device));
    PULSE_FUZZ_CHECK(!b.rows.empty());
    for (std::size_t j = 0; j < i; ++j) PULSE_FUZZ_CHECK(f.batches[j].device != b.device);
    for (const auto& m : b.metrics) PULSE_FUZZ_CHECK(valid_metric_name(m));
    std::size_t next = 0;
    for (const auto& r : b.rows) {
      PULSE_FUZZ_CHECK(r.first == next);
      PULSE_FUZZ_CHECK(r.count >= 1 && r.count <= max_metrics_per_reading);
      next = r.first + r.count;
      PULSE_FUZZ_CHECK(next <= b.samples.size());
      PULSE_FUZZ_CHECK(storage::valid_ts(r.ts));
      PULSE_FUZZ_CHECK(r.ts <= now_ms + wire::max_future_ms);
      if (!r.has_seq) PULSE_FUZZ_CHECK(r.seq == 0);
      for (std::uint32_t k = r.first; k < next; ++k) {
        PULSE_FUZZ_CHECK(b.samples[k].metric < b.metrics.size());
        PULSE_FUZZ_CHECK(std::isfinite(b.samples[k].value));
        for (std::uint32_t l = r.first; l < k; ++l)
          PULSE_FUZZ_CHECK(b.samples[l].metric != b.samples[k].metric);
      }
    }
    PULSE_FUZZ_CHECK(next == b.samples.size());
    // meta is stored as-is and served back inside JSON answers.
    if (!b.meta.empty()) {
      PULSE_FUZZ_CHECK(b.meta.size() <= wire::max_meta_bytes);
      auto meta = nlohmann::json::parse(b.meta, nullptr, false);
      PULSE_FUZZ_CHECK(!meta.is_discarded() && meta.is_object());
    }
  }
  // A reader's hello may carry only its token; a device, when given, is valid.
  if (f.hello) PULSE_FUZZ_CHECK(f.hello->device.empty() || valid_device_id(f.hello->device));
  for (const auto& e : f.errors) {
    PULSE_FUZZ_CHECK(!e.message.empty());
    // Error messages echo client bytes; what goes back on the wire must
    // still be one valid JSON document.
    PULSE_FUZZ_CHECK(nlohmann::json::accept(wire::encode_error(e)));
  }
}

}  // namespace pulse::fuzz
