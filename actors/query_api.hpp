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
//   times:           0 .. 253402300800000 (year 10000), ms since epoch, RFC 3339,
//                    `now` or relative to it (`-1h`, `now-15m`)
//   window defaults: to = now, from = to - 1 h
//   fn=increase/rate read raw readings: at most max_counter_readings per request

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "storage/store.hpp"

namespace pulse::api {

inline constexpr std::size_t default_devices_limit = 100;
inline constexpr std::size_t max_devices_limit = 1000;
inline constexpr std::size_t default_readings_limit = 1000;
inline constexpr std::size_t max_readings_limit = 10000;
inline constexpr std::int64_t max_buckets = 100'000;
inline constexpr std::int64_t max_group_buckets = 1'000'000;
// Without `from`, the window is this long before `to` (which defaults to now).
inline constexpr std::int64_t default_window_ms = 3'600'000;
// fn=increase and fn=rate scan raw readings; more than this many in one
// request is 400 (narrow the window or the prefix).
inline constexpr std::size_t max_counter_readings = 10'000'000;
// Upper bound of accepted times (10000-01-01T00:00:00Z): keeps every bucket
// computation far away from int64 overflow and inside storage's u32 hour keys.
inline constexpr std::int64_t max_time_ms = 253'402'300'800'000;

struct http_answer {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  // Extra response headers (Allow on 405, X-Next-Cursor on CSV pages).
  std::vector<std::pair<std::string, std::string>> headers;
};

struct query_context {
  const storage::store* db = nullptr;
  std::string node_name;
  // Whether a device has an open session now; empty means "never online".
  std::function<bool(std::string_view device)> online;
  // The node's notion of now (ms since epoch) for `now`, relative times and
  // the default window; empty: the system clock.
  std::function<std::int64_t()> clock;
  // Long scans (fn=increase/rate) give up with 503 past this; default: never.
  std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
  // Cluster coordinator: non-null means "do not read the store, merge these":
  // the 200 bodies of the members' answers to the same GET with
  // `partials=1` (see cluster_target). `missing` names the members that did
  // not answer in time: the answer is then "partial":true with "missing".
  const std::vector<std::string>* member_answers = nullptr;
  std::vector<std::string> missing;
  // cluster.replicas. Above 1 a device's readings are on several members:
  // the coordinator takes each (device, bucket) from the member holding the
  // most readings in it instead of adding the members' partials up, members
  // answer fleet partials per device for that, and an answer is partial
  // only when `replicas` members or more are missing.
  std::size_t replicas = 1;
};

// Cluster: whether a GET is answered by merging the members' partial answers
// (device records, raw readings, device and fleet aggregates), and the target to send
// them: the same with partials=1, which makes a member answer every bucket
// with its mergeable partial (count, sum_hi, sum_lo, min, max, first/last
// with ts and seq), and a device it holds nothing of with "found":false
// rather than 404.
bool cluster_mergeable(std::string_view target);
std::string cluster_target(std::string_view target);

// Handles GET requests of the query API. `target` is the raw request target
// including the query string ("/api/v1/devices/m-1/aggregate?metric=voltage&step=1h").
// `accept` is the request's Accept header: text/csv there (or format=csv)
// makes readings and aggregates answer CSV.
// Unknown paths answer 404, known paths with a method other than GET 405,
// malformed requests 400, storage failures 500. Never throws.
http_answer handle_query(const query_context& ctx, std::string_view method, std::string_view target,
                         std::string_view accept = {});

// POST /admin/backup: a consistent checkpoint of `db` into the directory named
// by `?dir=` or the body's {"dir":"..."}: an absolute path without `.`/`..`
// segments, not existing yet, whose parent exists, outside `storage_path`.
// 200 {"path","bytes","files","ms"}; 400 for a refused path; 500 when RocksDB
// fails. Blocks for as long as the checkpoint takes (flush + links/copies).
http_answer handle_backup(const storage::store& db, std::string_view target, std::string_view body,
                          const std::string& storage_path);

// Query parameters of POST /write (`v2` false) and /api/v2/write: precision
// (v1: n, u, ms, s, m, h; v2: ns, us, ms, s; default ns) as ns per unit in
// `ns_per_unit`. db, rp, u, p, consistency (v1) and bucket, org, orgID (v2)
// are accepted and ignored: a node has one database. A 400 answer otherwise.
std::optional<http_answer> parse_write_params(std::string_view target, bool v2,
                                              std::int64_t& ns_per_unit);

// "250ms", "1s", "90s", "5m", "1h", "1d" to milliseconds; only values > 0.
bool parse_duration_ms(std::string_view s, std::int64_t& ms);

// ms since epoch (decimal digits), RFC 3339, `now`, `now-<duration>` or
// `-<duration>` (before `now_ms`), within [0, max_time_ms].
bool parse_time_param(std::string_view s, std::int64_t now_ms, std::int64_t& ms);

// Decodes %XX escapes and '+' (space) with Boost.URL; `ok` turns false on a
// bad escape.
std::string url_decode(std::string_view s, bool& ok);

// {"error":{"code":..,"message":..}} with the given HTTP status.
http_answer json_error(int status, std::string_view code, std::string_view message);

}  // namespace pulse::api
