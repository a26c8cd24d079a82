#pragma once
// Test support: the WebSocket steps integration tests share (Catch2 checks
// inside, so only for tests).

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <string>

#include "net/ws_client.hpp"
#include "tests/support/process.hpp"

namespace pulse::test {

// Reads frames until one has `key` at top level; fails on a close or the timeout.
inline nlohmann::json read_until(net::ws_blocking_client& ws, const std::string& key,
                                 std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    auto msg = ws.read(std::chrono::milliseconds(200));
    if (!msg) {
      REQUIRE_FALSE(ws.closed());
      continue;
    }
    auto j = nlohmann::json::parse(*msg, nullptr, false);
    REQUIRE_FALSE(j.is_discarded());
    if (j.contains(key)) return j;
  }
  FAIL("no '" << key << "' message within the timeout");
  return {};
}

inline void connect(net::ws_blocking_client& ws, const node_process& n) {
  std::string err;
  INFO(err);
  REQUIRE(ws.connect(n.host, n.port, err));
}

}  // namespace pulse::test
