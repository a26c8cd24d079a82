#pragma once
// One-shot blocking HTTP/1.1 client for pulse-sim's --verify, tests and tools.
// Beast stays in net/http_client.cpp.
//
// Concurrency: each call owns a private io_context and socket, so calls from
// different threads are independent. Each call opens one connection
// ("Connection: close"); it is not meant for high request rates.

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace pulse::net {

struct http_response {
  int status = 0;
  std::string content_type;
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // as received
  // The first header called `name` (case-insensitive); "" when absent.
  std::string header(std::string_view name) const;
};

// Bodies of answers are read up to this size; a larger one is an error.
constexpr std::size_t max_http_response_bytes = 256u << 20;

// One request with a timeout covering resolve, connect, write and read.
// Returns false with a message on failure ("connecting to 127.0.0.1:9: Connection
// refused", "timed out after 100 ms while reading the response"); any HTTP
// status, 4xx and 5xx included, is a success with out.status set. `body` and
// `content_type` are sent when the body is non-empty or the method is POST,
// PUT or PATCH.
// Percent-encodes everything but RFC 3986's unreserved characters
// (A-Z a-z 0-9 - _ . ~), for a path segment or a query value.
std::string url_encode(std::string_view s);

bool http_request(const std::string& host, std::uint16_t port, const std::string& method,
                  const std::string& target, const std::string& body, http_response& out,
                  std::string& error, std::chrono::milliseconds timeout = std::chrono::seconds(10),
                  const std::string& content_type = "application/json",
                  const std::vector<std::pair<std::string, std::string>>& headers = {});

}  // namespace pulse::net
