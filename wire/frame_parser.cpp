// frame_parser: frames and NDJSON bodies -> per-device reading batches.
// See parser_impl.hpp for the parsing model and wire/README.md for the rules.

#include <algorithm>
#include <string>

#include "wire/codec.hpp"
#include "wire/parser_impl.hpp"

namespace pulse::wire {

using detail::flow;
using detail::location;
using detail::reading_draft;
using detail::shown;

namespace {

// Buffers larger than this are released after use, so one huge HTTP body
// does not pin its memory in a long-lived parser.
constexpr std::size_t keep_buffer_bytes = std::size_t{4} << 20;
// Spare batches kept for reuse, and the largest one worth keeping.
constexpr std::size_t max_spare_batches = 256;
constexpr std::size_t max_spare_samples = 1u << 16;
// A reading's metric names are checked for duplicates pairwise up to this
// many, with a hash index beyond.
constexpr std::size_t pairwise_limit = 16;
constexpr std::size_t max_metric_index = 65535;  // sample::metric is 16 bits

bool is_json_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

// A subscription pattern: an exact device id, or a prefix of one followed by
// a single '*' ("meter-*"; "*" alone matches every device).
bool valid_pattern(std::string_view s) {
  if (!s.empty() && s.back() == '*') {
    s.remove_suffix(1);
    return s.empty() || valid_device_id(s.data(), s.size());
  }
  return valid_device_id(s.data(), s.size());
}

// Index of the second occurrence of a repeated name, or npos.
std::size_t find_duplicate(const std::vector<std::string_view>& names, detail::index_table& table) {
  std::size_t n = names.size();
  if (n <= pairwise_limit) {
    for (std::size_t i = 1; i < n; ++i)
      for (std::size_t j = 0; j < i; ++j)
        if (names[i] == names[j]) return i;
    return std::string_view::npos;
  }
  table.clear();
  for (std::size_t i = 0; i < n; ++i) {
    std::uint64_t h = detail::hash_text(names[i]);
    if (table.find(h, [&](std::uint32_t a, std::uint32_t) { return names[a] == names[i]; }))
      return i;
    table.insert(h, static_cast<std::uint32_t>(i), 0);
  }
  return std::string_view::npos;
}

}  // namespace

// ---------------------------------------------------------------------------
// Entry points

void frame_parser::impl::begin_call(frame& out, std::int64_t now_ms) {
  // Keep the cleared batches (and their buffers) for this call's output.
  for (auto& b : out.batches) recycle(b);
  out.clear();
  out_ = &out;
  now_ms_ = now_ms;
  line_ = 0;
  readings_seen_ = 0;
  last_batch_ = UINT32_MAX;
  devices_.clear();
  metrics_.clear();
  touched_.clear();
}

void frame_parser::impl::end_call() {
  if (buf_.capacity() > keep_buffer_bytes) buf_.release_if_larger(keep_buffer_bytes);
  if (payload_buf_.capacity() > keep_buffer_bytes)
    payload_buf_.release_if_larger(keep_buffer_bytes);
  if (parser_.capacity() > keep_buffer_bytes) parser_ = od::parser{};
  if (payload_parser_.capacity() > keep_buffer_bytes) payload_parser_ = od::parser{};
  if (validator_ && validator_->capacity() > keep_buffer_bytes) validator_.reset();
  out_ = nullptr;
}

void frame_parser::impl::parse(std::string_view text, std::int64_t now_ms, frame& out) {
  begin_call(out, now_ms);
  control_allowed_ = true;
  if (run_document(text) == flow::too_large) abort_too_large("frame");
  end_call();
}

void frame_parser::impl::parse_body(std::string_view body, std::int64_t now_ms, frame& out) {
  begin_call(out, now_ms);
  control_allowed_ = false;
  std::size_t first = 0;
  while (first < body.size() && is_json_ws(body[first])) ++first;
  if (first < body.size() && body[first] == '[') {
    if (run_document(body) == flow::too_large) abort_too_large("request body");
    end_call();
    return;
  }
  // NDJSON: one document per line; a bad line is reported with its number
  // and the other lines are still delivered.
  std::size_t lines = 0, json_failures = 0, line_no = 0, pos = 0;
  while (pos < body.size()) {
    std::size_t nl = body.find('\n', pos);
    std::size_t end = nl == std::string_view::npos ? body.size() : nl;
    std::string_view line = body.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (std::all_of(line.begin(), line.end(), is_json_ws)) continue;
    ++lines;
    line_ = line_no;
    flow f = run_document(line);
    if (f == flow::too_large) {
      line_ = 0;
      abort_too_large("request body");
      end_call();
      return;
    }
    if (f == flow::bad_json) ++json_failures;
  }
  // Every line failed as JSON: most likely one pretty-printed object rather
  // than NDJSON. Try the body as a whole before reporting line errors.
  if (lines > 1 && json_failures == lines) {
    saved_errors_ = std::move(out_->errors);
    out_->errors.clear();
    line_ = 0;
    flow f = run_document(body);
    if (f == flow::too_large) {
      abort_too_large("request body");
    } else if (f == flow::bad_json) {
      out_->errors = std::move(saved_errors_);
    }
    saved_errors_.clear();
  }
  end_call();
}

void frame_parser::impl::abort_too_large(const char* what) {
  for (auto& b : out_->batches) recycle(b);
  out_->clear();
  out_->errors.push_back(wire_error{
      error_code::too_large,
      std::string(what) + " has more than " + std::to_string(max_readings_per_frame) + " readings",
      std::nullopt});
}

// ---------------------------------------------------------------------------
// Documents

frame_parser::impl::flow frame_parser::impl::run_document(std::string_view text) {
  mark_ = mark_state{out_->batches.size(),     out_->errors.size(), out_->subscribe.size(),
                     out_->unsubscribe.size(), readings_seen_,      out_->hello.has_value()};
  undo_.clear();
  if (++doc_id_ == 0) {  // wrapped: forget which batches were saved
    std::fill(touched_.begin(), touched_.end(), 0);
    doc_id_ = 1;
  }
  validate_ = false;
  json_error_ = simdjson::SUCCESS;
  json_detail_.clear();
  flow f = parse_document(text);
  if (f == flow::ok && validate_ && !validate(buf_)) f = flow::bad_json;
  if (f == flow::bad_json) {
    rollback();
    push_error(error_code::invalid_json, json_message());
  }
  return f;
}

std::string frame_parser::impl::json_message() const {
  std::string m = "invalid JSON: ";
  if (!json_detail_.empty())
    m += json_detail_;
  else
    m += simdjson::error_message(json_error_);
  return m;
}

frame_parser::impl::flow frame_parser::impl::parse_document(std::string_view text) {
  const char* p = buf_.assign(text);
  od::document doc;
  if (auto e = parser_.iterate(p, text.size(), buf_.capacity()).get(doc)) return json_fail(e);
  od::json_type type;
  if (auto e = doc.type().get(type)) return json_fail(e);
  flow f;
  if (type == od::json_type::object) {
    od::object obj;
    if (auto e = doc.get_object().get(obj)) return json_fail(e);
    f = handle_object(doc, obj);
  } else if (type == od::json_type::array) {
    od::array arr;
    if (auto e = doc.get_array().get(arr)) return json_fail(e);
    f = handle_array(arr);
  } else {
    json_detail_ = "a frame must be a JSON object or array";
    return flow::bad_json;
  }
  if (f != flow::ok) return f;
  // On Demand stops after the top-level value; anything left is garbage.
  if (!doc.current_location().error()) {
    json_detail_ = "unexpected content after the JSON value";
    return flow::bad_json;
  }
  return flow::ok;
}

bool frame_parser::impl::validate(const detail::padded_buffer& text) {
  if (!validator_) validator_ = std::make_unique<simdjson::dom::parser>();
  simdjson::dom::element root;
  if (auto e = validator_->parse(text.data(), text.size(), false).get(root)) {
    json_error_ = e;
    json_detail_.clear();
    return false;
  }
  return true;
}

// The frame's own object: a reading, a batch, an OCPP frame or a control
// message. The first key that belongs to one kind decides the kind; keys of
// another kind are then unknown fields. "device" and "meta" belong to both
// readings and batches.
frame_parser::impl::flow frame_parser::impl::handle_object(od::document& doc, od::object obj) {
  using namespace detail;
  reading_draft& d = outer_;
  d.reset();
  const location top{};
  std::uint32_t kind = k_none;  // k_values: reading, k_readings, k_payload: OCPP, k_hello: control
  std::string_view charge_point;
  bool charge_point_ok = false;
  std::uint32_t deferred = k_none;
  std::size_t delivered = 0;
  auto kind_of = [](std::uint32_t key) -> std::uint32_t {
    if (key & (k_seq | k_ts | k_values)) return k_values;
    if (key & k_readings) return k_readings;
    if (key & (k_charge_point_id | k_payload)) return k_payload;
    if (key & (k_hello | k_subscribe | k_unsubscribe)) return k_hello;
    return k_none;
  };

  // Keys of another kind than the first one met, and device/meta in an OCPP
  // frame or a control message, are unknown fields.
  auto key_id = [&](std::string_view key) {
    std::uint32_t id = classify_key(key);
    std::uint32_t key_kind = kind_of(id);
    if (key_kind != k_none) {
      if (kind == k_none) kind = key_kind;
      if (key_kind != kind) id = k_none;
    }
    if ((kind == k_payload || kind == k_hello) && (id & (k_device | k_meta))) id = k_none;
    return id;
  };
  // Keys that are not fields of a reading.
  auto other_field = [&](std::uint32_t id, std::string_view key, od::value& v) {
    flow f = flow::ok;
    switch (id) {
      case k_readings:
        if (d.has_device)
          f = process_readings(v, d.device, delivered);
        else if (!(d.seen & k_device))
          deferred = k_readings;  // device may still come; read them in a second pass
        else
          validate_ = true;  // the device was bad; the readings cannot be stored
        break;
      case k_charge_point_id:
        f = read_device_id(v, d, top, "charge_point_id", charge_point, charge_point_ok);
        break;
      case k_payload:
        if (charge_point_ok)
          f = process_payload(v, charge_point, delivered);
        else if (!(d.seen & k_charge_point_id))
          deferred = k_payload;
        else
          validate_ = true;
        break;
      case k_hello:
      case k_subscribe:
      case k_unsubscribe:
        if (!control_allowed_) {
          d.problems.push_back(shown(key) + " is not allowed in a request body");
          validate_ = true;
        } else if (id == k_hello) {
          f = parse_hello(v, d);
        } else {
          f = parse_patterns(v, id == k_subscribe ? out_->subscribe : out_->unsubscribe,
                             id == k_subscribe ? "subscribe" : "unsubscribe", d);
        }
        break;
      default:
        break;
    }
    return f;
  };
  if (flow f = read_fields(obj, d, top, ~std::uint32_t{0}, key_id, other_field); f != flow::ok)
    return f;

  auto push_all = [&] {
    for (auto& p : d.problems) push_error(error_code::invalid_reading, std::move(p));
    d.problems.clear();
  };

  switch (kind) {
    case k_values:
      if (++readings_seen_ > max_readings_per_frame) return flow::too_large;
      finish_reading(d, d.device, top, true, delivered);
      return flow::ok;
    case k_readings: {
      if (!(d.seen & k_device)) d.problems.push_back("device is missing");
      if (deferred == k_readings && d.has_device) {
        device_copy_.assign(d.device);  // the rewind reuses simdjson's string buffer
        flow f = second_pass(doc, k_readings, device_copy_);
        if (f != flow::ok) return f;
      } else if (deferred) {
        validate_ = true;
      }
      push_all();
      if (delivered > 0 && d.has_meta)
        set_meta(d.device, d.meta);  // inline case; second_pass does its own
      return flow::ok;
    }
    case k_payload: {
      if (!(d.seen & k_charge_point_id)) d.problems.push_back("charge_point_id is missing");
      if (!(d.seen & k_payload)) d.problems.push_back("payload is missing");
      if (d.seen & (k_device | k_meta))
        d.problems.push_back("device and meta do not belong in an OCPP frame");
      if (deferred == k_payload && charge_point_ok) {
        device_copy_.assign(charge_point);
        flow f = second_pass(doc, k_payload, device_copy_);
        if (f != flow::ok) return f;
      } else if (deferred) {
        validate_ = true;
      }
      push_all();
      return flow::ok;
    }
    case k_hello:
      if (d.seen & (k_device | k_meta))
        d.problems.push_back("device and meta do not belong in a control message");
      push_all();
      return flow::ok;
    default:
      // Only "device"/"meta" (a reading without values) or nothing we know.
      if (d.seen & (k_device | k_meta)) {
        d.problems.push_back("values is missing");
        push_error(error_code::invalid_reading, std::move(d.problems.front()));
      } else {
        push_error(error_code::invalid_reading, "unknown message type");
      }
      return flow::ok;
  }
}

// Re-reads the document for the one key that had to wait for the device
// (e.g. "readings" before "device"). Everything else was handled already.
frame_parser::impl::flow frame_parser::impl::second_pass(od::document& doc, std::uint32_t key,
                                                         std::string_view device) {
  doc.rewind();
  od::object obj;
  if (auto e = doc.get_object().get(obj)) return json_fail(e);
  std::size_t delivered = 0;
  bool done = false;
  for (auto field_result : obj) {
    od::field field;
    if (auto e = std::move(field_result).get(field)) return json_fail(e);
    std::string_view k;
    if (auto e = detail::read_key(field, k)) return json_fail(e);
    if (done || detail::classify_key(k) != key) continue;
    done = true;
    flow f = key == detail::k_readings ? process_readings(field.value(), device, delivered)
                                       : process_payload(field.value(), device, delivered);
    if (f != flow::ok) return f;
  }
  if (key == detail::k_readings && delivered > 0 && outer_.has_meta) set_meta(device, outer_.meta);
  return flow::ok;
}

// A top-level array: reading objects, each with its own device.
frame_parser::impl::flow frame_parser::impl::handle_array(od::array arr) {
  std::size_t i = 0, delivered = 0;
  for (auto element : arr) {
    od::value v;
    if (auto e = element.get(v)) return json_fail(e);
    if (flow f = process_reading(v, location{"", i++}, nullptr, delivered); f != flow::ok) return f;
  }
  return flow::ok;
}

// One element of a reading array: of the top-level array (`batch_device`
// null: the reading names its own device) or of a batch's "readings" (the
// batch's device; a device inside is not allowed).
frame_parser::impl::flow frame_parser::impl::process_reading(od::value& v, const location& loc,
                                                             const std::string_view* batch_device,
                                                             std::size_t& delivered) {
  if (++readings_seen_ > max_readings_per_frame) return flow::too_large;
  od::object obj;
  auto e = v.get_object().get(obj);
  if (e == simdjson::INCORRECT_TYPE) {
    validate_ = true;
    push_error(error_code::invalid_reading, where(loc, false) + " is not an object");
    return flow::ok;
  }
  if (e) return json_fail(e);
  inner_.reset();
  bool own_device = batch_device == nullptr;
  if (flow f = parse_reading_fields(obj, inner_, loc, own_device); f != flow::ok) return f;
  finish_reading(inner_, own_device ? inner_.device : *batch_device, loc, own_device, delivered);
  return flow::ok;
}

// ---------------------------------------------------------------------------
// Readings

// "readings[3].values.voltage" (field) or "readings[3]: " (message) prefixes.
std::string frame_parser::impl::where(const location& loc, bool field) const {
  if (!loc.container) return {};
  std::string s = loc.container;
  s += '[';
  s += std::to_string(loc.index);
  s += ']';
  if (field) s += '.';
  return s;
}

// The field loop of a reading: the frame's own object (`loc` is the empty
// location; `key_id` also decides the message kind and `other` takes the keys
// that are not reading fields) or one reading of an array or batch. A key
// whose id is not in `allowed` is an unknown field, or a misplaced device.
template <class KeyId, class Other>
frame_parser::impl::flow frame_parser::impl::read_fields(od::object obj, reading_draft& d,
                                                         const location& loc, std::uint32_t allowed,
                                                         KeyId&& key_id, Other&& other) {
  using namespace detail;
  for (auto field_result : obj) {
    od::field field;
    if (auto e = std::move(field_result).get(field)) return json_fail(e);
    std::string_view key;
    if (auto e = detail::read_key(field, key)) return json_fail(e);
    od::value& v = field.value();
    std::uint32_t id = key_id(key);
    if (!(id & allowed)) {
      std::string msg = where(loc, false);
      if (!msg.empty()) msg += ": ";
      msg += id == k_device ? "device is not allowed inside a batch's readings"
                            : "unknown field " + shown(key);
      d.problems.push_back(std::move(msg));
      validate_ = true;
      continue;
    }
    if (d.seen & id) {
      d.problems.push_back(where(loc, true) + shown(key) + " appears twice");
      validate_ = true;
      continue;
    }
    d.seen |= id;
    flow f = flow::ok;
    switch (id) {
      case k_device:
        f = read_device_id(v, d, loc, "device", d.device, d.has_device);
        break;
      case k_seq:
        f = read_seq(v, d, loc);
        break;
      case k_ts:
        f = read_ts(v, d, loc);
        break;
      case k_values:
        f = read_values(v, d, loc);
        break;
      case k_meta:
        f = read_meta(v, d, loc);
        break;
      default:
        f = other(id, key, v);
        break;
    }
    if (f != flow::ok) return f;
  }
  return flow::ok;
}

frame_parser::impl::flow frame_parser::impl::parse_reading_fields(od::object obj, reading_draft& d,
                                                                  const location& loc,
                                                                  bool device_allowed) {
  using namespace detail;
  std::uint32_t allowed = k_seq | k_ts | k_values | k_meta | (device_allowed ? k_device : k_none);
  return read_fields(
      obj, d, loc, allowed, [](std::string_view key) { return classify_key(key); },
      [](std::uint32_t, std::string_view, od::value&) { return flow::ok; });
}

// A device id: a reading's "device" or an OCPP frame's "charge_point_id".
// Sets `device` and `ok` only when the id is valid.
frame_parser::impl::flow frame_parser::impl::read_device_id(od::value& v, reading_draft& d,
                                                            const location& loc, const char* field,
                                                            std::string_view& device, bool& ok) {
  std::string_view s;
  auto e = v.get_string().get(s);
  if (e == simdjson::INCORRECT_TYPE) {
    validate_ = true;
    d.problems.push_back(where(loc, true) + field + " is not a string");
    return flow::ok;
  }
  if (e) return json_fail(e);
  if (!valid_device_id(s.data(), s.size())) {
    d.problems.push_back(where(loc, true) + field +
                         " is not a valid device id (1-128 characters of A-Za-z0-9:._-)");
    return flow::ok;
  }
  device = s;
  ok = true;
  return flow::ok;
}

// A number that On Demand would not give us as the wanted type: either the
// token is not JSON at all, or it is JSON of the wrong kind or range.
frame_parser::impl::flow frame_parser::impl::number_problem(od::value& v, simdjson::error_code e,
                                                            reading_draft& d, const location& loc,
                                                            std::string_view field,
                                                            bool unsigned_only,
                                                            const char* wrong_kind) {
  if (e != simdjson::INCORRECT_TYPE && e != simdjson::NUMBER_ERROR) return json_fail(e);
  od::json_type type;
  if (v.type().get(type) || type != od::json_type::number) {
    validate_ = true;
    d.problems.push_back(where(loc, true) + std::string(field) + " " + wrong_kind);
    return flow::ok;
  }
  detail::number_shape shape = detail::classify_number(detail::trim_json_ws(v.raw_json_token()));
  if (!shape.valid) return json_fail(simdjson::NUMBER_ERROR);
  // An integer that did not fit is out of range; -1 for seq is the wrong kind.
  bool out_of_range = shape.integer && !(unsigned_only && shape.negative);
  d.problems.push_back(where(loc, true) + std::string(field) + " " +
                       (out_of_range ? "is out of range" : wrong_kind));
  return flow::ok;
}

frame_parser::impl::flow frame_parser::impl::read_seq(od::value& v, reading_draft& d,
                                                      const location& loc) {
  std::uint64_t seq;
  auto e = v.get_uint64().get(seq);
  if (!e) {
    d.seq = seq;
    d.has_seq = true;
    return flow::ok;
  }
  return number_problem(v, e, d, loc, "seq", true, "is not an unsigned integer");
}

std::optional<std::string> frame_parser::impl::check_time(std::int64_t ts) const {
  if (ts < 0) return std::string("is before 1970");
  if (ts > now_ms_ + max_future_ms) return std::string("is more than 7 days in the future");
  return std::nullopt;
}

frame_parser::impl::flow frame_parser::impl::read_ts(od::value& v, reading_draft& d,
                                                     const location& loc) {
  od::json_type type;
  if (auto e = v.type().get(type)) return json_fail(e);
  std::int64_t ts = 0;
  if (type == od::json_type::string) {
    std::string_view s;
    if (auto e = v.get_string().get(s)) return json_fail(e);
    auto parsed = parse_rfc3339(s);
    if (!parsed) {
      d.problems.push_back(where(loc, true) + "ts is not a valid RFC 3339 timestamp");
      return flow::ok;
    }
    ts = *parsed;
  } else if (type == od::json_type::number) {
    auto e = v.get_int64().get(ts);
    if (e) return number_problem(v, e, d, loc, "ts", false, "is not an integer (ms since epoch)");
    if (ts >= 0 && ts < min_ms_ts) {
      d.problems.push_back(where(loc, true) + "ts " + std::to_string(ts) +
                           " looks like seconds: timestamps are milliseconds since the epoch "
                           "(e.g. 1731801600000), or RFC 3339 strings");
      return flow::ok;
    }
  } else {
    validate_ = true;
    d.problems.push_back(where(loc, true) + "ts is not a number or an RFC 3339 string");
    return flow::ok;
  }
  if (auto problem = check_time(ts)) {
    d.problems.push_back(where(loc, true) + "ts " + *problem);
    return flow::ok;
  }
  d.ts = ts;
  d.has_ts = true;
  return flow::ok;
}

frame_parser::impl::flow frame_parser::impl::read_values(od::value& v, reading_draft& d,
                                                         const location& loc) {
  od::object obj;
  auto e = v.get_object().get(obj);
  if (e == simdjson::INCORRECT_TYPE) {
    validate_ = true;
    d.problems.push_back(where(loc, true) + "values is not an object");
    return flow::ok;
  }
  if (e) return json_fail(e);
  bool reported = d.bad();  // one error per reading is enough; keep reading for JSON and seq
  std::size_t n = 0;
  for (auto field_result : obj) {
    od::field field;
    if (auto fe = std::move(field_result).get(field)) return json_fail(fe);
    std::string_view name;
    if (auto fe = detail::read_key(field, name)) return json_fail(fe);
    od::value& value = field.value();
    ++n;
    double x;
    if (auto ve = value.get_double().get(x)) {
      if (ve == simdjson::NUMBER_ERROR) {
        // Either malformed (invalid JSON) or valid JSON beyond double range.
        auto shape = detail::classify_number(detail::trim_json_ws(value.raw_json_token()));
        if (!shape.valid) return json_fail(ve);
        if (!reported)
          d.problems.push_back(where(loc, true) + "values." + shown(name) +
                               " is not a finite number");
      } else if (ve == simdjson::INCORRECT_TYPE) {
        validate_ = true;
        if (!reported)
          d.problems.push_back(where(loc, true) + "values." + shown(name) + " is not a number");
      } else {
        return json_fail(ve);
      }
      reported = true;
      continue;
    }
    if (reported) continue;
    if (!valid_metric_name(name.data(), name.size())) {
      d.problems.push_back(where(loc, true) + "values." + shown(name) +
                           " is not a valid metric name (1-64 characters of A-Za-z0-9_.)");
      reported = true;
      continue;
    }
    if (n > max_metrics_per_reading) {
      d.problems.push_back(where(loc, true) + "values has more than " +
                           std::to_string(max_metrics_per_reading) + " metrics");
      reported = true;
      continue;
    }
    d.names.push_back(name);
    d.values.push_back(x);
  }
  if (!reported) {
    if (n == 0) {
      d.problems.push_back(where(loc, true) + "values is empty");
    } else if (std::size_t dup = find_duplicate(d.names, scratch_index_);
               dup != std::string_view::npos) {
      d.problems.push_back(where(loc, true) + "values." + shown(d.names[dup]) + " appears twice");
    }
  }
  return flow::ok;
}

frame_parser::impl::flow frame_parser::impl::read_meta(od::value& v, reading_draft& d,
                                                       const location& loc) {
  od::object obj;
  auto e = v.get_object().get(obj);
  if (e == simdjson::INCORRECT_TYPE) {
    validate_ = true;
    d.problems.push_back(where(loc, true) + "meta is not an object");
    return flow::ok;
  }
  if (e) return json_fail(e);
  std::string& m = d.meta;
  m.assign("{");
  bool bad = false;
  for (auto field_result : obj) {
    od::field field;
    if (auto fe = std::move(field_result).get(field)) return json_fail(fe);
    std::string_view key;
    if (auto fe = detail::read_key(field, key)) return json_fail(fe);
    od::value& value = field.value();
    od::json_type type;
    if (auto fe = value.type().get(type)) return json_fail(fe);
    if (bad) {
      validate_ = true;
      continue;
    }
    if (type == od::json_type::string) {
      std::string_view s;
      if (auto fe = value.get_string().get(s)) return json_fail(fe);
      if (m.size() > 1) m += ',';
      append_json_string(m, key);
      m += ':';
      append_json_string(m, s);
    } else if (type == od::json_type::number) {
      std::string_view token = detail::trim_json_ws(value.raw_json_token());
      double x;
      if (auto fe = value.get_double().get(x)) {
        if (fe != simdjson::NUMBER_ERROR || !detail::classify_number(token).valid)
          return json_fail(fe);
        d.problems.push_back(where(loc, true) + "meta." + shown(key) + " is not a finite number");
        bad = true;
        continue;
      }
      if (m.size() > 1) m += ',';
      append_json_string(m, key);
      m += ':';
      m.append(token);  // verbatim: "1.50" stays "1.50"
    } else {
      validate_ = true;
      d.problems.push_back(where(loc, true) + "meta." + shown(key) + " is not a string or number");
      bad = true;
      continue;
    }
    if (m.size() + 1 > max_meta_bytes) {  // + 1: the closing brace still to come
      d.problems.push_back(where(loc, true) + "meta is larger than " +
                           std::to_string(max_meta_bytes) + " bytes");
      bad = true;
    }
  }
  m += '}';
  d.has_meta = !bad;
  return flow::ok;
}

void frame_parser::impl::finish_reading(reading_draft& d, std::string_view device,
                                        const location& loc, bool device_required,
                                        std::size_t& delivered) {
  if (!d.bad() && !(d.seen & detail::k_values))
    d.problems.push_back(where(loc, true) + "values is missing");
  if (!d.bad() && device_required && !(d.seen & detail::k_device))
    d.problems.push_back(where(loc, true) + "device is missing");
  std::optional<std::uint64_t> seq;
  if (d.has_seq) seq = d.seq;
  if (d.bad()) {
    push_error(error_code::invalid_reading, std::move(d.problems.front()), seq);
    return;
  }
  if (!commit(device, d.names.data(), d.values.data(), d.names.size(), d.has_ts ? d.ts : now_ms_,
              d.has_seq, d.seq, d.has_meta ? &d.meta : nullptr)) {
    push_error(error_code::too_large,
               where(loc, false) + (loc.container ? ": " : "") + too_many_metrics(device), seq);
    return;
  }
  ++delivered;
}

// "readings" of a batch object: each element is a reading without device.
frame_parser::impl::flow frame_parser::impl::process_readings(od::value& v, std::string_view device,
                                                              std::size_t& delivered) {
  od::array arr;
  auto e = v.get_array().get(arr);
  if (e == simdjson::INCORRECT_TYPE) {
    validate_ = true;
    outer_.problems.push_back("readings is not an array");
    return flow::ok;
  }
  if (e) return json_fail(e);
  std::size_t i = 0;
  for (auto element : arr) {
    od::value ev;
    if (auto ee = element.get(ev)) return json_fail(ee);
    if (flow f = process_reading(ev, location{"readings", i++}, &device, delivered); f != flow::ok)
      return f;
  }
  if (i == 0) outer_.problems.push_back("readings is empty");
  return flow::ok;
}

// ---------------------------------------------------------------------------
// Control messages

frame_parser::impl::flow frame_parser::impl::parse_hello(od::value& v, reading_draft& d) {
  od::object obj;
  auto e = v.get_object().get(obj);
  if (e == simdjson::INCORRECT_TYPE) {
    validate_ = true;
    d.problems.push_back("hello is not an object");
    return flow::ok;
  }
  if (e) return json_fail(e);
  hello_msg hello;
  bool ok = true, has_device = false, has_token = false;
  for (auto field_result : obj) {
    od::field field;
    if (auto fe = std::move(field_result).get(field)) return json_fail(fe);
    std::string_view key;
    if (auto fe = detail::read_key(field, key)) return json_fail(fe);
    od::value& value = field.value();
    bool is_device = key == "device", is_token = key == "token";
    if (!is_device && !is_token) {
      d.problems.push_back("hello: unknown field " + shown(key));
      validate_ = true;
      ok = false;
      continue;
    }
    if ((is_device && has_device) || (is_token && has_token)) {
      d.problems.push_back("hello." + std::string(key) + " appears twice");
      validate_ = true;
      ok = false;
      continue;
    }
    (is_device ? has_device : has_token) = true;
    std::string_view s;
    auto se = value.get_string().get(s);
    if (se == simdjson::INCORRECT_TYPE) {
      validate_ = true;
      d.problems.push_back("hello." + std::string(key) + " is not a string");
      ok = false;
      continue;
    }
    if (se) return json_fail(se);
    if (is_device) {
      if (!valid_device_id(s.data(), s.size())) {
        d.problems.push_back(
            "hello.device is not a valid device id (1-128 characters of A-Za-z0-9:._-)");
        ok = false;
        continue;
      }
      hello.device.assign(s);
    } else {
      hello.token.assign(s);
    }
  }
  if (!has_device && !has_token) {  // a reader's hello may carry only its token
    d.problems.push_back("hello.device is missing");
    ok = false;
  }
  if (ok) out_->hello = std::move(hello);
  return flow::ok;
}

frame_parser::impl::flow frame_parser::impl::parse_patterns(od::value& v,
                                                            std::vector<std::string>& dst,
                                                            const char* name, reading_draft& d) {
  od::array arr;
  auto e = v.get_array().get(arr);
  if (e == simdjson::INCORRECT_TYPE) {
    validate_ = true;
    d.problems.push_back(std::string(name) + " is not an array");
    return flow::ok;
  }
  if (e) return json_fail(e);
  std::size_t i = 0;
  for (auto element : arr) {
    od::value ev;
    if (auto ee = element.get(ev)) return json_fail(ee);
    std::string_view s;
    auto se = ev.get_string().get(s);
    std::string at = std::string(name) + "[" + std::to_string(i++) + "]";
    if (se == simdjson::INCORRECT_TYPE) {
      validate_ = true;
      d.problems.push_back(at + " is not a string");
      continue;
    }
    if (se) return json_fail(se);
    if (!valid_pattern(s)) {
      d.problems.push_back(
          at + " is not a valid device id or prefix (A-Za-z0-9:._- with an optional trailing *)");
      continue;
    }
    dst.emplace_back(s);
  }
  return flow::ok;
}

// ---------------------------------------------------------------------------
// Output

std::uint32_t frame_parser::impl::batch_index(std::string_view device) {
  auto& batches = out_->batches;
  if (last_batch_ < batches.size() && batches[last_batch_].device == device) return last_batch_;
  std::uint64_t h = detail::hash_text(device);
  if (auto* e = devices_.find(h, [&](std::uint32_t a, std::uint32_t) {
        return a < batches.size() && batches[a].device == device;
      }))
    return last_batch_ = e->a;
  auto b = static_cast<std::uint32_t>(batches.size());
  if (spare_.empty()) {
    batches.emplace_back();
  } else {
    batches.push_back(std::move(spare_.back()));
    spare_.pop_back();
  }
  batches.back().device.assign(device);
  devices_.insert(h, b, 0);
  return last_batch_ = b;
}

// Metric names of a batch in order of first use. Readings of one device
// usually list the same metrics in the same order, so the guess (the slot
// after the previous match) nearly always hits without hashing.
int frame_parser::impl::metric_index(std::uint32_t b, reading_batch& batch, std::string_view name,
                                     std::size_t& guess) {
  auto& metrics = batch.metrics;
  if (guess < metrics.size() && metrics[guess] == name) return static_cast<int>(guess++);
  std::uint64_t h = detail::hash_text(name, b);
  if (auto* e = metrics_.find(h, [&](std::uint32_t a, std::uint32_t m) {
        return a == b && m < metrics.size() && metrics[m] == name;
      })) {
    guess = e->b + 1;
    return static_cast<int>(e->b);
  }
  std::size_t m = metrics.size();
  if (m > max_metric_index) return -1;
  metrics.emplace_back(name);
  metrics_.insert(h, b, static_cast<std::uint32_t>(m));
  guess = m + 1;
  return static_cast<int>(m);
}

bool frame_parser::impl::commit(std::string_view device, const std::string_view* names,
                                const double* values, std::size_t n, std::int64_t ts, bool has_seq,
                                std::uint64_t seq, const std::string* meta) {
  std::uint32_t b = batch_index(device);
  note_touch(b);
  reading_batch& batch = out_->batches[b];
  std::size_t first = batch.samples.size(), metrics_before = batch.metrics.size();
  std::size_t guess = batch.rows.empty() ? 0 : batch.samples[batch.rows.back().first].metric;
  for (std::size_t i = 0; i < n; ++i) {
    int m = metric_index(b, batch, names[i], guess);
    if (m < 0) {
      batch.samples.resize(first);
      batch.metrics.resize(metrics_before);
      return false;
    }
    batch.samples.push_back(sample{static_cast<std::uint16_t>(m), values[i]});
  }
  batch.rows.push_back(reading_row{ts, has_seq ? seq : 0, static_cast<std::uint32_t>(first),
                                   static_cast<std::uint16_t>(n), has_seq});
  if (meta) batch.meta.assign(*meta);
  return true;
}

// commit() refused a reading: its device ran out of metric indices.
std::string frame_parser::impl::too_many_metrics(std::string_view device) const {
  return "device " + shown(device) + " has more than " + std::to_string(max_metric_index + 1) +
         " distinct metric names in one frame";
}

void frame_parser::impl::set_meta(std::string_view device, const std::string& meta) {
  std::uint32_t b = batch_index(device);
  note_touch(b);
  out_->batches[b].meta.assign(meta);
}

// Saves a batch's sizes the first time the current document touches it, if
// the batch existed before the document (newer ones are simply dropped).
void frame_parser::impl::note_touch(std::uint32_t b) {
  if (b >= mark_.batches) return;
  if (touched_.size() <= b) touched_.resize(std::max<std::size_t>(b + 1, out_->batches.size()), 0);
  if (touched_[b] == doc_id_) return;
  touched_[b] = doc_id_;
  const auto& batch = out_->batches[b];
  undo_.push_back(
      undo_entry{b, batch.rows.size(), batch.samples.size(), batch.metrics.size(), batch.meta});
}

void frame_parser::impl::rollback() {
  auto& out = *out_;
  for (auto& u : undo_) {
    auto& batch = out.batches[u.batch];
    batch.rows.resize(u.rows);
    batch.samples.resize(u.samples);
    batch.metrics.resize(u.metrics);
    batch.meta = std::move(u.meta);
  }
  undo_.clear();
  while (out.batches.size() > mark_.batches) {
    recycle(out.batches.back());
    out.batches.pop_back();
  }
  out.errors.resize(mark_.errors);
  out.subscribe.resize(mark_.subscribe);
  out.unsubscribe.resize(mark_.unsubscribe);
  if (!mark_.hello) out.hello.reset();
  readings_seen_ = mark_.readings_seen;
  last_batch_ = UINT32_MAX;
}

void frame_parser::impl::recycle(reading_batch& b) {
  if (spare_.size() >= max_spare_batches || b.samples.capacity() > max_spare_samples) return;
  b.clear();
  spare_.push_back(std::move(b));
}

void frame_parser::impl::push_error(error_code code, std::string message,
                                    std::optional<std::uint64_t> seq) {
  if (line_ > 0) message.insert(0, "line " + std::to_string(line_) + ": ");
  out_->errors.push_back(wire_error{code, std::move(message), seq});
}

}  // namespace pulse::wire
