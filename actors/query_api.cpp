// The HTTP query API over a store. See actors/query_api.hpp for the contract
// and docs of the limits; DESIGN.md "HTTP API" for the answer shapes.

#include "actors/query_api.hpp"

#include <algorithm>
#include <chrono>
#include <exception>
#include <filesystem>
#include <initializer_list>
#include <limits>
#include <map>
#include <optional>
#include <utility>
#include <vector>

#include <boost/url/params_encoded_view.hpp>
#include <boost/url/parse_query.hpp>
#include <boost/url/pct_string_view.hpp>
#include <nlohmann/json.hpp>

#include "storage/query.hpp"
#include "wire/codec.hpp"
#include "wire/line_protocol.hpp"

namespace pulse::api {

namespace {

// Ordered so that answers list their keys as DESIGN.md shows them
// ("t" first, then count, sum, ...), which humans reading curl output expect.
using json = nlohmann::ordered_json;

// A failed step of request handling: the answer to send instead.
using failure = std::optional<http_answer>;

std::string dump(const json& j) {
  // Error messages echo client input, which may be invalid UTF-8: replace
  // bad bytes rather than letting dump() throw.
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

http_answer ok_answer(const json& j) {
  http_answer a;
  a.body = dump(j);
  return a;
}

http_answer bad_request(std::string_view message) { return json_error(400, "bad_request", message); }
http_answer not_found(std::string_view message) { return json_error(404, "not_found", message); }
http_answer internal_error(std::string_view message) { return json_error(500, "internal", message); }

std::int64_t system_now_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

std::int64_t now_of(const query_context& ctx) { return ctx.clock ? ctx.clock() : system_now_ms(); }

http_answer service_unavailable(std::string_view message) {
  return json_error(503, "overloaded", message);
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// Unsigned decimal without sign, spaces or exponent; false on overflow.
bool parse_u64(std::string_view s, std::uint64_t& out) {
  if (s.empty() || s.size() > 20) return false;
  std::uint64_t v = 0;
  for (char c : s) {
    if (!is_digit(c)) return false;
    auto d = static_cast<std::uint64_t>(c - '0');
    if (v > (std::numeric_limits<std::uint64_t>::max() - d) / 10) return false;
    v = v * 10 + d;
  }
  out = v;
  return true;
}

// --- query string ---------------------------------------------------------

// Decoded query parameters of one request. An empty value counts as absent,
// so that `?prefix=&limit=` (as forms and the DESIGN.md templates write them)
// means "use the defaults".
class params {
 public:
  const std::string* find(std::string_view key) const {
    for (auto& [k, v] : items_)
      if (k == key) return v.empty() ? nullptr : &v;
    return nullptr;
  }

  // Splits and decodes `query`; rejects bad escapes, duplicates and names
  // not in `allowed` (a typo like `form=` must not silently mean "from 0").
  failure parse(std::string_view query, std::initializer_list<std::string_view> allowed) {
    std::vector<std::string> unknown;
    if (query.empty()) return std::nullopt;  // (Boost.URL wants a non-null view)
    // A NUL-terminated copy: Boost 1.81's parse_query runs strlen over its
    // argument's data (the query_api fuzz target found the overread on a
    // query at the very end of its input buffer).
    const std::string copy(query);
    auto parsed = boost::urls::parse_query(boost::core::string_view(copy.data(), copy.size()));
    if (!parsed)
      return bad_request("malformed query string '" + std::string(query) +
                         "': " + parsed.error().message());
    boost::urls::encoding_opts opts;
    opts.space_as_plus = true;  // forms send spaces as '+'
    for (auto piece : *parsed) {
      if (piece.key.empty() && !piece.has_value) continue;  // "a=1&&b=2", a trailing '&'
      auto key = piece.key.decode(opts);
      std::string value = piece.has_value ? piece.value.decode(opts) : std::string();
      if (key.empty()) return bad_request("query parameter without a name");
      for (auto& [k, v] : items_)
        if (k == key) return bad_request("duplicate query parameter '" + key + "'");
      if (std::find(allowed.begin(), allowed.end(), key) == allowed.end())
        unknown.push_back(key);
      items_.emplace_back(std::move(key), std::move(value));
    }
    if (!unknown.empty()) {
      std::string msg = unknown.size() == 1 ? "unknown query parameter " : "unknown query parameters ";
      for (std::size_t i = 0; i < unknown.size(); ++i) msg += (i ? ", '" : "'") + unknown[i] + "'";
      msg += "; allowed here: ";
      if (allowed.size() == 0) msg += "none";
      bool first = true;
      for (auto a : allowed) {
        msg += first ? "" : ", ";
        msg += a;
        first = false;
      }
      return bad_request(msg);
    }
    return std::nullopt;
  }

 private:
  std::vector<std::pair<std::string, std::string>> items_;
};

failure parse_limit(const params& p, std::size_t default_limit, std::size_t max_limit,
                    std::size_t& out) {
  out = default_limit;
  auto s = p.find("limit");
  if (!s) return std::nullopt;
  std::uint64_t v = 0;
  // Out-of-range limits are rejected, not clamped, so that a client never
  // believes it got everything it asked for.
  if (!parse_u64(*s, v) || v == 0 || v > max_limit)
    return bad_request("limit must be an integer from 1 to " + std::to_string(max_limit) +
                       ", got '" + *s + "'");
  out = static_cast<std::size_t>(v);
  return std::nullopt;
}

// `to` (default now) and `from` (default to - 1 h), with from < to.
failure parse_window(const query_context& ctx, const params& p, std::int64_t& from,
                     std::int64_t& to) {
  const auto now = now_of(ctx);
  to = std::clamp<std::int64_t>(now, 0, max_time_ms);
  constexpr const char* forms =
    " must be ms since epoch, RFC 3339, now, or relative to now such as -1h or now-15m "
    "(0 to year 9999), got '";
  if (auto s = p.find("to"); s && !parse_time_param(*s, now, to))
    return bad_request("to" + std::string(forms) + *s + "'");
  from = std::max<std::int64_t>(0, to - default_window_ms);
  if (auto s = p.find("from"); s && !parse_time_param(*s, now, from))
    return bad_request("from" + std::string(forms) + *s + "'");
  if (from >= to)
    return bad_request("from (" + std::to_string(from) + ") must be before to (" +
                       std::to_string(to) + ")");
  return std::nullopt;
}

enum class out_format { json, csv };

// format=json|csv; without it, an Accept header naming text/csv picks CSV.
failure parse_format(const params& p, std::string_view accept, out_format& f) {
  f = accept.find("text/csv") != std::string_view::npos ? out_format::csv : out_format::json;
  auto s = p.find("format");
  if (!s) return std::nullopt;
  if (*s == "csv") f = out_format::csv;
  else if (*s == "json") f = out_format::json;
  else return bad_request("format must be json or csv, got '" + *s + "'");
  return std::nullopt;
}

failure parse_prefix(const params& p, std::string& prefix) {
  prefix.clear();
  auto s = p.find("prefix");
  if (!s) return std::nullopt;
  // A prefix is the start of a device id; anything else could never match,
  // and saying so beats an empty answer.
  if (!valid_device_id(*s))
    return bad_request("prefix must be 1-128 characters of [A-Za-z0-9:._-], got '" + *s + "'");
  prefix = *s;
  return std::nullopt;
}

// --- aggregates -----------------------------------------------------------

enum fn_bit : unsigned {
  fn_count = 1u << 0,
  fn_sum = 1u << 1,
  fn_min = 1u << 2,
  fn_max = 1u << 3,
  fn_avg = 1u << 4,
  fn_first = 1u << 5,
  fn_last = 1u << 6,
  fn_increase = 1u << 7,  // counters: sum of rises, a drop counts as a restart from 0
  fn_rate = 1u << 8,      // increase per second of the bucket
  fn_default = (1u << 7) - 1,  // all but the counter functions, which scan raw readings
  fn_counter = fn_increase | fn_rate,
};

struct fn_name {
  std::string_view name;
  fn_bit bit;
};

// In the order answers list them (DESIGN.md's aggregate shape).
constexpr fn_name fn_names[] = {
  {"count", fn_count}, {"sum", fn_sum},     {"min", fn_min},  {"max", fn_max},
  {"avg", fn_avg},     {"first", fn_first}, {"last", fn_last},
  {"increase", fn_increase}, {"rate", fn_rate},
};

failure parse_fns(const params& p, unsigned& fns) {
  fns = fn_default;
  auto s = p.find("fn");
  if (!s) return std::nullopt;
  fns = 0;
  std::string_view rest = *s;
  while (true) {
    auto comma = rest.find(',');
    auto item = rest.substr(0, comma);
    auto it = std::find_if(std::begin(fn_names), std::end(fn_names),
                           [&](const fn_name& f) { return f.name == item; });
    if (it == std::end(fn_names))
      return bad_request("unknown fn '" + std::string(item) +
                         "'; allowed: avg, min, max, sum, count, first, last, increase, rate");
    fns |= it->bit;
    if (comma == std::string_view::npos) break;
    rest = rest.substr(comma + 1);
  }
  return std::nullopt;
}

// Whether a request is a cluster member's part (partials=1, cluster_target).
bool member_part(const params& p) {
  auto v = p.find("partials");
  return v && *v == "1";
}

struct agg_request {
  std::string metric;
  std::int64_t from = 0;
  std::int64_t to = 0;
  std::optional<std::string> step_text;  // echoed as given; null when absent
  std::int64_t step_ms = 0;              // 0: one bucket for the whole window
  unsigned fns = fn_default;
  out_format format = out_format::json;
  // A member's part with cluster.replicas > 1 (query_context::replicas):
  // buckets of an hour at most, kept apart, and a fleet's per device.
  bool replica_part = false;
};

failure parse_agg_request(const query_context& ctx, const params& p, std::string_view accept,
                          agg_request& r) {
  auto metric = p.find("metric");
  if (!metric) return bad_request("metric is required");
  if (!valid_metric_name(*metric))
    return bad_request("metric must be 1-64 characters of [A-Za-z0-9_.], got '" + *metric + "'");
  r.metric = *metric;
  r.replica_part = ctx.replicas > 1 && !ctx.member_answers && member_part(p);
  if (auto f = parse_window(ctx, p, r.from, r.to)) return f;
  if (auto f = parse_format(p, accept, r.format)) return f;
  if (auto s = p.find("step")) {
    if (!parse_duration_ms(*s, r.step_ms))
      return bad_request("step must be a positive duration such as 250ms, 1s, 5m, 1h or 1d, got '" +
                         *s + "'");
    r.step_text = *s;
    auto span = r.to - r.from;
    auto n = span / r.step_ms + (span % r.step_ms != 0 ? 1 : 0);
    if (n > max_buckets)
      return bad_request("the window from " + std::to_string(r.from) + " to " +
                         std::to_string(r.to) + " holds " + std::to_string(n) + " buckets of " +
                         *s + ", at most " + std::to_string(max_buckets) +
                         " are allowed; narrow from/to or use a larger step");
  }
  return parse_fns(p, r.fns);
}

// The step handed to storage. Without a step the answer is one bucket; any
// storage step at least as long as the window splits it into at most two
// epoch-aligned buckets, which are merged afterwards. Rounding up to whole
// hours or minutes keeps those bucket edges on rollup edges.
std::int64_t storage_step(const agg_request& r) {
  if (r.step_ms > 0) return r.step_ms;
  // A replicated member's part: hours at most, so that the coordinator picks
  // the fullest replica hour by hour (answer_buckets merges them after).
  if (r.replica_part && r.to - r.from > ms_per_hour) return ms_per_hour;
  auto span = r.to - r.from;
  auto round_up = [](std::int64_t v, std::int64_t unit) { return (v + unit - 1) / unit * unit; };
  if (span >= ms_per_hour) return round_up(span, ms_per_hour);
  if (span >= ms_per_minute) return round_up(span, ms_per_minute);
  return span;
}

// Buckets as the answer shows them: empty ones dropped, and merged into one
// bucket at `from` when no step was asked for.
std::vector<storage::bucket> answer_buckets(const agg_request& r,
                                            std::vector<storage::bucket> raw) {
  std::vector<storage::bucket> out;
  if (r.step_ms == 0 && !r.replica_part) {
    storage::bucket one;
    one.t = r.from;
    for (auto& b : raw)
      if (b.agg.count > 0) one.agg.merge(b.agg);
    if (one.agg.count > 0) out.push_back(one);
    return out;
  }
  for (auto& b : raw)
    if (b.agg.count > 0) out.push_back(std::move(b));
  return out;
}

std::vector<storage::bucket> answer_buckets(const agg_request& r,
                                            const std::map<std::int64_t, storage::aggregate>& m) {
  std::vector<storage::bucket> raw;
  raw.reserve(m.size());
  for (auto& [t, agg] : m) raw.push_back({t, agg});
  return answer_buckets(r, std::move(raw));
}

// One device's buckets as the answer shows them.
failure device_buckets(const storage::store& db, std::string_view device, const agg_request& r,
                       std::vector<storage::bucket>& out) {
  storage::status st;
  auto raw = storage::aggregate_device(db, device, r.metric, r.from, r.to, storage_step(r), st);
  if (!st) return internal_error("aggregating " + std::string(device) + ": " + st.message);
  out = answer_buckets(r, std::move(raw));
  return std::nullopt;
}

// --- counters (fn=increase, fn=rate) -------------------------------------

// Bucket start -> the counter's increase in it.
using counter_map = std::map<std::int64_t, double>;

// Where a reading at `ts` lands in the answer (as answer_buckets() places them).
std::int64_t answer_bucket_of(const agg_request& r, std::int64_t ts) {
  return r.step_ms == 0 ? r.from : ts / r.step_ms * r.step_ms;
}

// Adds `device`'s increases of r.metric to `out`, from its raw readings in the
// window in (ts, seq) order: each rise counts in the bucket of the later
// reading, and a drop means the counter restarted from 0 (a meter replaced or
// reset), so the new value is the rise. The rise from a reading before `from`
// to the first one in the window is not counted.
failure add_increases(const query_context& ctx, const std::string& device, const agg_request& r,
                      counter_map& out, std::size_t& scanned) {
  std::string cursor, next;
  std::optional<double> prev;
  do {
    if (std::chrono::steady_clock::now() > ctx.deadline)
      return service_unavailable("query.timeout passed while reading the counter's raw readings; "
                                 "narrow the window");
    storage::status st;
    auto rows = storage::read_readings(*ctx.db, device, r.from, r.to, max_readings_limit, cursor,
                                       next, st);
    if (!st) return internal_error("reading " + device + ": " + st.message);
    scanned += rows.size();
    if (scanned > max_counter_readings)
      return bad_request("fn=increase/rate would read more than " +
                         std::to_string(max_counter_readings) +
                         " raw readings; narrow from/to or the prefix");
    for (auto& row : rows)
      for (auto& [name, v] : row.values) {
        if (name != r.metric) continue;
        if (prev) out[answer_bucket_of(r, row.ts)] += v >= *prev ? v - *prev : v;
        prev = v;
        break;
      }
    cursor = std::move(next);
  } while (!cursor.empty());
  return std::nullopt;
}

// What bucket_json() needs besides the aggregate.
struct counter_view {
  const counter_map* increases = nullptr;  // null: no counter functions asked for
  double seconds = 1;                      // a bucket's length, for rate
  double at(std::int64_t t) const {
    auto i = increases->find(t);
    return i == increases->end() ? 0.0 : i->second;
  }
};

counter_view counters_for(const agg_request& r, const counter_map& m) {
  counter_view v;
  if (r.fns & fn_counter) v.increases = &m;
  v.seconds = static_cast<double>(r.step_ms > 0 ? r.step_ms : r.to - r.from) / 1000.0;
  return v;
}

double fn_value(fn_bit f, std::int64_t t, const storage::aggregate& a, const counter_view& c) {
  switch (f) {
    case fn_count: return static_cast<double>(a.count);
    case fn_sum: return a.sum();
    case fn_min: return a.min;
    case fn_max: return a.max;
    case fn_avg: return a.avg();
    case fn_first: return a.first;
    case fn_last: return a.last;
    case fn_increase: return c.at(t);
    case fn_rate: return c.at(t) / c.seconds;
    default: return 0;
  }
}

json bucket_json(std::int64_t t, const storage::aggregate& a, unsigned fns, const counter_view& c) {
  json j;
  j["t"] = t;
  for (auto& f : fn_names) {
    if (!(fns & f.bit)) continue;
    if (f.bit == fn_count) j["count"] = a.count;  // an integer in JSON
    else j[std::string(f.name)] = fn_value(f.bit, t, a, c);
  }
  return j;
}

// A bucket as a member sends it to the coordinator: everything merge needs.
json partial_bucket_json(const storage::bucket& b) {
  auto& a = b.agg;
  return json{{"t", b.t},          {"count", a.count},         {"sum_hi", a.sum_hi},
              {"sum_lo", a.sum_lo}, {"min", a.min},             {"max", a.max},
              {"first", a.first},   {"first_ts", a.first_ts},   {"first_seq", a.first_seq},
              {"last", a.last},     {"last_ts", a.last_ts},     {"last_seq", a.last_seq}};
}

json partial_buckets_json(const std::vector<storage::bucket>& buckets) {
  auto arr = json::array();
  for (auto& b : buckets) arr.push_back(partial_bucket_json(b));
  return arr;
}

// Merges a member's partial buckets into `into` (by bucket start). With
// `fullest` (replicas) a bucket is not added up but replaced by the member's
// when that holds more readings: replicas hold the same readings, save those
// written while one of them was down.
void merge_partial_buckets(const json& arr, std::map<std::int64_t, storage::aggregate>& into,
                           bool fullest = false) {
  if (!arr.is_array()) return;
  for (auto& j : arr) {
    storage::aggregate a;
    a.count = j.value("count", std::uint64_t{0});
    if (a.count == 0) continue;
    a.sum_hi = j.value("sum_hi", 0.0);
    a.sum_lo = j.value("sum_lo", 0.0);
    a.min = j.value("min", 0.0);
    a.max = j.value("max", 0.0);
    a.first = j.value("first", 0.0);
    a.first_ts = j.value("first_ts", std::int64_t{0});
    a.first_seq = j.value("first_seq", std::uint64_t{0});
    a.last = j.value("last", 0.0);
    a.last_ts = j.value("last_ts", std::int64_t{0});
    a.last_seq = j.value("last_seq", std::uint64_t{0});
    auto& slot = into[j.value("t", std::int64_t{0})];
    if (!fullest) slot.merge(a);
    else if (a.count > slot.count) slot = a;
  }
}

// The members' answers, parsed; a body that is not JSON counts as missing.
std::vector<json> member_bodies(const query_context& ctx) {
  std::vector<json> out;
  for (auto& b : *ctx.member_answers) {
    auto j = json::parse(b, nullptr, false);
    if (!j.is_discarded()) out.push_back(std::move(j));
  }
  return out;
}

// "partial" (and "missing") of a cluster answer.
// With replicas, every device is on some member up while fewer than
// `replicas` are missing.
void mark_partial(const query_context& ctx, json& j) {
  bool partial = !ctx.missing.empty() && ctx.missing.size() >= ctx.replicas;
  j["partial"] = partial;
  if (partial) j["missing"] = ctx.missing;
}

json buckets_json(const std::vector<storage::bucket>& buckets, unsigned fns,
                  const counter_view& c) {
  auto arr = json::array();
  for (auto& b : buckets) arr.push_back(bucket_json(b.t, b.agg, fns, c));
  return arr;
}

// --- CSV ------------------------------------------------------------------
// Ids and metric names never need quoting ([A-Za-z0-9:._-]); numbers are
// written in the shortest form that reads back exactly.

http_answer csv_answer(std::string body) {
  http_answer a;
  a.content_type = "text/csv; charset=utf-8";
  a.body = std::move(body);
  return a;
}

void csv_header(std::string& out, bool with_device, unsigned fns) {
  out += with_device ? "device,t" : "t";
  for (auto& f : fn_names)
    if (fns & f.bit) {
      out += ',';
      out += f.name;
    }
  out += '\n';
}

void csv_buckets(std::string& out, const std::string* device,
                 const std::vector<storage::bucket>& buckets, unsigned fns,
                 const counter_view& c) {
  for (auto& b : buckets) {
    if (device) {
      out += *device;
      out += ',';
    }
    out += std::to_string(b.t);
    for (auto& f : fn_names) {
      if (!(fns & f.bit)) continue;
      out += ',';
      if (f.bit == fn_count) out += std::to_string(b.agg.count);
      else wire::append_json_number(out, fn_value(f.bit, b.t, b.agg, c));
    }
    out += '\n';
  }
}

json step_json(const agg_request& r) { return r.step_text ? json(*r.step_text) : json(nullptr); }

// --- devices --------------------------------------------------------------

failure require_db(const query_context& ctx) {
  if (!ctx.db) return internal_error("the store is not open");
  return std::nullopt;
}

json record_json(const query_context& ctx, const storage::device_record& rec) {
  json j;
  j["id"] = rec.id;
  j["last_seq"] = rec.last_seq;
  j["first_seen"] = rec.first_seen;
  j["last_seen"] = rec.last_seen;
  j["online"] = ctx.online ? ctx.online(rec.id) : false;
  j["metrics"] = rec.metrics;
  return j;
}

// Loads a device or answers 404 (or 500 when storage fails).
// {"ts":…,"values":{…}} of the device's latest reading, null if none.
json latest_json(const storage::device_record& rec) {
  if (rec.latest.empty()) return nullptr;
  json values = json::object();
  for (auto& [name, v] : rec.latest) values[name] = v;
  return json{{"ts", rec.latest_ts}, {"values", std::move(values)}};
}

failure load_device(const query_context& ctx, const std::string& id,
                    std::optional<storage::device_record>& rec) {
  if (auto f = require_db(ctx)) return f;
  storage::status st;
  rec = ctx.db->load_device(id, st);
  if (!st) return internal_error("loading device " + id + ": " + st.message);
  if (!rec) return not_found("no device '" + id + "'");
  return std::nullopt;
}

// A member's part (partials=1) answers `absent` (200) for a device this node
// holds nothing of, where a client's request gets 404 (load_device).
failure load_device_part(const query_context& ctx, const std::string& id, bool partials,
                         const json& absent, std::optional<storage::device_record>& rec) {
  if (!partials) return load_device(ctx, id, rec);
  if (auto f = require_db(ctx)) return f;
  storage::status st;
  rec = ctx.db->load_device(id, st);
  if (!st) return internal_error("loading device " + id + ": " + st.message);
  if (!rec) return ok_answer(absent);
  return std::nullopt;
}

// Cluster: folds member j's record of a device into `into`: the highest
// last_seq and last_seen, the lowest first_seen, online on any member, every
// metric (in the order first seen).
void merge_record(json& into, const json& j) {
  into["last_seq"] = std::max(into.value("last_seq", std::uint64_t{0}), j.value("last_seq", std::uint64_t{0}));
  into["first_seen"] = std::min(into.value("first_seen", std::int64_t{0}), j.value("first_seen", std::int64_t{0}));
  into["last_seen"] = std::max(into.value("last_seen", std::int64_t{0}), j.value("last_seen", std::int64_t{0}));
  into["online"] = into.value("online", false) || j.value("online", false);
  if (j["metrics"].is_array())
    for (auto& m : j["metrics"])
      if (std::find(into["metrics"].begin(), into["metrics"].end(), m) == into["metrics"].end())
        into["metrics"].push_back(m);
}

// Cluster: the members' pages of the same request merged: every member sent
// its first `limit` devices after the cursor, so the first `limit` of their
// union (by id, as storage orders them) are the cluster's.
http_answer merged_device_list(const query_context& ctx, std::size_t limit) {
  std::map<std::string, json> merged;
  bool more = false;
  for (auto& j : member_bodies(ctx)) {
    if (!j["next_cursor"].is_null()) more = true;
    if (!j["devices"].is_array()) continue;
    for (auto& rec : j["devices"]) {
      auto id = rec.value("id", std::string{});
      auto i = merged.find(id);
      if (i == merged.end()) merged.emplace(id, rec);
      else merge_record(i->second, rec);
    }
  }
  json out;
  out["devices"] = json::array();
  for (auto& [id, rec] : merged) {
    if (out["devices"].size() == limit) {
      more = true;
      break;
    }
    rec.erase("latest");  // members send it for snapshots; the list has none
    out["devices"].push_back(rec);
  }
  out["next_cursor"] = more && !out["devices"].empty() ? out["devices"].back()["id"] : json(nullptr);
  mark_partial(ctx, out);
  return ok_answer(out);
}

http_answer list_devices(const query_context& ctx, const params& p) {
  std::size_t limit = 0;
  if (auto f = parse_limit(p, default_devices_limit, max_devices_limit, limit)) return *f;
  std::string prefix;
  if (auto f = parse_prefix(p, prefix)) return *f;
  std::string after;
  if (auto s = p.find("cursor")) {
    // The cursor is the last id of the previous page, so it is a device id.
    if (!valid_device_id(*s)) return bad_request("invalid cursor '" + *s + "'");
    after = *s;
  }
  if (ctx.member_answers) return merged_device_list(ctx, limit);
  if (auto f = require_db(ctx)) return *f;
  storage::status st;
  // One extra row tells whether another page exists, so the last page says
  // null instead of sending the client on an empty round trip.
  auto page = ctx.db->list_devices(prefix, after, limit + 1, st);
  if (!st) return internal_error("listing devices: " + st.message);
  json next = nullptr;
  if (page.size() > limit) {
    page.resize(limit);
    next = page.back().id;
  }
  // A member's part also carries each device's latest values: a cluster
  // subscription's snapshot is made of them (actors/query.cpp).
  const bool partials = member_part(p);
  json j;
  j["devices"] = json::array();
  for (auto& rec : page) {
    auto r = record_json(ctx, rec);
    if (partials) r["latest"] = latest_json(rec);
    j["devices"].push_back(std::move(r));
  }
  j["next_cursor"] = std::move(next);
  return ok_answer(j);
}

// Cluster: one record from the members' (in member-name order): the highest
// last_seq and last_seen, the lowest first_seen, every metric, online on any
// member, latest values and meta of the member that saw the device last.
http_answer merged_device_detail(const query_context& ctx, const std::string& id) {
  json out;
  std::int64_t latest_ts = -1, seen = -1;
  for (auto& j : member_bodies(ctx)) {
    if (!j.value("found", true)) continue;
    if (out.is_null()) {
      out = j;
      latest_ts = j["latest"].is_object() ? j["latest"].value("ts", std::int64_t{0}) : -1;
      seen = j.value("last_seen", std::int64_t{0});
      continue;
    }
    merge_record(out, j);
    if (j["latest"].is_object() && j["latest"].value("ts", std::int64_t{0}) > latest_ts) {
      latest_ts = j["latest"].value("ts", std::int64_t{0});
      out["latest"] = j["latest"];
    }
    if (j.value("last_seen", std::int64_t{0}) >= seen) {
      seen = j.value("last_seen", std::int64_t{0});
      out["meta"] = j["meta"];
    }
  }
  if (out.is_null()) {
    if (ctx.missing.empty()) return not_found("no device '" + id + "'");
    return not_found("no device '" + id + "' on the members up now (missing: " +
                     json(ctx.missing).dump() + ")");
  }
  out.erase("found");
  mark_partial(ctx, out);
  return ok_answer(out);
}

http_answer device_detail(const query_context& ctx, const std::string& id, const params& p) {
  if (ctx.member_answers) return merged_device_detail(ctx, id);
  const bool partials = member_part(p);
  std::optional<storage::device_record> rec;
  if (auto f = load_device_part(ctx, id, partials, json{{"id", id}, {"found", false}}, rec))
    return *f;
  auto j = record_json(ctx, *rec);
  j["latest"] = latest_json(*rec);
  // meta is stored as compact JSON text; {} when the device never sent one,
  // null if the stored text does not parse (a storage bug, not the client's).
  if (rec->meta.empty()) {
    j["meta"] = json::object();
  } else {
    auto meta = json::parse(rec->meta, nullptr, false);
    j["meta"] = meta.is_discarded() ? json(nullptr) : std::move(meta);
  }
  return ok_answer(j);
}

// CSV of readings: seq, ts and one column per metric of the page (sorted),
// empty where a reading has no value for it. The next page's cursor goes in
// the X-Next-Cursor header (absent on the last page).
http_answer readings_csv(const std::vector<storage::stored_reading>& rows, const std::string& next) {
  std::vector<std::string> names;
  for (auto& r : rows)
    for (auto& [name, v] : r.values) names.push_back(name);
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  std::string out = "seq,ts";
  for (auto& n : names) out += ',' + n;
  out += '\n';
  for (auto& r : rows) {
    out += std::to_string(r.seq) + ',' + std::to_string(r.ts);
    for (auto& n : names) {
      out += ',';
      for (auto& [name, v] : r.values)
        if (name == n) wire::append_json_number(out, v);
    }
    out += '\n';
  }
  auto a = csv_answer(std::move(out));
  if (!next.empty()) a.headers.emplace_back("X-Next-Cursor", next);
  return a;
}

json readings_json(const std::string& id, const std::vector<storage::stored_reading>& rows,
                   const std::string& next) {
  json j;
  j["device"] = id;
  j["readings"] = json::array();
  for (auto& r : rows) {
    json values = json::object();
    for (auto& [name, v] : r.values) values[name] = v;
    j["readings"].push_back(json{{"seq", r.seq}, {"ts", r.ts}, {"values", std::move(values)}});
  }
  j["next_cursor"] = next.empty() ? json(nullptr) : json(next);
  return j;
}

// Cluster: the members' pages after the same cursor merged in (ts, seq)
// order, a reading that several members hold (replicas, or one written again
// by a new owner) once, the first `limit` kept. The next cursor is the last
// reading's (ts, seq), as on a single node, so paging goes on across members.
http_answer merged_readings(const query_context& ctx, const std::string& id, std::size_t limit,
                            out_format format) {
  std::vector<storage::stored_reading> rows;
  bool found = false, more = false;
  for (auto& j : member_bodies(ctx)) {
    found = found || j.value("found", true);
    more = more || (j.contains("next_cursor") && !j["next_cursor"].is_null());
    if (!j["readings"].is_array()) continue;
    for (auto& r : j["readings"]) {
      storage::stored_reading s;
      s.seq = r.value("seq", std::uint64_t{0});
      s.ts = r.value("ts", std::int64_t{0});
      if (r["values"].is_object())
        for (auto& [name, v] : r["values"].items())
          if (v.is_number()) s.values.emplace_back(name, v.get<double>());
      rows.push_back(std::move(s));
    }
  }
  if (!found && ctx.missing.empty()) return not_found("no device " + id);
  std::stable_sort(rows.begin(), rows.end(), [](auto& a, auto& b) {
    return a.ts < b.ts || (a.ts == b.ts && a.seq < b.seq);
  });
  rows.erase(std::unique(rows.begin(), rows.end(),
                         [](auto& a, auto& b) { return a.ts == b.ts && a.seq == b.seq; }),
             rows.end());
  if (rows.size() > limit) {
    rows.resize(limit);
    more = true;
  }
  std::string next;
  if (more && !rows.empty()) next = storage::encode_cursor(rows.back().ts, rows.back().seq);
  if (format == out_format::csv) return readings_csv(rows, next);
  auto j = readings_json(id, rows, next);
  mark_partial(ctx, j);
  return ok_answer(j);
}

http_answer device_readings(const query_context& ctx, const std::string& id, const params& p,
                            std::string_view accept) {
  std::size_t limit = 0;
  if (auto f = parse_limit(p, default_readings_limit, max_readings_limit, limit)) return *f;
  std::int64_t from = 0, to = 0;
  if (auto f = parse_window(ctx, p, from, to)) return *f;
  out_format format = out_format::json;
  if (auto f = parse_format(p, accept, format)) return *f;
  std::string cursor;
  if (auto s = p.find("cursor")) cursor = *s;
  if (ctx.member_answers) return merged_readings(ctx, id, limit, format);
  // A member's part: JSON whatever the format asked, "found":false rather than 404.
  const bool partials = member_part(p);
  if (partials) format = out_format::json;
  std::optional<storage::device_record> rec;
  if (auto f = load_device_part(ctx, id, partials,
                                json{{"device", id}, {"found", false}, {"readings", json::array()}},
                                rec))
    return *f;
  storage::status st;
  std::string next;
  auto rows = storage::read_readings(*ctx.db, id, from, to, limit, cursor, next, st);
  if (!st) {
    // The cursor is storage's own opaque format and storage reports a bad one
    // like any other failure. Retrying without it tells the two apart: if the
    // same read works from the start, the cursor was the problem (400).
    if (!cursor.empty()) {
      storage::status probe_st;
      std::string probe_next;
      storage::read_readings(*ctx.db, id, from, to, 1, "", probe_next, probe_st);
      if (probe_st) return bad_request("invalid cursor '" + cursor + "'");
    }
    return internal_error("reading " + id + ": " + st.message);
  }
  if (format == out_format::csv) return readings_csv(rows, next);
  return ok_answer(readings_json(id, rows, next));
}

http_answer device_aggregate(const query_context& ctx, const std::string& id, const params& p,
                             std::string_view accept) {
  agg_request r;
  if (auto f = parse_agg_request(ctx, p, accept, r)) return *f;
  const bool partials = member_part(p);
  std::vector<storage::bucket> buckets;
  if (ctx.member_answers) {
    if (r.fns & fn_counter)
      return bad_request("fn=increase and fn=rate are not available in a cluster (yet)");
    std::map<std::int64_t, storage::aggregate> merged;
    bool found = false;
    for (auto& j : member_bodies(ctx)) {
      found = found || j.value("found", true);
      merge_partial_buckets(j["buckets"], merged, ctx.replicas > 1);
    }
    if (!found && ctx.missing.empty()) return not_found("no device " + id);
    buckets = answer_buckets(r, merged);
  } else {
    std::optional<storage::device_record> rec;
    if (auto f = load_device_part(ctx, id, partials,
                                  json{{"device", id}, {"found", false}, {"buckets", json::array()}},
                                  rec))
      return *f;
    if (auto f = device_buckets(*ctx.db, id, r, buckets)) return *f;
    if (partials)
      return ok_answer(json{{"device", id}, {"found", true}, {"buckets", partial_buckets_json(buckets)}});
  }
  counter_map increases;
  std::size_t scanned = 0;
  if (r.fns & fn_counter)
    if (auto f = add_increases(ctx, id, r, increases, scanned)) return *f;
  auto counters = counters_for(r, increases);
  if (r.format == out_format::csv) {
    std::string out;
    csv_header(out, false, r.fns);
    csv_buckets(out, nullptr, buckets, r.fns, counters);
    return csv_answer(std::move(out));
  }
  json j;
  j["device"] = id;
  j["metric"] = r.metric;
  j["step"] = step_json(r);
  j["buckets"] = buckets_json(buckets, r.fns, counters);
  if (ctx.member_answers) mark_partial(ctx, j);
  else j["partial"] = false;
  return ok_answer(j);
}

http_answer fleet_aggregate(const query_context& ctx, const params& p, std::string_view accept) {
  agg_request r;
  if (auto f = parse_agg_request(ctx, p, accept, r)) return *f;
  std::string prefix;
  if (auto f = parse_prefix(p, prefix)) return *f;
  bool group = false;
  if (auto g = p.find("group_by")) {
    if (*g != "device") return bad_request("group_by must be 'device', got '" + *g + "'");
    group = true;
  }
  const bool partials = member_part(p);
  // Counters are per device (a fleet's increase is the sum of its devices'),
  // so they need the devices apart even when the answer merges them.
  const bool counters = (r.fns & fn_counter) != 0;
  std::map<std::int64_t, storage::aggregate> merged;  // without group_by, by bucket start
  std::map<std::string, std::map<std::int64_t, storage::aggregate>> by_device;
  if (ctx.member_answers) {
    if (counters)
      return bad_request("fn=increase and fn=rate are not available in a cluster (yet)");
    // With replicas the members answer per device, and each device's
    // buckets are taken from its fullest replica.
    const bool fullest = ctx.replicas > 1;
    for (auto& j : member_bodies(ctx)) {
      if (group || fullest) {
        if (j["groups"].is_array())
          for (auto& g : j["groups"])
            merge_partial_buckets(g["buckets"], by_device[g.value("device", std::string{})],
                                  fullest);
      } else {
        merge_partial_buckets(j["buckets"], merged);
      }
    }
    if (fullest && !group) {
      for (auto& [device, m] : by_device)
        for (auto& [t, agg] : m) merged[t].merge(agg);
      by_device.clear();
    }
  } else {
    if (auto f = require_db(ctx)) return *f;
    auto st = storage::aggregate_fleet(*ctx.db, prefix, r.metric, r.from, r.to, storage_step(r),
                                       group || counters || r.replica_part, merged, by_device);
    if (!st) return internal_error("aggregating the fleet: " + st.message);
  }
  if (partials && !ctx.member_answers) {
    json j;
    if (group || r.replica_part) {
      auto groups = json::array();
      for (auto& [device, m] : by_device) {
        auto buckets = answer_buckets(r, m);
        if (!buckets.empty())
          groups.push_back(json{{"device", device}, {"buckets", partial_buckets_json(buckets)}});
      }
      j["groups"] = std::move(groups);
    } else {
      j["buckets"] = partial_buckets_json(answer_buckets(r, merged));
    }
    return ok_answer(j);
  }
  counter_map fleet_increases;
  std::map<std::string, counter_map> device_increases;
  std::size_t scanned = 0;
  if (counters)
    for (auto& [device, m] : by_device) {
      auto& inc = group ? device_increases[device] : fleet_increases;
      if (auto f = add_increases(ctx, device, r, inc, scanned)) return *f;
      if (!group)
        for (auto& [t, agg] : m) merged[t].merge(agg);
    }

  const bool csv = r.format == out_format::csv;
  std::string out;
  if (csv) csv_header(out, group, r.fns);
  auto groups = json::array();
  std::int64_t group_buckets = 0;
  if (group)
    for (auto& [device, m] : by_device) {
      auto buckets = answer_buckets(r, m);
      if (buckets.empty()) continue;
      group_buckets += static_cast<std::int64_t>(buckets.size());
      if (group_buckets > max_group_buckets)
        return bad_request("the grouped answer exceeds " + std::to_string(max_group_buckets) +
                           " buckets; narrow prefix, from/to or use a larger step");
      auto c = counters_for(r, device_increases[device]);
      if (csv) csv_buckets(out, &device, buckets, r.fns, c);
      else groups.push_back(json{{"device", device}, {"buckets", buckets_json(buckets, r.fns, c)}});
    }
  auto fleet_counters = counters_for(r, fleet_increases);
  if (csv) {
    if (!group) csv_buckets(out, nullptr, answer_buckets(r, merged), r.fns, fleet_counters);
    return csv_answer(std::move(out));
  }

  json j;
  j["metric"] = r.metric;
  j["step"] = step_json(r);
  if (group) {
    j["groups"] = std::move(groups);
  } else {
    j["buckets"] = buckets_json(answer_buckets(r, merged), r.fns, fleet_counters);
  }
  if (ctx.member_answers) mark_partial(ctx, j);
  else j["partial"] = false;
  return ok_answer(j);
}

// --- routing --------------------------------------------------------------

enum class endpoint { devices, device, readings, device_aggregate, fleet_aggregate };

// A path segment: %XX escapes only ('+' is a plus in paths).
std::string url_decode_path(std::string_view s, bool& ok) {
  auto pct = boost::urls::make_pct_string_view(s);
  ok = pct.has_value();
  return ok ? pct->decode() : std::string();
}

http_answer route(const query_context& ctx, std::string_view method, std::string_view target,
                  std::string_view accept) {
  if (target.empty() || target.front() != '/')
    return bad_request("the request target must be an absolute path");
  auto qmark = target.find('?');
  auto path = target.substr(0, qmark);
  auto query = qmark == std::string_view::npos ? std::string_view{} : target.substr(qmark + 1);

  constexpr std::string_view root = "/api/";
  if (path.substr(0, root.size()) != root) return not_found("no such endpoint");

  // Strict segments: no normalisation, so "..", "." and "//" are refused
  // rather than interpreted (a proxy in front may interpret them differently).
  std::vector<std::string_view> segs;
  for (auto rest = path.substr(1);;) {
    auto slash = rest.find('/');
    auto seg = rest.substr(0, slash);
    if (seg.empty()) return bad_request("empty path segment in '" + std::string(path) + "'");
    if (seg == "." || seg == "..")
      return bad_request("'.' and '..' path segments are not allowed");
    segs.push_back(seg);
    if (slash == std::string_view::npos) break;
    rest = rest.substr(slash + 1);
  }

  endpoint ep;
  auto n = segs.size();
  if (n < 3 || segs[0] != "api" || segs[1] != "v1") return not_found("no such endpoint");
  if (n == 3 && segs[2] == "devices") ep = endpoint::devices;
  else if (n == 3 && segs[2] == "aggregate") ep = endpoint::fleet_aggregate;
  else if (n == 4 && segs[2] == "devices") ep = endpoint::device;
  else if (n == 5 && segs[2] == "devices" && segs[4] == "readings") ep = endpoint::readings;
  else if (n == 5 && segs[2] == "devices" && segs[4] == "aggregate") ep = endpoint::device_aggregate;
  else return not_found("no such endpoint: " + std::string(path));

  if (method != "GET") {
    auto a = json_error(405, "method_not_allowed",
                        std::string(method) + " is not allowed on " + std::string(path) + "; use GET");
    a.headers.emplace_back("Allow", "GET, HEAD, OPTIONS");
    return a;
  }

  std::string id;
  if (n >= 4) {
    bool ok = true;
    id = url_decode_path(segs[3], ok);
    if (!ok) return bad_request("malformed %-escape in device id");
    // Also refuses encoded slashes and NULs: ids never contain them.
    if (!valid_device_id(id))
      return bad_request("device id must be 1-128 characters of [A-Za-z0-9:._-]");
  }

  params p;
  switch (ep) {
    case endpoint::devices:
      if (auto f = p.parse(query, {"prefix", "limit", "cursor", "partials"})) return *f;
      return list_devices(ctx, p);
    case endpoint::device:
      if (auto f = p.parse(query, {"partials"})) return *f;
      return device_detail(ctx, id, p);
    case endpoint::readings:
      if (auto f = p.parse(query, {"from", "to", "limit", "cursor", "format", "partials"})) return *f;
      return device_readings(ctx, id, p, accept);
    case endpoint::device_aggregate:
      if (auto f = p.parse(query, {"metric", "from", "to", "step", "fn", "format", "partials"}))
        return *f;
      return device_aggregate(ctx, id, p, accept);
    case endpoint::fleet_aggregate:
      if (auto f = p.parse(query,
                           {"metric", "from", "to", "step", "prefix", "group_by", "fn", "format",
                            "partials"}))
        return *f;
      return fleet_aggregate(ctx, p, accept);
  }
  return internal_error("unhandled endpoint");
}

}  // namespace

bool cluster_mergeable(std::string_view target) {
  auto qmark = target.find('?');
  auto path = target.substr(0, qmark);
  // A member's part (partials=1) is answered from this node's store alone.
  if (qmark != std::string_view::npos) {
    auto query = "&" + std::string(target.substr(qmark + 1));
    if (query.find("&partials=") != std::string::npos) return false;
  }
  constexpr std::string_view fleet = "/api/v1/aggregate";
  constexpr std::string_view devices = "/api/v1/devices/";
  constexpr std::string_view tail = "/aggregate";
  if (path == fleet || path == "/api/v1/devices") return true;
  if (path.size() <= devices.size() || path.substr(0, devices.size()) != devices) return false;
  auto rest = path.substr(devices.size());  // "{id}" or "{id}/aggregate"
  auto slash = rest.find('/');
  if (slash == std::string_view::npos) return true;  // the device record
  return rest.substr(slash) == tail || rest.substr(slash) == "/readings";
}

std::string cluster_target(std::string_view target) {
  std::string out(target);
  out += target.find('?') == std::string_view::npos ? "?partials=1" : "&partials=1";
  return out;
}

http_answer handle_query(const query_context& ctx, std::string_view method, std::string_view target,
                         std::string_view accept) {
  try {
    return route(ctx, method, target, accept);
  } catch (const std::exception& e) {
    return internal_error(e.what());
  } catch (...) {
    return internal_error("unknown exception");
  }
}

namespace {

// Why `dir` may not receive a backup ("" if it may).
std::string backup_dir_problem(const std::string& dir, const std::string& storage_path) {
  namespace fs = std::filesystem;
  if (dir.empty()) return "name the backup directory: POST /admin/backup?dir=/abs/path or a body {\"dir\":\"/abs/path\"}";
  if (dir.size() > 4096) return "the backup directory's path is longer than 4096 bytes";
  if (dir.front() != '/') return "the backup directory must be an absolute path, got '" + dir + "'";
  if (std::any_of(dir.begin(), dir.end(), [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; }))
    return "the backup directory's path holds a control character";
  // Strict segments, as for URLs: no "..", ".", "//" or trailing "/" to interpret.
  for (std::size_t i = 1; i <= dir.size();) {
    auto slash = std::min(dir.find('/', i), dir.size());
    auto seg = std::string_view(dir).substr(i, slash - i);
    if (seg.empty() || seg == "." || seg == "..")
      return "the backup directory's path must not have empty, '.' or '..' segments, got '" + dir + "'";
    i = slash + 1;
  }
  std::error_code ec;
  if (fs::exists(fs::symlink_status(dir, ec)))
    return "'" + dir + "' already exists: a backup goes into a new directory";
  auto parent = fs::path(dir).parent_path();
  if (!fs::is_directory(parent, ec))
    return "the parent of '" + dir + "' (" + parent.string() + ") is not an existing directory";
  auto live = fs::weakly_canonical(storage_path, ec).string();
  auto target = (fs::weakly_canonical(parent, ec) / fs::path(dir).filename()).string();
  if (!live.empty() && (target == live || target.rfind(live + "/", 0) == 0))
    return "the backup directory must be outside storage.path (" + live + ")";
  return {};
}

}  // namespace

http_answer handle_backup(const storage::store& db, std::string_view target, std::string_view body,
                          const std::string& storage_path) {
  try {
    auto qmark = target.find('?');
    params p;
    if (auto f = p.parse(qmark == std::string_view::npos ? std::string_view{} : target.substr(qmark + 1),
                         {"dir"}))
      return *f;
    std::string dir;
    if (auto d = p.find("dir")) dir = *d;
    if (!body.empty()) {
      auto j = nlohmann::json::parse(body, nullptr, false);
      if (j.is_discarded() || !j.is_object() || j.size() != 1 || !j.contains("dir") ||
          !j["dir"].is_string())
        return bad_request("the body must be {\"dir\":\"/absolute/path\"} (or empty, with ?dir=)");
      if (!dir.empty()) return bad_request("name the backup directory once: ?dir= or the body, not both");
      dir = j["dir"].get<std::string>();
    }
    if (auto problem = backup_dir_problem(dir, storage_path); !problem.empty())
      return bad_request(problem);
    auto t0 = std::chrono::steady_clock::now();
    std::uint64_t bytes = 0, files = 0;
    auto st = db.checkpoint(dir, bytes, files);
    if (!st) return internal_error(st.message);
    json j;
    j["path"] = dir;
    j["bytes"] = bytes;
    j["files"] = files;
    j["ms"] = std::chrono::duration_cast<std::chrono::milliseconds>(
                std::chrono::steady_clock::now() - t0).count();
    return ok_answer(j);
  } catch (const std::exception& e) {
    return internal_error(e.what());
  }
}

std::optional<http_answer> parse_write_params(std::string_view target, bool v2,
                                              std::int64_t& ns_per_unit) {
  auto qmark = target.find('?');
  auto query = qmark == std::string_view::npos ? std::string_view{} : target.substr(qmark + 1);
  params p;
  if (auto f = v2 ? p.parse(query, {"precision", "bucket", "org", "orgID"})
                  : p.parse(query, {"precision", "db", "rp", "u", "p", "consistency"}))
    return f;
  auto precision = p.find("precision");
  auto units = wire::line_protocol_precision(precision ? *precision : "", v2);
  if (!units)
    return bad_request("precision must be one of " +
                       std::string(v2 ? "ns, us, ms, s" : "n, u, ms, s, m, h") + ", got '" +
                       *precision + "'");
  ns_per_unit = *units;
  return std::nullopt;
}

bool parse_duration_ms(std::string_view s, std::int64_t& ms) {
  std::size_t i = 0;
  while (i < s.size() && is_digit(s[i])) ++i;
  if (i == 0) return false;
  std::uint64_t n = 0;
  if (!parse_u64(s.substr(0, i), n)) return false;
  auto unit = s.substr(i);
  std::int64_t mult = 0;
  if (unit == "ms") mult = 1;
  else if (unit == "s") mult = 1000;
  else if (unit == "m") mult = ms_per_minute;
  else if (unit == "h") mult = ms_per_hour;
  else if (unit == "d") mult = 24 * ms_per_hour;
  else return false;
  if (n == 0) return false;
  if (n > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max() / mult)) return false;
  ms = static_cast<std::int64_t>(n) * mult;
  return true;
}

bool parse_time_param(std::string_view s, std::int64_t now_ms, std::int64_t& ms) {
  if (s.empty()) return false;
  std::int64_t v = 0;
  if (s == "now" || s.substr(0, 4) == "now-" || s.front() == '-') {
    // Relative: "now", "now-15m", "-1h" (before now).
    auto rel = s == "now" ? std::string_view{} : s.substr(s.front() == '-' ? 1 : 4);
    std::int64_t back = 0;
    if (s != "now" && !parse_duration_ms(rel, back)) return false;
    if (back > now_ms) return false;  // before 1970 (also keeps clear of overflow)
    v = now_ms - back;
  } else if (std::all_of(s.begin(), s.end(), is_digit)) {
    std::uint64_t n = 0;
    if (!parse_u64(s, n)) return false;
    v = static_cast<std::int64_t>(std::min<std::uint64_t>(n, max_time_ms + 1));
  } else {
    auto t = wire::parse_rfc3339(s);
    if (!t) return false;
    v = *t;
  }
  if (v < 0 || v > max_time_ms) return false;
  ms = v;
  return true;
}

std::string url_decode(std::string_view s, bool& ok) {
  auto pct = boost::urls::make_pct_string_view(s);
  ok = pct.has_value();
  if (!ok) return {};
  boost::urls::encoding_opts opts;
  opts.space_as_plus = true;
  return pct->decode(opts);
}

http_answer json_error(int status, std::string_view code, std::string_view message) {
  http_answer a;
  a.status = status;
  a.body = wire::encode_error(code, message);
  return a;
}

}  // namespace pulse::api
