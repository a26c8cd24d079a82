// OCPP 1.6 MeterValues frames -> readings (DESIGN.md "Wire protocol").
//
// {"charge_point_id":"cp1","payload":{"connectorId":1,"transactionId":7,
//   "meterValue":[{"timestamp":"...","sampledValue":[{"value":"1.5",
//   "measurand":"Voltage","phase":"L1-N","unit":"V",...}]}]}}
//
// Each meterValue is a reading of the charge point at its timestamp; each
// sampledValue a metric "<measurand>[.<phase>]". A metric that repeats within
// one meterValue (same measurand and phase, e.g. another context or
// location) goes into an extra reading with the same timestamp, and so does
// anything past 64 metrics: every sampled value is stored once. Error paths
// are relative to the payload, e.g. "meterValue[0].sampledValue[2].value".

#include <algorithm>
#include <string>

#include "wire/codec.hpp"
#include "wire/parser_impl.hpp"

namespace pulse::wire {

using detail::flow;
using detail::shown;

namespace {

// OCPP 1.6: "Energy.Active.Import.Register" when measurand is absent.
constexpr std::string_view default_measurand = "Energy.Active.Import.Register";

std::string mv_path(std::size_t i) { return "meterValue[" + std::to_string(i) + "]"; }
std::string sv_path(std::size_t i, std::size_t j) {
  return mv_path(i) + ".sampledValue[" + std::to_string(j) + "]";
}

bool metric_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '.';
}

}  // namespace

// "payload" is an object, or a string holding the object's JSON text (as
// some gateways store and forward OCPP messages).
frame_parser::impl::flow frame_parser::impl::process_payload(od::value& v, std::string_view device,
                                                             std::size_t& delivered) {
  od::json_type type;
  if (auto e = v.type().get(type)) return json_fail(e);
  if (type == od::json_type::object) {
    od::object obj;
    if (auto e = v.get_object().get(obj)) return json_fail(e);
    return process_ocpp_object(obj, device, delivered);
  }
  if (type != od::json_type::string) {
    validate_ = true;
    outer_.problems.push_back("payload is not an object or a JSON string");
    return flow::ok;
  }
  std::string_view text;
  if (auto e = v.get_string().get(text)) return json_fail(e);
  const char* p = payload_buf_.assign(text);
  od::document doc;
  auto e = payload_parser_.iterate(p, text.size(), payload_buf_.capacity()).get(doc);
  od::json_type inner_type{};
  if (!e) e = doc.type().get(inner_type);
  if (e) {
    json_detail_ = std::string("payload string: ") + simdjson::error_message(e);
    return flow::bad_json;
  }
  if (inner_type != od::json_type::object) {
    outer_.problems.push_back("payload string does not hold a JSON object");
    return flow::ok;
  }
  od::object obj;
  if (auto oe = doc.get_object().get(obj)) {
    json_detail_ = std::string("payload string: ") + simdjson::error_message(oe);
    return flow::bad_json;
  }
  // The inner text gets its own validation pass if anything in it was skipped.
  bool outer_validate = validate_;
  validate_ = false;
  flow f = process_ocpp_object(obj, device, delivered);
  if (f == flow::ok && !doc.current_location().error()) {
    json_detail_ = "payload string: unexpected content after the JSON value";
    f = flow::bad_json;
  }
  if (f == flow::ok && validate_ && !validate(payload_buf_)) {
    json_detail_ = std::string("payload string: ") + simdjson::error_message(json_error_);
    f = flow::bad_json;
  }
  if (f == flow::bad_json && json_detail_.empty())
    json_detail_ = std::string("payload string: ") + simdjson::error_message(json_error_);
  validate_ = outer_validate;
  return f;
}

frame_parser::impl::flow frame_parser::impl::process_ocpp_object(od::object obj,
                                                                 std::string_view device,
                                                                 std::size_t& delivered) {
  connector_.clear();
  transaction_.clear();
  units_.clear();
  unit_arena_.clear();
  units_index_.clear();
  std::size_t before = delivered, meter_values = 0;
  bool seen_connector = false, seen_transaction = false, seen_meter_value = false;
  for (auto field_result : obj) {
    od::field field;
    if (auto e = std::move(field_result).get(field)) return json_fail(e);
    std::string_view key;
    if (auto e = detail::read_key(field, key)) return json_fail(e);
    od::value& v = field.value();
    bool is_connector = key == "connectorId", is_transaction = key == "transactionId",
         is_meter_value = key == "meterValue";
    if (!is_connector && !is_transaction && !is_meter_value) {
      push_error(error_code::invalid_reading, "unknown field " + shown(key) + " in payload");
      validate_ = true;
      continue;
    }
    bool& seen = is_connector     ? seen_connector
                 : is_transaction ? seen_transaction
                                  : seen_meter_value;
    if (seen) {
      push_error(error_code::invalid_reading, std::string(key) + " appears twice");
      validate_ = true;
      continue;
    }
    seen = true;
    if (is_connector) {
      std::uint64_t id;
      auto e = v.get_uint64().get(id);
      if (e == simdjson::INCORRECT_TYPE || e == simdjson::NUMBER_ERROR) {
        validate_ = true;
        push_error(error_code::invalid_reading, "connectorId is not a non-negative integer");
        continue;
      }
      if (e) return json_fail(e);
      detail::append_uint(connector_, id);
    } else if (is_transaction) {
      std::int64_t id;
      auto e = v.get_int64().get(id);
      if (e == simdjson::INCORRECT_TYPE || e == simdjson::NUMBER_ERROR) {
        validate_ = true;
        push_error(error_code::invalid_reading, "transactionId is not an integer");
        continue;
      }
      if (e) return json_fail(e);
      detail::append_int(transaction_, id);
    } else {
      od::array arr;
      auto e = v.get_array().get(arr);
      if (e == simdjson::INCORRECT_TYPE) {
        validate_ = true;
        push_error(error_code::invalid_reading, "meterValue is not an array");
        continue;
      }
      if (e) return json_fail(e);
      for (auto element : arr) {
        od::value ev;
        if (auto ee = element.get(ev)) return json_fail(ee);
        if (flow f = process_meter_value(ev, meter_values++, device, delivered); f != flow::ok)
          return f;
      }
      if (meter_values == 0) push_error(error_code::invalid_reading, "meterValue is empty");
    }
  }
  if (!seen_meter_value) push_error(error_code::invalid_reading, "meterValue is missing");
  if (delivered > before) apply_ocpp_meta(device);
  return flow::ok;
}

frame_parser::impl::flow frame_parser::impl::process_meter_value(od::value& v, std::size_t i,
                                                                 std::string_view device,
                                                                 std::size_t& delivered) {
  if (++readings_seen_ > max_readings_per_frame) return flow::too_large;
  od::object obj;
  auto e = v.get_object().get(obj);
  if (e == simdjson::INCORRECT_TYPE) {
    validate_ = true;
    push_error(error_code::invalid_reading, mv_path(i) + " is not an object");
    return flow::ok;
  }
  if (e) return json_fail(e);
  samples_.clear();
  arena_.clear();
  std::optional<std::int64_t> ts;
  std::string problem;  // first problem that drops the whole meterValue
  bool seen_ts = false, seen_sv = false;
  std::size_t sampled = 0;
  for (auto field_result : obj) {
    od::field field;
    if (auto fe = std::move(field_result).get(field)) return json_fail(fe);
    std::string_view key;
    if (auto fe = detail::read_key(field, key)) return json_fail(fe);
    od::value& value = field.value();
    bool is_ts = key == "timestamp", is_sv = key == "sampledValue";
    if (!is_ts && !is_sv) {
      validate_ = true;
      if (problem.empty()) problem = ": unknown field " + shown(key);
      continue;
    }
    if ((is_ts && seen_ts) || (is_sv && seen_sv)) {
      validate_ = true;
      if (problem.empty()) problem = "." + std::string(key) + " appears twice";
      continue;
    }
    (is_ts ? seen_ts : seen_sv) = true;
    if (is_ts) {
      std::string_view s;
      auto se = value.get_string().get(s);
      if (se == simdjson::INCORRECT_TYPE) {
        validate_ = true;
        if (problem.empty()) problem = ".timestamp is not a string";
        continue;
      }
      if (se) return json_fail(se);
      ts = parse_rfc3339(s);
      if (!ts) {
        if (problem.empty()) problem = ".timestamp is not a valid RFC 3339 timestamp";
      } else if (auto range = check_time(*ts)) {
        if (problem.empty()) problem = ".timestamp " + *range;
      }
      continue;
    }
    od::array arr;
    auto ae = value.get_array().get(arr);
    if (ae == simdjson::INCORRECT_TYPE) {
      validate_ = true;
      if (problem.empty()) problem = ".sampledValue is not an array";
      continue;
    }
    if (ae) return json_fail(ae);
    for (auto element : arr) {
      od::value ev;
      if (auto ee = element.get(ev)) return json_fail(ee);
      if (flow f = process_sampled_value(ev, i, sampled++); f != flow::ok) return f;
    }
  }
  if (problem.empty()) {
    if (!seen_ts)
      problem = ".timestamp is missing";
    else if (!seen_sv)
      problem = ".sampledValue is missing";
    else if (sampled == 0)
      problem = ".sampledValue is empty";
  }
  if (!problem.empty()) {
    // Name how many good sampled values go down with it: nothing silently.
    std::string msg = mv_path(i) + problem;
    if (!samples_.empty())
      msg += " (" + std::to_string(samples_.size()) + " sampled values not stored)";
    push_error(error_code::invalid_reading, std::move(msg));
    return flow::ok;
  }
  if (samples_.empty()) return flow::ok;  // every sampled value had its own error
  return commit_meter_value(*ts, device, delivered);
}

frame_parser::impl::flow frame_parser::impl::process_sampled_value(od::value& v, std::size_t i,
                                                                   std::size_t j) {
  od::object obj;
  auto e = v.get_object().get(obj);
  if (e == simdjson::INCORRECT_TYPE) {
    validate_ = true;
    push_error(error_code::invalid_reading, sv_path(i, j) + " is not an object");
    return flow::ok;
  }
  if (e) return json_fail(e);
  enum : unsigned {
    f_value = 1,
    f_measurand = 2,
    f_phase = 4,
    f_unit = 8,
    f_context = 16,
    f_format = 32,
    f_location = 64
  };
  unsigned seen = 0;
  std::string problem;  // ".value is not a number" or ": unknown field x"
  double value = 0;
  std::string_view measurand = default_measurand, phase, unit;
  for (auto field_result : obj) {
    od::field field;
    if (auto fe = std::move(field_result).get(field)) return json_fail(fe);
    std::string_view key;
    if (auto fe = detail::read_key(field, key)) return json_fail(fe);
    od::value& fv = field.value();
    unsigned bit = key == "value"       ? f_value
                   : key == "measurand" ? f_measurand
                   : key == "phase"     ? f_phase
                   : key == "unit"      ? f_unit
                   : key == "context"   ? f_context
                   : key == "format"    ? f_format
                   : key == "location"  ? f_location
                                        : 0u;
    if (bit == 0 || (seen & bit)) {
      validate_ = true;
      if (problem.empty())
        problem = bit ? "." + std::string(key) + " appears twice" : ": unknown field " + shown(key);
      continue;
    }
    seen |= bit;
    od::json_type type;
    if (auto te = fv.type().get(type)) return json_fail(te);
    if (bit == f_value && type == od::json_type::number) {
      auto ve = fv.get_double().get(value);
      if (ve == simdjson::NUMBER_ERROR &&
          detail::classify_number(detail::trim_json_ws(fv.raw_json_token())).valid) {
        if (problem.empty()) problem = ".value is not a finite number";
      } else if (ve) {
        return json_fail(ve);
      }
      continue;
    }
    if (type != od::json_type::string) {
      validate_ = true;
      if (problem.empty())
        problem =
            "." + std::string(key) + (bit == f_value ? " is not a number" : " is not a string");
      continue;
    }
    std::string_view s;
    if (auto se = fv.get_string().get(s)) return json_fail(se);
    switch (bit) {
      case f_value:
        if (auto parsed = detail::parse_decimal(s))
          value = *parsed;
        else if (problem.empty())
          problem = ".value is not a number";
        break;
      case f_measurand:
        measurand = s;
        break;
      case f_phase:
        phase = s;
        break;
      case f_unit:
        unit = s;
        break;
      default:
        break;  // context, format, location: valid, not stored
    }
  }
  if (problem.empty() && !(seen & f_value)) problem = ".value is missing";
  if (problem.empty() && !valid_metric_name(measurand.data(), measurand.size()))
    problem = ".measurand is not a valid metric name (1-64 characters of A-Za-z0-9_.)";
  std::size_t name_len = measurand.size() + (phase.empty() ? 0 : 1 + phase.size());
  if (problem.empty() && name_len > max_metric_name_len)
    problem = ": metric name " + shown(std::string(measurand) + "." + std::string(phase)) +
              " is longer than " + std::to_string(max_metric_name_len) + " characters";
  if (!problem.empty()) {
    push_error(error_code::invalid_reading, sv_path(i, j) + problem);
    return flow::ok;
  }
  auto off = static_cast<std::uint32_t>(arena_.size());
  arena_.append(measurand);
  if (!phase.empty()) {
    // Phases such as "L1-N" hold characters metric names do not allow.
    arena_.push_back('.');
    for (char c : phase) arena_.push_back(metric_char(c) ? c : '_');
  }
  samples_.push_back(
      ocpp_sample{off, static_cast<std::uint32_t>(name_len), value, unit, (seen & f_unit) != 0});
  return flow::ok;
}

// Spreads a meterValue's samples over readings: the k-th occurrence of a
// metric name goes to reading k, and a reading never holds more than 64.
frame_parser::impl::flow frame_parser::impl::commit_meter_value(std::int64_t ts,
                                                                std::string_view device,
                                                                std::size_t& delivered) {
  std::size_t n = samples_.size();
  auto name = [&](std::size_t k) {
    return std::string_view(arena_.data() + samples_[k].name_off, samples_[k].name_len);
  };
  occ_.assign(n, 0);
  if (n <= 16) {
    for (std::size_t k = 1; k < n; ++k)
      for (std::size_t j = 0; j < k; ++j)
        if (name(j) == name(k)) ++occ_[k];
  } else {
    scratch_index_.clear();
    for (std::size_t k = 0; k < n; ++k) {
      std::uint64_t h = detail::hash_text(name(k));
      auto nk = name(k);
      if (auto* e =
              scratch_index_.find(h, [&](std::uint32_t a, std::uint32_t) { return name(a) == nk; }))
        occ_[k] = ++e->b;
      else
        scratch_index_.insert(h, static_cast<std::uint32_t>(k), 0);
    }
  }
  // Slot assignment; slot_start_ counts members per slot first.
  slot_of_.assign(n, 0);
  slot_start_.clear();
  std::size_t open_from = 0;  // slots below this are full
  bool any_moved = false;     // once a sample skips a slot, slots must be searched
  // Samples only move past their occurrence slot when slots fill up, which
  // needs more than 64 samples; only then is slot membership tracked.
  bool track = n > max_metrics_per_reading;
  if (track) slot_index_.clear();
  for (std::size_t k = 0; k < n; ++k) {
    std::size_t s = std::max<std::size_t>(occ_[k], open_from);
    auto nk = name(k);
    for (;; ++s) {
      if (s >= slot_start_.size()) slot_start_.resize(s + 1, 0);
      if (slot_start_[s] >= max_metrics_per_reading) continue;
      if (!any_moved && s == occ_[k]) break;  // earlier same names sit in lower slots
      std::uint64_t hs = detail::hash_text(nk, static_cast<std::uint32_t>(s));
      if (!slot_index_.find(
              hs, [&](std::uint32_t a, std::uint32_t b) { return b == s && name(a) == nk; }))
        break;
    }
    if (s != occ_[k]) any_moved = true;
    slot_of_[k] = static_cast<std::uint32_t>(s);
    ++slot_start_[s];
    if (track)
      slot_index_.insert(detail::hash_text(nk, static_cast<std::uint32_t>(s)),
                         static_cast<std::uint32_t>(k), static_cast<std::uint32_t>(s));
    while (open_from < slot_start_.size() && slot_start_[open_from] >= max_metrics_per_reading)
      ++open_from;
  }
  // Counting sort of sample indices by slot, stable in input order.
  std::size_t slots = slot_start_.size();
  std::size_t acc = 0;
  for (std::size_t s = 0; s < slots; ++s) {
    std::size_t c = slot_start_[s];
    slot_start_[s] = static_cast<std::uint32_t>(acc);
    acc += c;
  }
  slot_start_.push_back(static_cast<std::uint32_t>(acc));
  order_.assign(n, 0);
  {
    std::vector<std::uint32_t>& fill = occ_;  // reuse as per-slot cursor
    fill.assign(slots, 0);
    for (std::size_t k = 0; k < n; ++k) {
      std::size_t s = slot_of_[k];
      order_[slot_start_[s] + fill[s]++] = static_cast<std::uint32_t>(k);
    }
  }
  for (std::size_t s = 0; s < slots; ++s) {
    if (s > 0 && ++readings_seen_ > max_readings_per_frame) return flow::too_large;
    slot_names_.clear();
    slot_values_.clear();
    for (std::size_t p = slot_start_[s]; p < slot_start_[s + 1]; ++p) {
      slot_names_.push_back(name(order_[p]));
      slot_values_.push_back(samples_[order_[p]].value);
    }
    if (slot_names_.empty()) continue;
    if (!commit(device, slot_names_.data(), slot_values_.data(), slot_names_.size(), ts, false, 0,
                nullptr)) {
      push_error(error_code::too_large, too_many_metrics(device));
      continue;
    }
    ++delivered;
    for (std::size_t p = slot_start_[s]; p < slot_start_[s + 1]; ++p) {
      const auto& smp = samples_[order_[p]];
      if (smp.has_unit) remember_unit(name(order_[p]), smp.unit);
    }
  }
  return flow::ok;
}

// Units per metric for the batch's meta; the latest unit of a name wins.
void frame_parser::impl::remember_unit(std::string_view name, std::string_view unit) {
  std::uint64_t h = detail::hash_text(name);
  auto entry_name = [&](const unit_entry& u) {
    return std::string_view(unit_arena_.data() + u.name_off, u.name_len);
  };
  auto entry_unit = [&](const unit_entry& u) {
    return std::string_view(unit_arena_.data() + u.unit_off, u.unit_len);
  };
  if (auto* e = units_index_.find(
          h, [&](std::uint32_t a, std::uint32_t) { return entry_name(units_[a]) == name; })) {
    unit_entry& u = units_[e->a];
    if (entry_unit(u) != unit) {
      u.unit_off = static_cast<std::uint32_t>(unit_arena_.size());
      u.unit_len = static_cast<std::uint32_t>(unit.size());
      unit_arena_.append(unit);
    }
    return;
  }
  unit_entry u;
  u.name_off = static_cast<std::uint32_t>(unit_arena_.size());
  u.name_len = static_cast<std::uint32_t>(name.size());
  unit_arena_.append(name);
  u.unit_off = static_cast<std::uint32_t>(unit_arena_.size());
  u.unit_len = static_cast<std::uint32_t>(unit.size());
  unit_arena_.append(unit);
  units_index_.insert(h, static_cast<std::uint32_t>(units_.size()), 0);
  units_.push_back(u);
}

// {"connectorId":1,"transactionId":76178,"unit.Energy.Active.Import.Register":"Wh"}
void frame_parser::impl::apply_ocpp_meta(std::string_view device) {
  if (connector_.empty() && transaction_.empty() && units_.empty()) return;
  std::string& m = outer_.meta;  // scratch; outer_ is done with meta in OCPP frames
  m.assign("{");
  if (!connector_.empty()) {
    m.append("\"connectorId\":");
    m.append(connector_);
  }
  if (!transaction_.empty()) {
    if (m.size() > 1) m += ',';
    m.append("\"transactionId\":");
    m.append(transaction_);
  }
  for (const auto& u : units_) {
    if (m.size() > 1) m += ',';
    std::string key = "unit.";
    key.append(unit_arena_, u.name_off, u.name_len);
    append_json_string(m, key);
    m += ':';
    append_json_string(m, std::string_view(unit_arena_.data() + u.unit_off, u.unit_len));
  }
  m += '}';
  // The same cap as a reading's meta: units are client strings of any length.
  // Reported, not silently cut; the readings are kept.
  if (m.size() > max_meta_bytes) {
    push_error(error_code::invalid_reading,
               "meta is larger than " + std::to_string(max_meta_bytes) +
                   " bytes (connectorId, transactionId and units not stored)");
    return;
  }
  set_meta(device, m);
}

}  // namespace pulse::wire
