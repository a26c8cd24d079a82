// The node's WebSocket frame-header reader (net/ws_frame.hpp) against
// RFC 6455's rules for client frames, every truncation and random garbage.
#include "net/ws_frame.hpp"

#include <catch2/catch.hpp>
#include <random>
#include <string>

using namespace pulse::net;

namespace {

std::string frame(unsigned char b0, std::uint64_t len, bool masked = true) {
  std::string f(1, static_cast<char>(b0));
  unsigned char m = masked ? 0x80 : 0;
  if (len < 126) {
    f += static_cast<char>(m | len);
  } else if (len <= 0xffff) {
    f += static_cast<char>(m | 126);
    f += static_cast<char>(len >> 8);
    f += static_cast<char>(len & 0xff);
  } else {
    f += static_cast<char>(m | 127);
    for (int i = 7; i >= 0; --i) f += static_cast<char>((len >> (8 * i)) & 0xff);
  }
  if (masked) f += std::string("\x01\x02\x03\x04", 4);
  return f;
}

ws_header_result read(const std::string& f, bool in_message = false, std::size_t so_far = 0,
                      std::size_t max = 1 << 20) {
  ws_frame_header h;
  return read_ws_header(reinterpret_cast<const unsigned char*>(f.data()), f.size(), in_message,
                        so_far, max, h);
}

}  // namespace

TEST_CASE("ws frame headers: lengths of 7, 16 and 64 bits, mask key, FIN and opcode") {
  for (std::uint64_t len : {0ull, 125ull, 126ull, 65535ull, 65536ull, 1000000ull}) {
    auto f = frame(0x81, len);
    ws_frame_header h;
    REQUIRE(read_ws_header(reinterpret_cast<const unsigned char*>(f.data()), f.size(), false, 0,
                           1 << 20, h) == ws_ok);
    CHECK(h.fin);
    CHECK(h.op == 1);
    CHECK(h.len == len);
    CHECK(h.header_bytes == f.size());
    CHECK(h.key[0] == 1);
    CHECK(h.key[3] == 4);
    // Every shorter prefix of the header is incomplete, never an error.
    for (std::size_t n = 0; n < f.size(); ++n) CHECK(read(f.substr(0, n)) == ws_incomplete);
  }
  std::string payload = "hello";
  const unsigned char key[4] = {0x11, 0x22, 0x33, 0x44};
  auto masked = payload;
  unmask(masked.data(), masked.size(), key);
  CHECK(masked != payload);
  unmask(masked.data(), masked.size(), key);
  CHECK(masked == payload);
}

TEST_CASE("ws frame headers: what a client may not send is a protocol error or too big") {
  CHECK(read(frame(0x81, 5, false)) == ws_protocol_error);   // unmasked
  CHECK(read(frame(0xC1, 1)) == ws_protocol_error);          // RSV1
  CHECK(read(frame(0x83, 1)) == ws_protocol_error);          // reserved opcode
  CHECK(read(frame(0x8B, 1)) == ws_protocol_error);          // reserved control opcode
  CHECK(read(frame(0x09, 1)) == ws_protocol_error);          // fragmented ping
  CHECK(read(frame(0x89, 126)) == ws_protocol_error);        // ping over 125 bytes
  CHECK(read(frame(0x80, 1)) == ws_protocol_error);          // continuation without a start
  CHECK(read(frame(0x81, 1), true) == ws_protocol_error);    // new message inside one
  CHECK(read(frame(0x89, 4), true) == ws_ok);                // a ping inside one is fine
  CHECK(read(frame(0x80, 4), true) == ws_ok);                // and so is its continuation
  CHECK(read(frame(0x81, 1001), false, 0, 1000) == ws_too_big);
  CHECK(read(frame(0x80, 600), true, 600, 1000) == ws_too_big);  // fragments add up
  CHECK(read(frame(0x81, std::uint64_t{1} << 62), false, 0, 1000) == ws_too_big);
  CHECK(read(frame(0x81, ~std::uint64_t{0}), false, 0, 1000) == ws_too_big);
  CHECK(valid_close_code(1000));
  CHECK(valid_close_code(4999));
  CHECK_FALSE(valid_close_code(999));
  CHECK_FALSE(valid_close_code(1005));
  CHECK_FALSE(valid_close_code(1015));
}

TEST_CASE("ws frame headers: random bytes never read past what is given") {
  std::mt19937 rng(5);
  for (int i = 0; i < 200000; ++i) {
    std::string f(rng() % 16, '\0');
    for (auto& c : f) c = static_cast<char>(rng());
    ws_frame_header h;
    auto r = read_ws_header(reinterpret_cast<const unsigned char*>(f.data()), f.size(),
                            rng() & 1, rng() % 2000, 1000, h);
    if (r == ws_ok) {
      REQUIRE(h.header_bytes <= f.size());
      REQUIRE(h.len <= 1000);
    }
  }
}
