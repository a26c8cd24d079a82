#pragma once
// The JSON wire codec (DESIGN.md "Wire protocol"), shared by the node and the
// simulator. Frames are parsed with simdjson's On Demand API; encoders write
// the server's small messages by hand (no JSON library on the hot path).
//
// Concurrency: a frame_parser holds reusable buffers and is not thread-safe;
// keep one per session (or per thread). The free functions are thread-safe.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "storage/model.hpp"

namespace pulse::wire {

// Limits the parser enforces (see wire/README.md).
inline constexpr std::size_t max_readings_per_frame = 100'000;    // more: one too_large error
inline constexpr std::size_t max_meta_bytes = 4096;               // compact JSON text of one meta
inline constexpr std::int64_t max_future_ms = 7 * 24 * ms_per_hour;  // ts later than now + this: rejected
// A numeric ts below this (1973-03-03 in ms) is seconds sent where the protocol
// wants milliseconds (1.7e9 would be January 1970): refused with a message
// saying so, rather than stored 50 years in the past.
inline constexpr std::int64_t min_ms_ts = 100'000'000'000;

// Error codes of the wire protocol and of the HTTP API.
enum class error_code {
  invalid_json,
  invalid_reading,
  unauthorized,
  rate_limited,
  overloaded,
  too_large,
  storage_unavailable,  // the disk refuses writes now; retry later (close 1013 / HTTP 503)
};
const char* to_string(error_code c);

struct wire_error {
  error_code code = error_code::invalid_json;
  std::string message;
  std::optional<std::uint64_t> seq;  // seq of the rejected reading, when it had one
};

struct hello_msg {
  std::string device;
  std::string token;
};

// Everything one text frame carried. Readings are grouped by device (one
// batch per device, readings in frame order). A bad reading becomes an entry
// in `errors` and the others are still delivered.
struct frame {
  std::vector<reading_batch> batches;
  std::vector<wire_error> errors;
  std::optional<hello_msg> hello;
  std::vector<std::string> subscribe;
  std::vector<std::string> unsubscribe;
  std::size_t readings() const;
  void clear();
};

class frame_parser {
 public:
  frame_parser();
  ~frame_parser();
  frame_parser(const frame_parser&) = delete;
  frame_parser& operator=(const frame_parser&) = delete;

  // Parses one text frame into `out` (cleared first). `now_ms` is the
  // server receive time, used for readings without ts. Never throws.
  // Accepts: a reading object, a batch object for one device, an array of
  // reading objects, a hello, a subscribe/unsubscribe, an OCPP MeterValues
  // frame (payload as object or as JSON string).
  void parse(std::string_view text, std::int64_t now_ms, frame& out);

  // Parses an HTTP POST body: a JSON array of readings, or NDJSON (one
  // reading, batch or OCPP frame per line). Same output as parse().
  void parse_body(std::string_view body, std::int64_t now_ms, frame& out);

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

// Timestamps: RFC 3339 ("2023-09-17T20:29:59Z", fractional seconds and
// +hh:mm offsets allowed) to ms since epoch. nullopt when malformed.
std::optional<std::int64_t> parse_rfc3339(std::string_view s);
// ms since epoch to "2023-09-17T20:29:59.123Z".
std::string format_rfc3339(std::int64_t ms);

// Server -> client messages.
std::string encode_ack(std::string_view device, std::uint64_t seq);
std::string encode_error(const wire_error& e);
std::string encode_error(error_code code, std::string_view message);
// The one writer of {"error":{"code":..,"message":..[,"seq":..]}}: the wire's
// errors and every HTTP error answer (codes such as "bad_request" that the
// wire has no enum for).
std::string encode_error(std::string_view code, std::string_view message,
                         std::optional<std::uint64_t> seq = std::nullopt);
std::string encode_welcome(std::string_view node, std::string_view device, std::uint64_t last_seq);

// Whether `s` is valid UTF-8 (WebSocket text frames must be; simdjson's check).
bool valid_utf8(std::string_view s);

// Appends `s` to `out` as a JSON string literal (with quotes and escapes).
void append_json_string(std::string& out, std::string_view s);

// Appends a number in the shortest form that reads back exactly (std::to_chars);
// `v` must be finite (JSON has no NaN or Infinity).
void append_json_number(std::string& out, double v);
void append_json_number(std::string& out, std::uint64_t v);

}  // namespace pulse::wire
