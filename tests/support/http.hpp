#pragma once
// Test support: HTTP to a node under test on 127.0.0.1, and its /metrics.

#include <catch2/catch.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "net/http_client.hpp"

namespace pulse::test {

// One request that must get an answer (any status).
inline net::http_response http(std::uint16_t port, const std::string& method,
                               const std::string& target, const std::string& body = "",
                               std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
  net::http_response res;
  std::string err;
  INFO(method << " " << target << ": " << err);
  REQUIRE(net::http_request("127.0.0.1", port, method, target, body, res, err, timeout));
  return res;
}

// The value of the Prometheus line `name value` in `text`, if there is one.
inline std::optional<double> find_metric(std::string_view text, const std::string& name) {
  auto at = text.find("\n" + name + " ");
  if (at == std::string_view::npos) return std::nullopt;
  return std::stod(std::string(text.substr(at + name.size() + 2, 40)));
}

// The node's value of `name` in /metrics; the line must be there.
inline double metric(std::uint16_t port, const std::string& name) {
  auto value = find_metric(http(port, "GET", "/metrics").body, name);
  INFO(name);
  REQUIRE(value);
  return *value;
}

}  // namespace pulse::test
