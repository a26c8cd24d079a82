// Encoders for the server's messages, JSON string escaping, and the public
// face of frame_parser (the parser itself is in frame_parser.cpp / ocpp.cpp).

#include "wire/codec.hpp"

#include <charconv>

#include "wire/detail.hpp"
#include "wire/parser_impl.hpp"

namespace pulse::wire {

const char* to_string(error_code c) {
  switch (c) {
    case error_code::invalid_json:
      return "invalid_json";
    case error_code::invalid_reading:
      return "invalid_reading";
    case error_code::unauthorized:
      return "unauthorized";
    case error_code::rate_limited:
      return "rate_limited";
    case error_code::overloaded:
      return "overloaded";
    case error_code::too_large:
      return "too_large";
    case error_code::storage_unavailable:
      return "storage_unavailable";
  }
  return "invalid_json";
}

std::size_t frame::readings() const {
  std::size_t n = 0;
  for (const auto& b : batches) n += b.size();
  return n;
}

void frame::clear() {
  batches.clear();
  errors.clear();
  hello.reset();
  subscribe.clear();
  unsubscribe.clear();
}

frame_parser::frame_parser() : impl_(std::make_unique<impl>()) {}
frame_parser::~frame_parser() = default;

void frame_parser::parse(std::string_view text, std::int64_t now_ms, frame& out) {
  impl_->parse(text, now_ms, out);
}

void frame_parser::parse_body(std::string_view body, std::int64_t now_ms, frame& out) {
  impl_->parse_body(body, now_ms, out);
}

namespace {

const char hex_digits[] = "0123456789abcdef";

// Length of the valid UTF-8 sequence starting at s[i], or 0 if it is not one
// (overlong forms, surrogates and code points past U+10FFFF are invalid).
std::size_t utf8_sequence(std::string_view s, std::size_t i) {
  auto byte = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned char c = byte(i);
  std::size_t n = s.size();
  auto cont = [&](std::size_t k) { return k < n && (byte(k) & 0xC0) == 0x80; };
  if (c >= 0xC2 && c <= 0xDF) return cont(i + 1) ? 2 : 0;
  if (c >= 0xE0 && c <= 0xEF) {
    if (!cont(i + 1) || !cont(i + 2)) return 0;
    unsigned char c1 = byte(i + 1);
    if (c == 0xE0 && c1 < 0xA0) return 0;
    if (c == 0xED && c1 > 0x9F) return 0;
    return 3;
  }
  if (c >= 0xF0 && c <= 0xF4) {
    if (!cont(i + 1) || !cont(i + 2) || !cont(i + 3)) return 0;
    unsigned char c1 = byte(i + 1);
    if (c == 0xF0 && c1 < 0x90) return 0;
    if (c == 0xF4 && c1 > 0x8F) return 0;
    return 4;
  }
  return 0;
}

}  // namespace

void append_json_string(std::string& out, std::string_view s) {
  out.reserve(out.size() + s.size() + 2);
  out.push_back('"');
  std::size_t i = 0, n = s.size();
  while (i < n) {
    // Copy runs of plain ASCII in one go: the common case for ids and messages.
    std::size_t run = i;
    while (run < n) {
      unsigned char c = static_cast<unsigned char>(s[run]);
      if (c < 0x20 || c == '"' || c == '\\' || c >= 0x80) break;
      ++run;
    }
    out.append(s.data() + i, run - i);
    i = run;
    if (i >= n) break;
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(c));
      ++i;
    } else if (c < 0x20) {
      out.append("\\u00");
      out.push_back(hex_digits[c >> 4]);
      out.push_back(hex_digits[c & 0xF]);
      ++i;
    } else if (std::size_t len = utf8_sequence(s, i)) {
      out.append(s.data() + i, len);
      i += len;
    } else {
      // Invalid UTF-8 would make the whole message unreadable for clients.
      out.append("\\ufffd");
      ++i;
    }
  }
  out.push_back('"');
}

std::string encode_ack(std::string_view device, std::uint64_t seq) {
  std::string out;
  out.reserve(32 + device.size());
  out.append("{\"ack\":{\"device\":");
  append_json_string(out, device);
  out.append(",\"seq\":");
  detail::append_uint(out, seq);
  out.append("}}");
  return out;
}

std::string encode_error(std::string_view code, std::string_view message,
                         std::optional<std::uint64_t> seq) {
  std::string out;
  out.reserve(48 + code.size() + message.size());
  out.append("{\"error\":{\"code\":");
  append_json_string(out, code);
  out.append(",\"message\":");
  append_json_string(out, message);
  if (seq) {
    out.append(",\"seq\":");
    detail::append_uint(out, *seq);
  }
  out.append("}}");
  return out;
}

std::string encode_error(const wire_error& e) { return encode_error(to_string(e.code), e.message, e.seq); }

std::string encode_error(error_code code, std::string_view message) {
  return encode_error(to_string(code), message, std::nullopt);
}

std::string encode_welcome(std::string_view node, std::string_view device, std::uint64_t last_seq) {
  std::string out;
  out.reserve(48 + node.size() + device.size());
  out.append("{\"welcome\":{\"node\":");
  append_json_string(out, node);
  out.append(",\"device\":");
  append_json_string(out, device);
  out.append(",\"last_seq\":");
  detail::append_uint(out, last_seq);
  out.append("}}");
  return out;
}

void append_json_number(std::string& out, double v) {
  char buf[32];
  auto r = std::to_chars(buf, buf + sizeof(buf), v);
  out.append(buf, r.ptr);
}

void append_json_number(std::string& out, std::uint64_t v) { detail::append_uint(out, v); }

bool valid_utf8(std::string_view s) { return simdjson::validate_utf8(s.data(), s.size()); }

}  // namespace pulse::wire
