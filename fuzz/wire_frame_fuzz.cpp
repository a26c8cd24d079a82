// libFuzzer target: one WebSocket text frame through wire::frame_parser::parse.
// The parser and the frame are reused across inputs, as a session reuses
// them, so the recycling of batches and buffers is fuzzed too.

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fuzz/fuzz_check.hpp"
#include "wire/codec.hpp"

namespace {

bool valid_pattern(std::string_view s) {
  if (!s.empty() && s.back() == '*') s.remove_suffix(1);
  return s.empty() || pulse::valid_device_id(s.data(), s.size());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace pulse;
  static wire::frame_parser parser;
  static wire::frame out;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  parser.parse(text, fuzz::now_ms, out);
  fuzz::check_frame(out);
  for (const auto& p : out.subscribe) PULSE_FUZZ_CHECK(valid_pattern(p));
  for (const auto& p : out.unsubscribe) PULSE_FUZZ_CHECK(valid_pattern(p));
  // Broken JSON anywhere in a frame is one invalid_json error and nothing
  // else (wire/README.md), so a half-read frame never leaks readings.
  for (const auto& e : out.errors) {
    if (e.code != wire::error_code::invalid_json) continue;
    PULSE_FUZZ_CHECK(out.errors.size() == 1);
    PULSE_FUZZ_CHECK(out.batches.empty() && !out.hello);
    PULSE_FUZZ_CHECK(out.subscribe.empty() && out.unsubscribe.empty());
  }
  return 0;
}
