#pragma once
// Reading what the node sends back (ack, welcome, error) in the simulator.

#include <cstdint>
#include <string>
#include <string_view>

namespace pulse::sim {

struct server_message {
  enum kind_t { ack, welcome, error, other, malformed } kind = other;
  std::string device;
  std::uint64_t seq = 0;       // ack: seq; welcome: last_seq; error: seq if present
  bool has_seq = false;
  std::string code;            // error
  std::string message;         // error
};

// Never throws; unknown or broken messages come back as `other`/`malformed`.
server_message parse_server_message(std::string_view text);

// Why a connection ended, from net::ws_client's close reason: the server's
// close code ("1013", "1001", ...) when it sent one, "client" for our own
// close, "lost" otherwise (reset, timeout, refused).
std::string close_cause(std::string_view reason);

}  // namespace pulse::sim
