#pragma once
// The HTTP query API (DESIGN.md "HTTP API"): GET requests under /api/v1 turned
// into store reads and JSON answers.
//
// CAF-free and Beast-free on purpose: the query actor calls handle_query() from
// its detached thread, and tests call it directly against a store in a temp dir.
// Concurrency: handle_query() is stateless and reentrant; it only reads the
// store (thread-safe) and calls `online` (which must be safe to call from the
// caller's thread). Reads block on RocksDB, so do not call it on an I/O thread.
//
// Limits (named so that docs and tests can refer to them):
//   devices listing: limit 1..1000 (default 100)
//   readings:        limit 1..10000 (default 1000)
//   aggregates:      at most 100,000 buckets per window; fleet group_by answers
//                    at most 1,000,000 buckets in total
//   times:           0 .. 253402300800000 (year 10000), ms since epoch or RFC 3339

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "storage/store.hpp"

namespace pulse::api {

inline constexpr std::size_t default_devices_limit = 100;
inline constexpr std::size_t max_devices_limit = 1000;
inline constexpr std::size_t default_readings_limit = 1000;
inline constexpr std::size_t max_readings_limit = 10000;
inline constexpr std::int64_t max_buckets = 100'000;
inline constexpr std::int64_t max_group_buckets = 1'000'000;
// Default `to` is now + this, so that readings stamped by clocks slightly
// ahead of the server's still show up.
inline constexpr std::int64_t default_to_ahead_ms = 86'400'000;
// Upper bound of accepted times (10000-01-01T00:00:00Z): keeps every bucket
// computation far away from int64 overflow and inside storage's u32 hour keys.
inline constexpr std::int64_t max_time_ms = 253'402'300'800'000;

struct http_answer {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
};

struct query_context {
  const storage::store* db = nullptr;
  std::string node_name;
  // Whether a device has an open session now; empty means "never online".
  std::function<bool(std::string_view device)> online;
};

// Handles GET requests of the query API. `target` is the raw request target
// including the query string ("/api/v1/devices/m-1/aggregate?metric=voltage&step=1h").
// Unknown paths answer 404, known paths with a method other than GET 405,
// malformed requests 400, storage failures 500. Never throws.
http_answer handle_query(const query_context& ctx, std::string_view method, std::string_view target);

// "250ms", "1s", "90s", "5m", "1h", "1d" to milliseconds; only values > 0.
bool parse_duration_ms(std::string_view s, std::int64_t& ms);

// ms since epoch (decimal digits) or RFC 3339, within [0, max_time_ms].
bool parse_time_param(std::string_view s, std::int64_t& ms);

// Decodes %XX escapes and '+' (space); `ok` turns false on a bad escape.
std::string url_decode(std::string_view s, bool& ok);

// {"error":{"code":..,"message":..}} with the given HTTP status.
http_answer json_error(int status, std::string_view code, std::string_view message);

}  // namespace pulse::api
