#pragma once
// Test support: one HTTP request to a node under test (Catch2 checks inside,
// so only for tests).

#include <catch2/catch.hpp>

#include <chrono>
#include <string>
#include <utility>
#include <vector>

#include "net/http_client.hpp"
#include "tests/support/process.hpp"

namespace pulse::test {

using header_list = std::vector<std::pair<std::string, std::string>>;

// Sends the request (failing the test if it cannot) and returns any answer.
inline net::http_response http_send(const node_process& n, const std::string& method,
                                    const std::string& target, const std::string& body = "",
                                    const header_list& headers = {},
                                    const std::string& content_type = "application/json") {
  net::http_response res;
  std::string err;
  INFO(method << " " << target << ": " << err);
  REQUIRE(net::http_request(n.host, n.port, method, target, body, res, err,
                            std::chrono::seconds(30), content_type, headers));
  return res;
}

}  // namespace pulse::test
