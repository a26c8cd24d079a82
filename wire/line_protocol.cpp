// InfluxDB line protocol -> wire::frame. See wire/line_protocol.hpp for the
// mapping; the grammar is InfluxDB's (escapes: `\,` `\ ` in measurements,
// also `\=` in tag keys, tag values and field keys; `\"` and `\\` in string
// field values).

#include "wire/line_protocol.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace pulse::wire {

namespace {

constexpr std::size_t max_fields_per_line = max_metrics_per_reading;

bool device_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == ':' ||
         c == '.' || c == '_' || c == '-';
}

bool metric_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_';
}

struct field {
  std::string name;
  double value = 0;
};

// One line, cut into its parts; `error` set on failure.
class line_reader {
 public:
  explicit line_reader(std::string_view line) : s_(line) {}

  std::string error;
  std::string measurement;
  std::vector<std::pair<std::string, std::string>> tags;
  std::vector<field> fields;
  std::optional<std::int64_t> ts;

  bool read() {
    measurement = token(",  ", false);
    if (measurement.empty()) return fail("missing measurement");
    while (peek(',')) {
      ++i_;
      auto key = token("= ,", true);
      if (key.empty()) return fail("empty tag key");
      if (!peek('=')) return fail("tag '" + key + "' has no '='");
      ++i_;
      auto value = token(", ", true);
      if (value.empty()) return fail("tag '" + key + "' has an empty value");
      tags.emplace_back(std::move(key), std::move(value));
    }
    if (!peek(' ')) return fail("expected a space before the fields");
    skip_spaces();
    if (at_end()) return fail("no fields");
    while (true) {
      auto key = token("= ,", true);
      if (key.empty()) return fail("empty field key");
      if (!peek('=')) return fail("field '" + key + "' has no '='");
      ++i_;
      if (!read_value(key)) return false;
      if (!peek(',')) break;
      ++i_;
    }
    if (!at_end()) {
      if (!peek(' ')) return fail("unexpected '" + std::string(1, s_[i_]) + "' after the fields");
      skip_spaces();
      if (!at_end()) {
        auto start = i_;
        while (i_ < s_.size() && s_[i_] != ' ') ++i_;
        auto text = s_.substr(start, i_ - start);
        std::int64_t v = 0;
        auto r = std::from_chars(text.data(), text.data() + text.size(), v);
        if (r.ec != std::errc() || r.ptr != text.data() + text.size())
          return fail("timestamp '" + std::string(text.substr(0, 40)) + "' is not an integer");
        ts = v;
        skip_spaces();
        if (!at_end()) return fail("unexpected text after the timestamp");
      }
    }
    return true;
  }

 private:
  bool fail(std::string why) {
    error = std::move(why);
    return false;
  }
  bool at_end() const { return i_ >= s_.size(); }
  bool peek(char c) const { return i_ < s_.size() && s_[i_] == c; }
  void skip_spaces() {
    while (peek(' ')) ++i_;
  }

  // Up to an unescaped byte of `stops`; a backslash escapes ',', ' ' and
  // (when `eq_escapes`) '='. Any other backslash is kept, as InfluxDB does.
  std::string token(std::string_view stops, bool eq_escapes) {
    std::string out;
    while (i_ < s_.size()) {
      char c = s_[i_];
      if (c == '\\' && i_ + 1 < s_.size()) {
        char n = s_[i_ + 1];
        if (n == ',' || n == ' ' || (eq_escapes && n == '=') || n == '\\') {
          out += n;
          i_ += 2;
          continue;
        }
      }
      if (stops.find(c) != std::string_view::npos) break;
      out += c;
      ++i_;
    }
    return out;
  }

  bool read_value(const std::string& key) {
    if (peek('"')) {  // a string field: skipped, but it must be well formed
      ++i_;
      while (i_ < s_.size() && s_[i_] != '"') i_ += s_[i_] == '\\' && i_ + 1 < s_.size() ? 2 : 1;
      if (at_end()) return fail("field '" + key + "': unterminated string");
      ++i_;
      skipped_string = true;
      return true;
    }
    auto start = i_;
    while (i_ < s_.size() && s_[i_] != ',' && s_[i_] != ' ') ++i_;
    auto text = s_.substr(start, i_ - start);
    if (text.empty()) return fail("field '" + key + "' has no value");
    double v = 0;
    if (text == "t" || text == "T" || text == "true" || text == "True" || text == "TRUE") {
      v = 1;
    } else if (text == "f" || text == "F" || text == "false" || text == "False" ||
               text == "FALSE") {
      v = 0;
    } else if (text.back() == 'i' || text.back() == 'u') {
      auto digits = text.substr(0, text.size() - 1);
      std::from_chars_result r{};
      if (text.back() == 'i') {
        std::int64_t n = 0;
        r = std::from_chars(digits.data(), digits.data() + digits.size(), n);
        v = static_cast<double>(n);
      } else {
        std::uint64_t n = 0;
        r = std::from_chars(digits.data(), digits.data() + digits.size(), n);
        v = static_cast<double>(n);
      }
      if (digits.empty() || r.ec != std::errc() || r.ptr != digits.data() + digits.size())
        return fail("field '" + key + "': '" + std::string(text.substr(0, 40)) +
                    "' is not an integer in range");
    } else {
      auto r = std::from_chars(text.data(), text.data() + text.size(), v);
      if (r.ec != std::errc() || r.ptr != text.data() + text.size() || !std::isfinite(v))
        return fail("field '" + key + "': '" + std::string(text.substr(0, 40)) +
                    "' is not a number (floats 1.5, integers 1i, unsigned 1u, booleans, or "
                    "\"strings\")");
    }
    fields.push_back(field{key, v});
    return true;
  }

 public:
  bool skipped_string = false;

 private:
  std::string_view s_;
  std::size_t i_ = 0;
};

// Bytes outside the allowed set become '_'.
std::string sanitize(std::string s, bool (*ok)(char)) {
  for (auto& c : s)
    if (!ok(c)) c = '_';
  return s;
}

// ms since epoch of `ts` in units of `ns_per_unit`; false on overflow.
bool to_ms(std::int64_t ts, std::int64_t ns_per_unit, std::int64_t& ms) {
  constexpr std::int64_t ns_per_ms = 1'000'000;
  if (ns_per_unit >= ns_per_ms) {
    auto mult = ns_per_unit / ns_per_ms;
    if (ts > std::numeric_limits<std::int64_t>::max() / mult ||
        ts < std::numeric_limits<std::int64_t>::min() / mult)
      return false;
    ms = ts * mult;
  } else {
    auto div = ns_per_ms / ns_per_unit;
    ms = ts / div - (ts % div < 0 ? 1 : 0);  // floor, also for negative values
  }
  return true;
}

}  // namespace

std::optional<std::int64_t> line_protocol_precision(std::string_view p, bool v2) {
  if (p.empty() || p == "ns" || (!v2 && p == "n")) return 1;
  if (p == "us" || (!v2 && p == "u")) return 1'000;
  if (p == "ms") return 1'000'000;
  if (p == "s") return 1'000'000'000;
  if (!v2 && p == "m") return 60'000'000'000;
  if (!v2 && p == "h") return 3'600'000'000'000;
  return std::nullopt;
}

void parse_line_protocol(std::string_view body, std::int64_t ns_per_unit, std::int64_t now_ms,
                         frame& out) {
  out.clear();
  std::unordered_map<std::string, std::size_t> batch_of;  // device -> index in out.batches
  std::size_t readings = 0;
  auto fail = [&](std::size_t line, std::string why) {
    out.batches.clear();
    out.errors.push_back(wire_error{error_code::invalid_reading,
                                    "line " + std::to_string(line) + ": " + std::move(why),
                                    std::nullopt});
  };
  std::size_t number = 0;
  for (std::size_t pos = 0; pos < body.size();) {
    auto nl = std::min(body.find('\n', pos), body.size());
    auto line = body.substr(pos, nl - pos);
    pos = nl + 1;
    ++number;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    auto first = line.find_first_not_of(" \t");
    if (first == std::string_view::npos || line[first] == '#') continue;  // blank or comment
    line.remove_prefix(first);

    line_reader r(line);
    if (!r.read()) return fail(number, r.error);
    if (r.fields.empty()) continue;  // string fields only: nothing Pulse stores
    if (r.fields.size() > max_fields_per_line)
      return fail(number, std::to_string(r.fields.size()) + " numeric fields, at most " +
                            std::to_string(max_fields_per_line) + " per line");

    // device id: measurement, then tag values by key.
    std::sort(r.tags.begin(), r.tags.end());
    for (std::size_t i = 1; i < r.tags.size(); ++i)
      if (r.tags[i].first == r.tags[i - 1].first)
        return fail(number, "tag '" + r.tags[i].first + "' appears twice");
    std::string device = r.measurement;
    for (auto& [k, v] : r.tags) device += ':' + v;
    device = sanitize(std::move(device), device_char);
    if (device.size() > max_device_len)
      return fail(number, "the device id (measurement and tag values joined by ':') is " +
                            std::to_string(device.size()) + " characters, at most " +
                            std::to_string(max_device_len));

    std::int64_t ts = now_ms;
    if (r.ts) {
      if (!to_ms(*r.ts, ns_per_unit, ts) || ts > now_ms + max_future_ms)
        return fail(number, "timestamp " + std::to_string(*r.ts) +
                              " is more than 7 days in the future at this precision");
      if (ts < min_ms_ts)
        return fail(number, "timestamp " + std::to_string(*r.ts) +
                              " is before 1973 at this precision (precision= says its unit: "
                              "ns by default; s, ms, us too)");
    }

    auto [it, added] = batch_of.emplace(device, out.batches.size());
    if (added) {
      out.batches.emplace_back();
      out.batches.back().device = device;
    }
    auto& batch = out.batches[it->second];
    auto first_sample = static_cast<std::uint32_t>(batch.samples.size());
    for (auto& f : r.fields) {
      auto name = sanitize(std::move(f.name), metric_char);
      if (name.size() > max_metric_name_len)
        return fail(number, "field '" + name.substr(0, 80) + "' is longer than " +
                              std::to_string(max_metric_name_len) + " characters");
      auto m = std::find(batch.metrics.begin(), batch.metrics.end(), name) - batch.metrics.begin();
      if (static_cast<std::size_t>(m) == batch.metrics.size()) {
        if (batch.metrics.size() > 65535) return fail(number, "too many distinct fields for " + device);
        batch.metrics.push_back(name);
      }
      for (auto s = first_sample; s < batch.samples.size(); ++s)
        if (batch.samples[s].metric == m)
          return fail(number, "field '" + name + "' appears twice");
      batch.samples.push_back(sample{static_cast<std::uint16_t>(m), f.value});
    }
    batch.rows.push_back(reading_row{ts, 0, first_sample,
                                     static_cast<std::uint16_t>(r.fields.size()), false});
    if (++readings > max_readings_per_frame) {
      out.batches.clear();
      out.errors.push_back(wire_error{error_code::too_large,
                                      "more than " + std::to_string(max_readings_per_frame) +
                                        " lines with fields in one request",
                                      std::nullopt});
      return;
    }
  }
}

}  // namespace pulse::wire
