// libFuzzer target: a POST /write body through wire::parse_line_protocol
// (InfluxDB line protocol, as Telegraf sends it) at a precision picked by the
// first byte.

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fuzz/fuzz_check.hpp"
#include "wire/line_protocol.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace pulse;
  if (size == 0) return 0;
  static constexpr std::int64_t units[] = {1, 1'000, 1'000'000, 1'000'000'000, 60'000'000'000,
                                           3'600'000'000'000};
  auto unit = units[data[0] % 6];
  std::string_view body(reinterpret_cast<const char*>(data + 1), size - 1);
  static wire::frame out;
  wire::parse_line_protocol(body, unit, fuzz::now_ms, out);
  fuzz::check_frame(out);
  // All or nothing: an error comes alone, with nothing delivered, naming a line
  // (or the body's size).
  if (!out.errors.empty()) {
    PULSE_FUZZ_CHECK(out.errors.size() == 1 && out.batches.empty());
    PULSE_FUZZ_CHECK(out.errors[0].message.rfind("line ", 0) == 0 ||
                     out.errors[0].code == wire::error_code::too_large);
  }
  for (auto& b : out.batches)
    for (auto& r : b.rows) PULSE_FUZZ_CHECK(!r.has_seq && r.ts >= wire::min_ms_ts);
  return 0;
}
