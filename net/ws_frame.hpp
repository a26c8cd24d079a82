#pragma once
// RFC 6455 frame headers as a client sends them (the node's WebSocket data
// path reads frames itself, see server.cpp). A pure function over bytes, so
// it can be fuzzed and tested apart from sockets.

#include <cstddef>
#include <cstdint>

namespace pulse::net {

struct ws_frame_header {
  bool fin = false;
  unsigned op = 0;             // 0 continuation, 1 text, 2 binary, 8 close, 9 ping, 10 pong
  std::uint64_t len = 0;       // payload bytes
  std::size_t header_bytes = 0;  // including the 4-byte mask key
  unsigned char key[4] = {};
  bool control() const { return op & 0x8; }
};

// Outcome of read_ws_header: the header is complete (`ok`), more bytes are
// needed (`incomplete`), or the frame breaks the protocol: the close code to
// answer with (1002 protocol error, 1009 message too big).
enum ws_header_result : int { ws_ok = 0, ws_incomplete = 1, ws_protocol_error = 1002, ws_too_big = 1009 };

// Reads the header at p[0, avail). `in_message`: a fragmented data message
// is open; `message_bytes`: its payload so far; `max`: net.max-frame-bytes
// for a whole message. Checks what RFC 6455 requires of a client frame
// before its payload arrives: reserved bits clear, a known opcode, masked,
// control frames unfragmented and at most 125 bytes, continuation only
// inside a message and no new message inside one, length within `max`.
ws_header_result read_ws_header(const unsigned char* p, std::size_t avail, bool in_message,
                                std::size_t message_bytes, std::size_t max, ws_frame_header& h);

// Unmasks `n` payload bytes in place.
void unmask(char* payload, std::size_t n, const unsigned char key[4]);

// Whether a close frame's status code may be sent by a peer (RFC 6455 7.4).
bool valid_close_code(std::uint16_t code);

}  // namespace pulse::net
