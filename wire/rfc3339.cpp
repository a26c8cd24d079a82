// RFC 3339 timestamps <-> ms since epoch, computed from the civil date
// directly: no locale, no TZ environment, no timegm.

#include <string>
#include <string_view>

#include "wire/codec.hpp"

namespace pulse::wire {

namespace {

constexpr std::int64_t ms_per_day = 86'400'000;

// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
// days_from_civil, valid for any year that fits).
std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  auto yoe = static_cast<unsigned>(y - era * 400);
  unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

void civil_from_days(std::int64_t z, std::int64_t& y, unsigned& m, unsigned& d) {
  z += 719468;
  std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  auto doe = static_cast<unsigned>(z - era * 146097);
  unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  y = static_cast<std::int64_t>(yoe) + era * 400;
  unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  unsigned mp = (5 * doy + 2) / 153;
  d = doy - (153 * mp + 2) / 5 + 1;
  m = mp < 10 ? mp + 3 : mp - 9;
  y += m <= 2;
}

bool leap_year(std::int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

unsigned days_in_month(std::int64_t y, unsigned m) {
  static const unsigned days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && leap_year(y) ? 29 : days[m - 1];
}

// Reads `n` digits at s[pos]; false if any is missing.
bool digits(std::string_view s, std::size_t pos, std::size_t n, unsigned& out) {
  if (pos + n > s.size()) return false;
  unsigned v = 0;
  for (std::size_t i = 0; i < n; ++i) {
    char c = s[pos + i];
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<unsigned>(c - '0');
  }
  out = v;
  return true;
}

void put_digits(std::string& out, std::int64_t v, int width) {
  char tmp[24];
  int n = 0;
  do {
    tmp[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v > 0);
  for (int i = n; i < width; ++i) out.push_back('0');
  while (n > 0) out.push_back(tmp[--n]);
}

}  // namespace

// date-time = YYYY-MM-DD ("T"|"t") hh:mm:ss [.frac] ("Z"|"z"|+hh:mm|-hh:mm)
std::optional<std::int64_t> parse_rfc3339(std::string_view s) {
  unsigned year, month, day, hour, minute, second;
  if (!digits(s, 0, 4, year) || s.size() < 20 || s[4] != '-' || !digits(s, 5, 2, month) ||
      s[7] != '-' || !digits(s, 8, 2, day) || (s[10] != 'T' && s[10] != 't') ||
      !digits(s, 11, 2, hour) || s[13] != ':' || !digits(s, 14, 2, minute) || s[16] != ':' ||
      !digits(s, 17, 2, second))
    return std::nullopt;
  if (month < 1 || month > 12 || day < 1 || day > days_in_month(year, month) || hour > 23 ||
      minute > 59 || second > 60)  // 60: a leap second; it lands on the next minute's :00
    return std::nullopt;
  std::size_t pos = 19;
  std::int64_t frac_ms = 0;
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    std::size_t start = pos;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
      // Digits past milliseconds are truncated, not rounded: a timestamp
      // never moves into the next millisecond.
      if (pos - start < 3) frac_ms = frac_ms * 10 + (s[pos] - '0');
      ++pos;
    }
    if (pos == start) return std::nullopt;
    for (std::size_t k = pos - start; k < 3; ++k) frac_ms *= 10;
  }
  if (pos >= s.size()) return std::nullopt;
  std::int64_t offset_min = 0;
  char z = s[pos];
  if (z == 'Z' || z == 'z') {
    ++pos;
  } else if (z == '+' || z == '-') {
    unsigned oh, om;
    if (!digits(s, pos + 1, 2, oh) || pos + 3 >= s.size() || s[pos + 3] != ':' ||
        !digits(s, pos + 4, 2, om) || oh > 23 || om > 59)
      return std::nullopt;
    offset_min = static_cast<std::int64_t>(oh) * 60 + om;
    if (z == '-') offset_min = -offset_min;
    pos += 6;
  } else {
    return std::nullopt;
  }
  if (pos != s.size()) return std::nullopt;
  std::int64_t days = days_from_civil(year, month, day);
  std::int64_t secs = static_cast<std::int64_t>(hour) * 3600 + minute * 60 + second;
  return days * ms_per_day + secs * 1000 + frac_ms - offset_min * 60'000;
}

std::string format_rfc3339(std::int64_t ms) {
  std::int64_t days = ms / ms_per_day;
  std::int64_t rem = ms % ms_per_day;
  if (rem < 0) {
    rem += ms_per_day;
    --days;
  }
  std::int64_t y;
  unsigned m, d;
  civil_from_days(days, y, m, d);
  std::string out;
  out.reserve(24);
  if (y < 0) {
    out.push_back('-');
    y = -y;
  }
  put_digits(out, y, 4);
  out.push_back('-');
  put_digits(out, m, 2);
  out.push_back('-');
  put_digits(out, d, 2);
  out.push_back('T');
  put_digits(out, rem / 3'600'000, 2);
  out.push_back(':');
  put_digits(out, rem / 60'000 % 60, 2);
  out.push_back(':');
  put_digits(out, rem / 1000 % 60, 2);
  out.push_back('.');
  put_digits(out, rem % 1000, 3);
  out.push_back('Z');
  return out;
}

}  // namespace pulse::wire
