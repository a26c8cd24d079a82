// libFuzzer target: an HTTP POST /api/v1/readings body through
// wire::frame_parser::parse_body (JSON array or NDJSON, with the per-line
// rollback and the whole-body retry). Parser and frame are reused as the
// query actor reuses them.

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fuzz/fuzz_check.hpp"
#include "wire/codec.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace pulse;
  static wire::frame_parser parser;
  static wire::frame out;
  std::string_view body(reinterpret_cast<const char*>(data), size);
  parser.parse_body(body, fuzz::now_ms, out);
  fuzz::check_frame(out);
  // Control messages have no meaning in a request body.
  PULSE_FUZZ_CHECK(!out.hello && out.subscribe.empty() && out.unsubscribe.empty());
  return 0;
}
