#include "wire/detail.hpp"

#include <charconv>
#include <cmath>

namespace pulse::wire::detail {

namespace {
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_json_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
}  // namespace

std::string shown(std::string_view s) {
  constexpr std::size_t limit = 64;
  if (s.size() <= limit) return std::string(s);
  std::size_t cut = limit;
  while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;
  return std::string(s.substr(0, cut)) + "...";
}

std::string_view trim_json_ws(std::string_view s) {
  while (!s.empty() && is_json_ws(s.back())) s.remove_suffix(1);
  while (!s.empty() && is_json_ws(s.front())) s.remove_prefix(1);
  return s;
}

// RFC 8259 section 6: -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?
number_shape classify_number(std::string_view t) {
  number_shape r;
  std::size_t i = 0, n = t.size();
  if (i < n && t[i] == '-') {
    r.negative = true;
    ++i;
  }
  if (i >= n) return r;
  if (t[i] == '0') {
    ++i;
  } else if (t[i] >= '1' && t[i] <= '9') {
    while (i < n && is_digit(t[i])) ++i;
  } else {
    return r;
  }
  r.integer = true;
  if (i < n && t[i] == '.') {
    r.integer = false;
    ++i;
    if (i >= n || !is_digit(t[i])) return r;
    while (i < n && is_digit(t[i])) ++i;
  }
  if (i < n && (t[i] == 'e' || t[i] == 'E')) {
    r.integer = false;
    ++i;
    if (i < n && (t[i] == '+' || t[i] == '-')) ++i;
    if (i >= n || !is_digit(t[i])) return r;
    while (i < n && is_digit(t[i])) ++i;
  }
  r.valid = i == n;
  return r;
}

std::optional<double> parse_decimal(std::string_view s) {
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
  // Grammar first: from_chars alone would also take "inf", "nan" and hex.
  std::size_t i = 0, n = s.size();
  bool negative = false;
  if (i < n && (s[i] == '+' || s[i] == '-')) {
    negative = s[i] == '-';
    ++i;
  }
  std::size_t digits_start = i, mantissa_digits = 0;
  while (i < n && is_digit(s[i])) ++i, ++mantissa_digits;
  if (i < n && s[i] == '.') {
    ++i;
    while (i < n && is_digit(s[i])) ++i, ++mantissa_digits;
  }
  if (mantissa_digits == 0) return std::nullopt;
  if (i < n && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < n && (s[i] == '+' || s[i] == '-')) ++i;
    if (i >= n || !is_digit(s[i])) return std::nullopt;
    while (i < n && is_digit(s[i])) ++i;
  }
  if (i != n) return std::nullopt;
  double v = 0;
  auto res = std::from_chars(s.data() + digits_start, s.data() + n, v, std::chars_format::general);
  // from_chars wants a digit first; ".5" is accepted by the grammar above.
  if (res.ec == std::errc::invalid_argument && s[digits_start] == '.') {
    char tmp[512];
    std::size_t len = n - digits_start;
    if (len + 1 > sizeof(tmp)) return std::nullopt;
    tmp[0] = '0';
    for (std::size_t k = 0; k < len; ++k) tmp[k + 1] = s[digits_start + k];
    res = std::from_chars(tmp, tmp + len + 1, v, std::chars_format::general);
    if (res.ec != std::errc{} || res.ptr != tmp + len + 1) return std::nullopt;
  } else if (res.ec != std::errc{} || res.ptr != s.data() + n) {
    return std::nullopt;  // includes result_out_of_range (1e999)
  }
  if (!std::isfinite(v)) return std::nullopt;
  return negative ? -v : v;
}

void append_uint(std::string& out, std::uint64_t v) {
  char tmp[24];
  auto res = std::to_chars(tmp, tmp + sizeof(tmp), v);
  out.append(tmp, res.ptr);
}

void append_int(std::string& out, std::int64_t v) {
  char tmp[24];
  auto res = std::to_chars(tmp, tmp + sizeof(tmp), v);
  out.append(tmp, res.ptr);
}

}  // namespace pulse::wire::detail
