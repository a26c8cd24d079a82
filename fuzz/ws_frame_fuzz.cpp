// libFuzzer target: the node's WebSocket frame reader (net/ws_frame.hpp) run
// over arbitrary bytes the way ws_session::process() runs it: headers read,
// payloads unmasked in place, fragments assembled up to a message limit.
// Invariants: a header is never read past the bytes given, an accepted
// payload fits the limit, and a message never grows past it.
#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz/fuzz_check.hpp"
#include "net/ws_frame.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace pulse::net;
  constexpr std::size_t max = 4096;
  std::string buf(reinterpret_cast<const char*>(data), size);
  std::size_t pos = 0, message = 0;
  bool in_message = false;
  while (pos < buf.size()) {
    ws_frame_header h;
    auto r = read_ws_header(reinterpret_cast<const unsigned char*>(buf.data() + pos),
                            buf.size() - pos, in_message, message, max, h);
    if (r != ws_ok) break;
    PULSE_FUZZ_CHECK(h.header_bytes <= buf.size() - pos);
    PULSE_FUZZ_CHECK(h.control() ? h.len <= 125 : h.len <= max);
    if (buf.size() - pos - h.header_bytes < h.len) break;
    auto len = static_cast<std::size_t>(h.len);
    unmask(buf.data() + pos + h.header_bytes, len, h.key);
    pos += h.header_bytes + len;
    if (h.control()) {
      if (h.op == 0x8 && len >= 2) {
        auto code = static_cast<std::uint16_t>((static_cast<unsigned char>(buf[pos - len]) << 8) |
                                               static_cast<unsigned char>(buf[pos - len + 1]));
        (void)valid_close_code(code);
      }
      continue;
    }
    message += len;
    PULSE_FUZZ_CHECK(message <= max);
    in_message = !h.fin;
    if (h.fin) message = 0;
  }
  return 0;
}
