#pragma once
// frame_parser's private state, shared by frame_parser.cpp (frames, readings,
// batches, control messages, NDJSON) and ocpp.cpp (OCPP MeterValues).
//
// Parsing model: simdjson On Demand walks the frame once; every value is
// either parsed exactly or skipped. Problems with a reading are recorded and
// parsing goes on, so one bad reading never hides the others. A value that is
// skipped is not grammar-checked by On Demand, so skipping sets `validate_`
// and the document is then checked once more with simdjson's DOM parser: a
// frame that is not valid JSON always ends as exactly one invalid_json error,
// whichever part of it is broken.

#include <simdjson.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "wire/codec.hpp"
#include "wire/detail.hpp"

namespace pulse::wire {

namespace od = simdjson::ondemand;
static_assert(detail::input_padding >= simdjson::SIMDJSON_PADDING,
              "padded_buffer must satisfy simdjson");

namespace detail {

// How parsing of a document ended. Problems with single readings are not a
// flow: they become wire_errors and parsing continues.
enum class flow { ok, bad_json, too_large };

// Keys of the top-level message and of readings, one bit each so duplicates
// and the message kind are cheap to track.
enum key_bit : std::uint32_t {
  k_none = 0,
  k_device = 1u << 0,
  k_seq = 1u << 1,
  k_ts = 1u << 2,
  k_values = 1u << 3,
  k_meta = 1u << 4,
  k_readings = 1u << 5,
  k_hello = 1u << 6,
  k_subscribe = 1u << 7,
  k_unsubscribe = 1u << 8,
  k_charge_point_id = 1u << 9,
  k_payload = 1u << 10,
};
inline std::uint32_t classify_key(std::string_view k) {
  switch (k.size()) {
    case 2:
      return k == "ts" ? k_ts : k_none;
    case 3:
      return k == "seq" ? k_seq : k_none;
    case 4:
      return k == "meta" ? k_meta : k_none;
    case 5:
      return k == "hello" ? k_hello : k_none;
    case 6:
      return k == "device" ? k_device : k == "values" ? k_values : k_none;
    case 7:
      return k == "payload" ? k_payload : k_none;
    case 8:
      return k == "readings" ? k_readings : k_none;
    case 9:
      return k == "subscribe" ? k_subscribe : k_none;
    case 11:
      return k == "unsubscribe" ? k_unsubscribe : k_none;
    case 15:
      return k == "charge_point_id" ? k_charge_point_id : k_none;
    default:
      return k_none;
  }
}

// A field's key without unescaping it into simdjson's string buffer: the
// input was validated by simdjson's first stage, so the key ends at the
// first '"' unless an escape comes before it (then it is unescaped). The
// view points into the input buffer, which also survives a rewind.
simdjson_inline simdjson::error_code read_key(od::field& field, std::string_view& key) {
  const char* start = field.key().raw();
  const char* p = start;
  while (*p != '"' && *p != '\\') ++p;
  if (*p == '"') {
    key = std::string_view(start, static_cast<std::size_t>(p - start));
    return simdjson::SUCCESS;
  }
  return field.unescaped_key().get(key);
}

// Where a reading sits in its frame; used only to build error messages.
struct location {
  const char* container = nullptr;  // nullptr: the frame's own object; "": top-level array
  std::size_t index = 0;
};

// One reading's fields, collected before it is committed to its batch so
// that a reading that turns out bad never has to be taken back out.
// `names` point into simdjson's string buffer, valid until the document is
// rewound or the parser reused.
struct reading_draft {
  std::string_view device;
  bool has_device = false;  // a valid device was read
  std::uint64_t seq = 0;
  bool has_seq = false;
  std::int64_t ts = 0;
  bool has_ts = false;
  std::vector<std::string_view> names;
  std::vector<double> values;
  std::string meta;
  bool has_meta = false;   // a valid meta object was read
  std::uint32_t seen = 0;  // key_bit of every key met
  std::vector<std::string> problems;

  bool bad() const { return !problems.empty(); }
  void reset() {
    device = {};
    has_device = has_seq = has_ts = has_meta = false;
    seq = 0;
    ts = 0;
    names.clear();
    values.clear();
    meta.clear();
    seen = 0;
    problems.clear();
  }
};

}  // namespace detail

struct frame_parser::impl {
  using flow = detail::flow;

  // --- entry points (frame_parser.cpp) ---
  void parse(std::string_view text, std::int64_t now_ms, frame& out);
  void parse_body(std::string_view body, std::int64_t now_ms, frame& out);

  // --- one document: a frame or an NDJSON line ---
  void begin_call(frame& out, std::int64_t now_ms);
  void end_call();
  flow run_document(std::string_view text);
  flow parse_document(std::string_view text);
  flow handle_object(od::document& doc, od::object obj);
  flow handle_array(od::array arr);
  flow second_pass(od::document& doc, std::uint32_t key, std::string_view device);
  bool validate(const detail::padded_buffer& text);
  flow json_fail(simdjson::error_code e) {
    json_error_ = e;
    return flow::bad_json;
  }
  std::string json_message() const;
  void abort_too_large(const char* what);

  // --- readings ---
  flow process_reading(od::value& v, const detail::location& loc,
                       const std::string_view* batch_device, std::size_t& delivered);
  template <class KeyId, class Other>
  flow read_fields(od::object obj, detail::reading_draft& d, const detail::location& loc,
                   std::uint32_t allowed, KeyId&& key_id, Other&& other);
  flow parse_reading_fields(od::object obj, detail::reading_draft& d, const detail::location& loc,
                            bool device_allowed);
  flow read_device_id(od::value& v, detail::reading_draft& d, const detail::location& loc,
                      const char* field, std::string_view& device, bool& ok);
  flow read_seq(od::value& v, detail::reading_draft& d, const detail::location& loc);
  flow read_ts(od::value& v, detail::reading_draft& d, const detail::location& loc);
  flow read_values(od::value& v, detail::reading_draft& d, const detail::location& loc);
  flow read_meta(od::value& v, detail::reading_draft& d, const detail::location& loc);
  flow number_problem(od::value& v, simdjson::error_code e, detail::reading_draft& d,
                      const detail::location& loc, std::string_view field, bool unsigned_only,
                      const char* wrong_kind);
  void finish_reading(detail::reading_draft& d, std::string_view device,
                      const detail::location& loc, bool device_required, std::size_t& delivered);
  flow process_readings(od::value& v, std::string_view device, std::size_t& delivered);
  std::optional<std::string> check_time(std::int64_t ts) const;

  // --- control messages ---
  flow parse_hello(od::value& v, detail::reading_draft& d);
  flow parse_patterns(od::value& v, std::vector<std::string>& dst, const char* name,
                      detail::reading_draft& d);

  // --- OCPP MeterValues (ocpp.cpp) ---
  flow process_payload(od::value& v, std::string_view device, std::size_t& delivered);
  flow process_ocpp_object(od::object obj, std::string_view device, std::size_t& delivered);
  flow process_meter_value(od::value& v, std::size_t i, std::string_view device,
                           std::size_t& delivered);
  flow process_sampled_value(od::value& v, std::size_t i, std::size_t j);
  flow commit_meter_value(std::int64_t ts, std::string_view device, std::size_t& delivered);
  void remember_unit(std::string_view name, std::string_view unit);
  void apply_ocpp_meta(std::string_view device);

  // --- output ---
  std::uint32_t batch_index(std::string_view device);
  int metric_index(std::uint32_t b, reading_batch& batch, std::string_view name,
                   std::size_t& guess);
  bool commit(std::string_view device, const std::string_view* names, const double* values,
              std::size_t n, std::int64_t ts, bool has_seq, std::uint64_t seq,
              const std::string* meta);
  std::string too_many_metrics(std::string_view device) const;
  void set_meta(std::string_view device, const std::string& meta);
  void note_touch(std::uint32_t b);
  void rollback();
  void recycle(reading_batch& b);
  void push_error(error_code code, std::string message, std::optional<std::uint64_t> seq = {});
  std::string where(const detail::location& loc, bool field) const;

  // Reusable machinery: kept across frames so a frame costs no allocations
  // beyond what its output needs.
  od::parser parser_;
  detail::padded_buffer buf_;
  od::parser payload_parser_;  // OCPP payloads that arrive as a JSON string
  detail::padded_buffer payload_buf_;
  std::unique_ptr<simdjson::dom::parser> validator_;  // created on first use
  std::vector<reading_batch> spare_;                  // cleared batches, buffers kept
  detail::index_table devices_;                       // device -> batch index
  detail::index_table metrics_;                       // (batch, name) -> metric index
  detail::index_table scratch_index_;                 // short-lived: duplicates, OCPP slots
  detail::index_table slot_index_;
  detail::index_table units_index_;
  detail::reading_draft outer_;  // fields of the frame's own object
  detail::reading_draft inner_;  // one reading of a batch
  std::string device_copy_;      // device kept across a rewind

  // Per call.
  frame* out_ = nullptr;
  std::int64_t now_ms_ = 0;
  std::size_t line_ = 0;  // NDJSON line (1-based) or 0 for a frame
  bool control_allowed_ = true;
  std::size_t readings_seen_ = 0;
  std::uint32_t last_batch_ = UINT32_MAX;

  // Per document.
  bool validate_ = false;
  simdjson::error_code json_error_ = simdjson::SUCCESS;
  std::string json_detail_;

  // Undo log: a document that turns out not to be JSON leaves no trace, even
  // when earlier NDJSON lines already filled the same batches.
  struct mark_state {
    std::size_t batches = 0, errors = 0, subscribe = 0, unsubscribe = 0, readings_seen = 0;
    bool hello = false;
  } mark_;
  struct undo_entry {
    std::uint32_t batch;
    std::size_t rows, samples, metrics;
    std::string meta;
  };
  std::vector<undo_entry> undo_;
  std::vector<std::uint32_t> touched_;  // batch -> document id that saved it
  std::uint32_t doc_id_ = 0;

  // OCPP scratch, reused per meterValue / payload.
  struct ocpp_sample {
    std::uint32_t name_off, name_len;
    double value;
    std::string_view unit;
    bool has_unit;
  };
  std::string arena_;  // metric names built from measurand + phase
  std::vector<ocpp_sample> samples_;
  std::vector<std::uint32_t> occ_, slot_of_, slot_start_, order_;
  std::vector<std::string_view> slot_names_;
  std::vector<double> slot_values_;
  struct unit_entry {
    std::uint32_t name_off, name_len, unit_off, unit_len;
  };
  std::string unit_arena_;
  std::vector<unit_entry> units_;
  std::string connector_, transaction_;
  std::vector<wire_error> saved_errors_;
};

}  // namespace pulse::wire
