#include "net/ws_frame.hpp"

namespace pulse::net {

ws_header_result read_ws_header(const unsigned char* p, std::size_t avail, bool in_message,
                                std::size_t message_bytes, std::size_t max, ws_frame_header& h) {
  if (avail < 2) return ws_incomplete;
  h.fin = p[0] & 0x80;
  const unsigned rsv = p[0] & 0x70;
  h.op = p[0] & 0x0f;
  const bool masked = p[1] & 0x80;
  std::uint64_t len = p[1] & 0x7f;
  std::size_t n = 2;
  if (len == 126) {
    if (avail < 4) return ws_incomplete;
    len = (std::uint64_t{p[2]} << 8) | p[3];
    n = 4;
  } else if (len == 127) {
    if (avail < 10) return ws_incomplete;
    len = 0;
    for (int i = 0; i < 8; ++i) len = (len << 8) | p[2 + i];
    n = 10;
  }
  if (rsv || !masked || (h.op > 0x2 && h.op < 0x8) || h.op > 0xA) return ws_protocol_error;
  if (h.control()) {
    if (!h.fin || len > 125) return ws_protocol_error;
  } else {
    if ((h.op == 0) == !in_message) return ws_protocol_error;
    if (len > max || message_bytes > max - len) return ws_too_big;
  }
  if (avail < n + 4) return ws_incomplete;
  for (int i = 0; i < 4; ++i) h.key[i] = p[n + i];
  h.len = len;
  h.header_bytes = n + 4;
  return ws_ok;
}

void unmask(char* payload, std::size_t n, const unsigned char key[4]) {
  for (std::size_t i = 0; i < n; ++i) payload[i] ^= static_cast<char>(key[i & 3]);
}

bool valid_close_code(std::uint16_t code) {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1011) ||
         (code >= 3000 && code <= 4999);
}

}  // namespace pulse::net
