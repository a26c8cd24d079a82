// Tests of the HTTP query API: the parsing helpers, every 400/404/405 path,
// and answers checked end to end against a real RocksDB store in a temp dir
// filled through storage::batcher.

#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "actors/query_api.hpp"
#include "net/http_client.hpp"
#include "storage/batcher.hpp"
#include "storage/query.hpp"
#include "storage/store.hpp"

namespace {

using json = nlohmann::json;
using namespace pulse;

// 2024-11-17T00:00:00Z: midnight, so hour and day buckets start here.
constexpr std::int64_t t0 = 1731801600000;
constexpr std::int64_t minute = 60'000;
constexpr std::int64_t hour = 3'600'000;

api::http_answer get(const api::query_context& ctx, const std::string& target) {
  return api::handle_query(ctx, "GET", target);
}

json parse_ok(const api::http_answer& a) {
  INFO(a.body);
  REQUIRE(a.status == 200);
  REQUIRE(a.content_type == "application/json");
  return json::parse(a.body);
}

void check_error(const api::http_answer& a, int status, const std::string& code) {
  INFO(a.body);
  REQUIRE(a.status == status);
  CHECK(a.content_type == "application/json");
  auto j = json::parse(a.body);
  CHECK(j.size() == 1);
  CHECK(j["error"]["code"] == code);
  CHECK(j["error"]["message"].is_string());
  CHECK(!j["error"]["message"].get<std::string>().empty());
}


std::string str(std::int64_t v) { return std::to_string(v); }

// --- test data and a reference aggregation over it -------------------------

struct row {
  std::string device;
  std::int64_t ts;
  std::uint64_t seq;
  std::vector<std::pair<std::string, double>> values;
};

std::vector<row> test_rows() {
  std::vector<row> rows;
  // meter-1: every 10 minutes for 3 hours, two metrics.
  for (int i = 0; i < 18; ++i)
    rows.push_back({"meter-1", t0 + i * 10 * minute, static_cast<std::uint64_t>(i + 1),
                    {{"voltage", 230.0 + i}, {"current", 0.5 * i}}});
  // meter-2: every 30 minutes, offset by 5 minutes, with a fractional value.
  for (int i = 0; i < 6; ++i)
    rows.push_back({"meter-2", t0 + 5 * minute + i * 30 * minute, static_cast<std::uint64_t>(i + 1),
                    {{"voltage", 220.0 + 2 * i + 0.1}}});
  // meter-3: two readings with the same ts; seq decides first and last.
  rows.push_back({"meter-3", t0 + hour, 1, {{"voltage", 100.0}}});
  rows.push_back({"meter-3", t0 + hour, 2, {{"voltage", 200.0}}});
  rows.push_back({"meter-3", t0 + 2 * hour + 30 * minute, 3, {{"voltage", -300.5}}});
  // meter-4: no voltage at all, so fleet voltage queries leave it out.
  rows.push_back({"meter-4", t0, 1, {{"current", 1.0}}});
  // battery-1: outside the "meter-" prefix. A minute off meter-1's times,
  // because first/last across devices with equal (ts, seq) have no order.
  rows.push_back({"battery-1", t0 + minute, 1, {{"voltage", 50.0}, {"soc", 0.9}}});
  rows.push_back({"battery-1", t0 + hour + minute, 2, {{"voltage", 52.0}, {"soc", 0.8}}});
  return rows;
}

struct ref_bucket {
  std::uint64_t count = 0;
  double sum = 0, min = 0, max = 0, first = 0, last = 0;
  std::int64_t first_ts = 0, last_ts = 0;
  std::uint64_t first_seq = 0, last_seq = 0;

  void add(double v, std::int64_t ts, std::uint64_t seq) {
    if (count == 0) {
      min = max = first = last = v;
      first_ts = last_ts = ts;
      first_seq = last_seq = seq;
    } else {
      min = std::min(min, v);
      max = std::max(max, v);
      if (std::make_pair(ts, seq) < std::make_pair(first_ts, first_seq)) {
        first = v;
        first_ts = ts;
        first_seq = seq;
      }
      if (std::make_pair(ts, seq) > std::make_pair(last_ts, last_seq)) {
        last = v;
        last_ts = ts;
        last_seq = seq;
      }
    }
    ++count;
    sum += v;
  }
};

// What an aggregate over the test data must answer: buckets aligned to
// multiples of `step` since the epoch, or one bucket at `from` for step 0.
std::map<std::int64_t, ref_bucket> reference(const std::vector<row>& rows,
                                             const std::set<std::string>& devices,
                                             const std::string& metric, std::int64_t from,
                                             std::int64_t to, std::int64_t step) {
  std::map<std::int64_t, ref_bucket> out;
  for (auto& r : rows) {
    if (!devices.count(r.device) || r.ts < from || r.ts >= to) continue;
    for (auto& [name, v] : r.values) {
      if (name != metric) continue;
      auto t = step == 0 ? from : r.ts / step * step;
      out[t].add(v, r.ts, r.seq);
    }
  }
  return out;
}

void check_buckets(const json& buckets, const std::map<std::int64_t, ref_bucket>& expected) {
  INFO(buckets.dump());
  REQUIRE(buckets.is_array());
  REQUIRE(buckets.size() == expected.size());
  auto it = expected.begin();
  for (auto& b : buckets) {
    auto& e = it->second;
    CHECK(b["t"].get<std::int64_t>() == it->first);
    CHECK(b["count"].get<std::uint64_t>() == e.count);
    CHECK(b["sum"].get<double>() == Approx(e.sum));
    CHECK(b["min"].get<double>() == e.min);
    CHECK(b["max"].get<double>() == e.max);
    CHECK(b["avg"].get<double>() == Approx(e.sum / static_cast<double>(e.count)));
    CHECK(b["first"].get<double>() == e.first);
    CHECK(b["last"].get<double>() == e.last);
    ++it;
  }
}

// --- a store in a temp dir ---------------------------------------------------

struct temp_dir {
  std::filesystem::path path;
  temp_dir() {
    static std::atomic<int> counter{0};
    auto stamp = std::chrono::steady_clock::now().time_since_epoch().count();
    path = std::filesystem::temp_directory_path() /
           ("pulse-query-api-test-" + std::to_string(stamp) + "-" + std::to_string(counter++));
    std::filesystem::create_directories(path);
  }
  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};

reading_batch make_batch(const std::string& device, const std::vector<const row*>& rows,
                         const std::string& meta) {
  reading_batch b;
  b.device = device;
  b.meta = meta;
  for (auto* r : rows) {
    reading_row rr;
    rr.ts = r->ts;
    rr.seq = r->seq;
    rr.has_seq = true;
    rr.first = static_cast<std::uint32_t>(b.samples.size());
    rr.count = static_cast<std::uint16_t>(r->values.size());
    for (auto& [name, v] : r->values) {
      auto it = std::find(b.metrics.begin(), b.metrics.end(), name);
      if (it == b.metrics.end()) it = b.metrics.insert(b.metrics.end(), name);
      b.samples.push_back({static_cast<std::uint16_t>(it - b.metrics.begin()), v});
    }
    b.rows.push_back(rr);
  }
  return b;
}

// The test data, written in two flushes (first half, then the rest of each
// device's readings) so that devices have several chunks and rollup rows.
struct fleet_fixture {
  temp_dir dir;
  std::unique_ptr<storage::store> db;
  api::query_context ctx;
  std::set<std::string> online{"meter-1"};
  std::vector<row> rows = test_rows();
  static constexpr std::int64_t first_flush_ms = t0 + 1000;
  static constexpr std::int64_t second_flush_ms = t0 + 2000;

  fleet_fixture() {
    storage::status st;
    storage::store_options opts;
    opts.path = (dir.path / "db").string();
    db = storage::store::open(opts, st);
    INFO(st.message);
    REQUIRE(st.ok);
    REQUIRE(db);
    ctx.db = db.get();
    ctx.node_name = "node-test";
    ctx.online = [this](std::string_view d) { return online.count(std::string(d)) > 0; };

    std::map<std::string, std::vector<const row*>> by_device;
    for (auto& r : rows) by_device[r.device].push_back(&r);
    storage::batcher writer(*db);
    for (int half = 0; half < 2; ++half) {
      for (auto& [device, list] : by_device) {
        auto mid = list.size() / 2;
        std::vector<const row*> part(half == 0 ? list.begin() : list.begin() + mid,
                                     half == 0 ? list.begin() + mid : list.end());
        if (part.empty()) continue;
        std::string meta = device == "meter-2" ? R"({"firmware":"1.2.3","phases":3})" : "";
        auto res = writer.add(1, make_batch(device, part, meta),
                              half == 0 ? first_flush_ms : second_flush_ms);
        REQUIRE(res.accepted == part.size());
      }
      std::vector<storage::ack_entry> acks;
      storage::flush_stats stats;
      auto fst = writer.flush(acks, stats);
      INFO(fst.message);
      REQUIRE(fst.ok);
    }
  }

  std::string id_of(const json& device) { return device["id"].get<std::string>(); }
};

}  // namespace

// --- helpers ---------------------------------------------------------------

TEST_CASE("parse_duration_ms accepts positive durations with a unit", "[query_api][parse]") {
  std::int64_t ms = -1;
  CHECK((api::parse_duration_ms("250ms", ms) && ms == 250));
  CHECK((api::parse_duration_ms("1ms", ms) && ms == 1));
  CHECK((api::parse_duration_ms("1s", ms) && ms == 1000));
  CHECK((api::parse_duration_ms("90s", ms) && ms == 90'000));
  CHECK((api::parse_duration_ms("5m", ms) && ms == 300'000));
  CHECK((api::parse_duration_ms("1h", ms) && ms == 3'600'000));
  CHECK((api::parse_duration_ms("1d", ms) && ms == 86'400'000));
  CHECK((api::parse_duration_ms("007m", ms) && ms == 420'000));
}

TEST_CASE("parse_duration_ms rejects zero, signs, garbage and overflow", "[query_api][parse]") {
  std::int64_t ms = 12345;
  for (const char* bad : {"", "0s", "0ms", "-1h", "+1h", "1", "h", "1x", "1.5h", "1 h", " 1h",
                          "1h ", "1H", "1hh", "1h30m", "ms", "abc", "99999999999999999999ms",
                          "9223372036854775807d", "106751991167301d"}) {
    INFO(bad);
    CHECK_FALSE(api::parse_duration_ms(bad, ms));
  }
  CHECK(ms == 12345);  // untouched on failure
  CHECK((api::parse_duration_ms("106751991167d", ms) && ms == 106751991167LL * 86'400'000));
}

TEST_CASE("parse_time_param accepts ms since epoch, RFC 3339 and times relative to now",
          "[query_api][parse]") {
  std::int64_t ms = -1;
  const std::int64_t now = t0 + 5 * hour;
  CHECK((api::parse_time_param("0", now, ms) && ms == 0));
  CHECK((api::parse_time_param("1731801600000", now, ms) && ms == t0));
  CHECK((api::parse_time_param("2024-11-17T00:00:00Z", now, ms) && ms == t0));
  CHECK((api::parse_time_param("2024-11-17T00:00:00.250Z", now, ms) && ms == t0 + 250));
  CHECK((api::parse_time_param("2024-11-17T01:00:00+01:00", now, ms) && ms == t0));
  CHECK((api::parse_time_param(std::to_string(api::max_time_ms), now, ms) && ms == api::max_time_ms));
  CHECK((api::parse_time_param("now", now, ms) && ms == now));
  CHECK((api::parse_time_param("-1h", now, ms) && ms == now - hour));
  CHECK((api::parse_time_param("now-1h", now, ms) && ms == now - hour));
  CHECK((api::parse_time_param("-90s", now, ms) && ms == now - 90'000));
  CHECK((api::parse_time_param("now-2d", now, ms) && ms == now - 48 * hour));
  CHECK((api::parse_time_param("-250ms", now, ms) && ms == now - 250));
  // Right back to the epoch, not before it.
  CHECK((api::parse_time_param("-5h", t0 - t0 % hour, ms) && ms == t0 - t0 % hour - 5 * hour));
  CHECK((api::parse_time_param("-" + std::to_string(now) + "ms", now, ms) && ms == 0));
}

TEST_CASE("parse_time_param rejects garbage, negatives and far futures", "[query_api][parse]") {
  std::int64_t ms = 777;
  const std::int64_t now = t0;
  for (const char* bad : {"", "-1", "+5", "1.5", "12ab", "2024-13-01T00:00:00Z",
                          "2024-11-17", "2024-11-17T00:00:00", "1969-12-31T23:59:59Z",
                          "99999999999999999999999", "253402300800001", "-", "now-", "now+1h",
                          "+1h", "-0s", "now-0h", "-1y", "--1h", "now -1h", "NOW", "nowhere",
                          "-1h ", " -1h", "-1H", "now-1h-1h", "-100000d",
                          "-99999999999999999999ms"}) {
    INFO(bad);
    CHECK_FALSE(api::parse_time_param(bad, now, ms));
  }
  CHECK(ms == 777);
}

TEST_CASE("url_decode handles escapes and plus, rejects bad escapes", "[query_api][parse]") {
  bool ok = false;
  CHECK(api::url_decode("meter-7", ok) == "meter-7");
  CHECK(ok);
  CHECK(api::url_decode("a%20b+c", ok) == "a b c");
  CHECK(ok);
  CHECK(api::url_decode("%2f%2F%3a%3A", ok) == "//::");
  CHECK(ok);
  CHECK(api::url_decode("", ok).empty());
  CHECK(ok);
  CHECK(api::url_decode("%00", ok) == std::string(1, '\0'));
  CHECK(ok);
  for (const char* bad : {"%", "%4", "a%", "%zz", "%g0", "%0g", "ab%2", "%%41"}) {
    INFO(bad);
    api::url_decode(bad, ok);
    CHECK_FALSE(ok);
  }
}

TEST_CASE("json_error has the documented shape", "[query_api][parse]") {
  auto a = api::json_error(404, "not_found", "no device \"x\"\n");
  CHECK(a.status == 404);
  CHECK(a.content_type == "application/json");
  auto j = json::parse(a.body);
  CHECK(j == json{{"error", {{"code", "not_found"}, {"message", "no device \"x\"\n"}}}});
  // Invalid UTF-8 in a message (echoed client input) must not throw.
  auto b = api::json_error(400, "bad_request", "bad \xff byte");
  CHECK(b.status == 400);
  CHECK_NOTHROW(json::parse(b.body));
}

// --- 400 / 404 / 405 without a store --------------------------------------
// Validation comes before any store access, so these answer the same with no
// store at all; a valid request then fails with 500 because no store is open.

TEST_CASE("malformed requests answer 400 before touching the store", "[query_api][errors]") {
  api::query_context ctx;  // no store
  const std::string dev = "/api/v1/devices/meter-1";
  std::vector<std::string> targets = {
    // devices listing
    "/api/v1/devices?limit=0", "/api/v1/devices?limit=1001", "/api/v1/devices?limit=abc",
    "/api/v1/devices?limit=-1", "/api/v1/devices?limit=1.5", "/api/v1/devices?prefix=a%20b",
    "/api/v1/devices?prefix=" + std::string(129, 'a'), "/api/v1/devices?cursor=a%2Fb",
    "/api/v1/devices?cursor=bad%zz", "/api/v1/devices?color=red",
    "/api/v1/devices?limit=1&limit=2", "/api/v1/devices?=1", "/api/v1/devices?prefix%=x",
    // device record
    dev + "?x=1", dev + "?limit=5", "/api/v1/devices/a%2Fb", "/api/v1/devices/a%2fb/readings",
    "/api/v1/devices/a%zz", "/api/v1/devices/a%2", "/api/v1/devices/has%20space",
    "/api/v1/devices/a+b", "/api/v1/devices/" + std::string(129, 'x'),
    "/api/v1/devices/%00", "/api/v1/devices/caf%C3%A9",
    // readings
    dev + "/readings?from=10&to=10", dev + "/readings?from=20&to=10",
    dev + "/readings?from=yesterday", dev + "/readings?to=2024-13-01T00:00:00Z",
    dev + "/readings?limit=0", dev + "/readings?limit=10001", dev + "/readings?limit=x",
    dev + "/readings?metric=voltage", dev + "/readings?from=1&from=2",
    dev + "/readings?cursor=%zz",
    // device aggregate
    dev + "/aggregate", dev + "/aggregate?step=1h", dev + "/aggregate?metric=",
    dev + "/aggregate?metric=volt%20age", dev + "/aggregate?metric=" + std::string(65, 'm'),
    dev + "/aggregate?metric=voltage&step=0s", dev + "/aggregate?metric=voltage&step=-1h",
    dev + "/aggregate?metric=voltage&step=1x", dev + "/aggregate?metric=voltage&step=abc",
    dev + "/aggregate?metric=voltage&step=1.5h", dev + "/aggregate?metric=voltage&step=60",
    dev + "/aggregate?metric=voltage&from=5&to=5", dev + "/aggregate?metric=voltage&from=6&to=5",
    dev + "/aggregate?metric=voltage&from=0&to=100001&step=1ms",
    dev + "/aggregate?metric=voltage&from=-30d&step=1s",  // 2.6M buckets: far too many
    dev + "/aggregate?metric=voltage&from=now&to=now",  // empty window
    dev + "/aggregate?metric=voltage&from=-1h&to=-2h", dev + "/aggregate?metric=voltage&to=-1x",
    dev + "/aggregate?metric=voltage&fn=increase,median", dev + "/aggregate?metric=voltage&fn=rates",
    dev + "/aggregate?metric=voltage&format=xml", dev + "/aggregate?metric=voltage&format=CSV",
    dev + "/aggregate?metric=voltage&format=csv&format=json", dev + "?format=csv",
    "/api/v1/devices?format=csv", dev + "/readings?format=tsv",
    dev + "/readings?from=now-", dev + "/readings?from=-1h%20", dev + "/readings?from=%zz",
    dev + "/aggregate?metric=voltage&fn=median", dev + "/aggregate?metric=voltage&fn=avg,",
    dev + "/aggregate?metric=voltage&fn=AVG", dev + "/aggregate?metric=voltage&fn=avg,,max",
    dev + "/aggregate?metric=voltage&group_by=device", dev + "/aggregate?metric=voltage&prefix=m",
    dev + "/aggregate?metric=voltage&metric=current",
    // fleet aggregate
    "/api/v1/aggregate", "/api/v1/aggregate?prefix=meter-", "/api/v1/aggregate?metric=a%20b",
    "/api/v1/aggregate?metric=voltage&group_by=node", "/api/v1/aggregate?metric=voltage&group_by=x",
    "/api/v1/aggregate?metric=voltage&step=0ms", "/api/v1/aggregate?metric=voltage&from=9&to=3",
    "/api/v1/aggregate?metric=voltage&from=0&to=360000000001&step=1h",
    "/api/v1/aggregate?metric=voltage&fn=p99", "/api/v1/aggregate?metric=voltage&device=meter-1",
    "/api/v1/aggregate?metric=voltage&prefix=bad/prefix",
    "/api/v1/aggregate?metric=voltage&group_by=device&group_by=device",
    // traversal and malformed paths
    "/api/v1/devices/../readings", "/api/v1/devices/meter-1/../aggregate", "/api/v1/./devices",
    "/api/v1/devices/..", "/api/v1/devices/.", "/api/../api/v1/devices", "/api/v1//devices",
    "/api/v1/devices/", "/api/v1/devices//readings", "/api//v1/devices", "/api/v1/aggregate/",
    "", "api/v1/devices", "*",
  };
  for (auto& t : targets) {
    INFO(t);
    check_error(get(ctx, t), 400, "bad_request");
  }
}

TEST_CASE("a bucket count right at the limit is accepted", "[query_api][errors]") {
  api::query_context ctx;  // no store: passing validation ends in 500
  auto a = get(ctx, "/api/v1/devices/m/aggregate?metric=v&from=0&to=100000&step=1ms");
  check_error(a, 500, "internal");
  a = get(ctx, "/api/v1/aggregate?metric=v&from=0&to=360000000000&step=1h");
  check_error(a, 500, "internal");
  // 100,000 and a bit: the partial last bucket counts.
  a = get(ctx, "/api/v1/aggregate?metric=v&from=0&to=360000000001&step=1h");
  check_error(a, 400, "bad_request");
}

TEST_CASE("valid requests pass validation", "[query_api][errors]") {
  api::query_context ctx;  // no store: passing validation ends in 500
  for (std::string t : {
         "/api/v1/devices", "/api/v1/devices?prefix=&limit=&cursor=", "/api/v1/devices?limit=1000",
         "/api/v1/devices?prefix=meter-&limit=1&cursor=meter-1&", "/api/v1/devices?&&limit=5",
         "/api/v1/devices/meter-7", "/api/v1/devices/meter%2D7", "/api/v1/devices/%2e%2e",
         "/api/v1/devices/battery:1:data/readings?from=0&to=2024-11-17T00:00:00Z&limit=10000",
         "/api/v1/devices/m/readings?cursor=anything",
         "/api/v1/devices/m/aggregate?metric=Energy.Active.Import.Register",
         "/api/v1/devices/m/aggregate?metric=voltage&step=1d&fn=avg,min,max,sum,count,first,last",
         "/api/v1/devices/m/aggregate?metric=voltage&from=0&to=1000&step=250ms&fn=avg,avg",
         "/api/v1/aggregate?metric=voltage", "/api/v1/aggregate?metric=voltage&group_by=device",
         "/api/v1/aggregate?metric=voltage&prefix=meter-&step=1d&fn=count",
       }) {
    INFO(t);
    auto a = get(ctx, t);
    check_error(a, 500, "internal");
  }
}

TEST_CASE("unknown query parameters are named in the error", "[query_api][errors]") {
  api::query_context ctx;
  auto a = get(ctx, "/api/v1/devices/meter-1/aggregate?metric=voltage&frm=1&stepp=1h");
  check_error(a, 400, "bad_request");
  auto msg = json::parse(a.body)["error"]["message"].get<std::string>();
  CHECK(msg.find("'frm'") != std::string::npos);
  CHECK(msg.find("'stepp'") != std::string::npos);
  a = get(ctx, "/api/v1/devices?limit=1&limit=2");
  msg = json::parse(a.body)["error"]["message"].get<std::string>();
  CHECK(msg.find("duplicate") != std::string::npos);
  CHECK(msg.find("'limit'") != std::string::npos);
  a = get(ctx, "/api/v1/devices/m/aggregate?step=1h");
  msg = json::parse(a.body)["error"]["message"].get<std::string>();
  CHECK(msg.find("metric") != std::string::npos);
}

TEST_CASE("unknown paths answer 404", "[query_api][errors]") {
  api::query_context ctx;
  for (const char* t : {"/", "/foo", "/api", "/api/v2/devices", "/api/v1", "/api/v1/device",
                        "/api/v1/readings", "/api/v1/devices/m/readings/x",
                        "/api/v1/devices/m/stats", "/api/v1/devices/m/aggregate/x",
                        "/api/v1/Devices", "/api/v1/%64evices", "/healthz", "/api/v1/aggregates"}) {
    INFO(t);
    check_error(get(ctx, t), 404, "not_found");
  }
}

TEST_CASE("methods other than GET answer 405", "[query_api][errors]") {
  api::query_context ctx;
  for (const char* m : {"POST", "PUT", "DELETE", "HEAD", "get", ""}) {
    INFO(m);
    check_error(api::handle_query(ctx, m, "/api/v1/devices"), 405, "method_not_allowed");
    check_error(api::handle_query(ctx, m, "/api/v1/devices/meter-1/aggregate?metric=v"), 405,
                "method_not_allowed");
  }
}

// --- against a real store ------------------------------------------------

TEST_CASE_METHOD(fleet_fixture, "device aggregate matches the data for every step",
                 "[query_api][storage]") {
  const std::set<std::string> m1{"meter-1"};
  const std::string base = "/api/v1/devices/meter-1/aggregate?metric=voltage";

  SECTION("1h over three whole hours") {
    auto j = parse_ok(get(ctx, base + "&from=" + str(t0) + "&to=" + str(t0 + 3 * hour) + "&step=1h"));
    CHECK(j["device"] == "meter-1");
    CHECK(j["metric"] == "voltage");
    CHECK(j["step"] == "1h");
    CHECK(j["partial"] == false);
    check_buckets(j["buckets"], reference(rows, m1, "voltage", t0, t0 + 3 * hour, hour));
    REQUIRE(j["buckets"].size() == 3);
    auto& b0 = j["buckets"][0];
    CHECK(b0["t"] == t0);
    CHECK(b0["count"] == 6);
    CHECK(b0["sum"].get<double>() == 230 + 231 + 232 + 233 + 234 + 235);
    CHECK(b0["min"].get<double>() == 230);
    CHECK(b0["max"].get<double>() == 235);
    CHECK(b0["avg"].get<double>() == 232.5);
    CHECK(b0["first"].get<double>() == 230);
    CHECK(b0["last"].get<double>() == 235);
  }
  SECTION("30m, 10m, 1m and 90s steps") {
    for (auto [text, ms] : {std::pair{"30m", 30 * minute}, std::pair{"10m", 10 * minute},
                            std::pair{"1m", minute}, std::pair{"90s", std::int64_t{90'000}}}) {
      INFO(text);
      auto j = parse_ok(get(ctx, base + "&from=" + str(t0) + "&to=" + str(t0 + 4 * hour) +
                                     "&step=" + text));
      CHECK(j["step"] == text);
      check_buckets(j["buckets"], reference(rows, m1, "voltage", t0, t0 + 4 * hour, ms));
    }
  }
  SECTION("1d step over the default window") {
    auto j = parse_ok(get(ctx, base + "&from=0&step=1d"));
    check_buckets(j["buckets"], reference(rows, m1, "voltage", 0, t0 + 365 * 24 * hour, 24 * hour));
    REQUIRE(j["buckets"].size() == 1);
    CHECK(j["buckets"][0]["count"] == 18);
  }
  SECTION("a window cutting hours, in RFC 3339") {
    auto from = t0 + 15 * minute, to = t0 + 2 * hour + 5 * minute;
    auto j = parse_ok(get(ctx, base + "&from=2024-11-17T00:15:00Z&to=2024-11-17T02:05:00.000Z&step=1h"));
    check_buckets(j["buckets"], reference(rows, m1, "voltage", from, to, hour));
    j = parse_ok(get(ctx, base + "&from=" + str(from) + "&to=" + str(to) + "&step=7m"));
    check_buckets(j["buckets"], reference(rows, m1, "voltage", from, to, 7 * minute));
  }
  SECTION("no step: one bucket at from, step null") {
    auto j = parse_ok(get(ctx, base + "&from=0"));
    CHECK(j["step"].is_null());
    check_buckets(j["buckets"], reference(rows, m1, "voltage", 0, t0 + 365 * 24 * hour, 0));
    REQUIRE(j["buckets"].size() == 1);
    CHECK(j["buckets"][0]["t"] == 0);
    CHECK(j["buckets"][0]["count"] == 18);
    auto from = t0 + 25 * minute, to = t0 + 95 * minute;  // crosses an hour edge
    j = parse_ok(get(ctx, base + "&from=" + str(from) + "&to=" + str(to)));
    check_buckets(j["buckets"], reference(rows, m1, "voltage", from, to, 0));
    CHECK(j["buckets"][0]["t"] == from);
    // A window shorter than a minute holding one reading.
    j = parse_ok(get(ctx, base + "&from=" + str(t0 + 40 * minute - 10) + "&to=" + str(t0 + 40 * minute + 10)));
    check_buckets(j["buckets"], reference(rows, m1, "voltage", t0 + 40 * minute - 10, t0 + 40 * minute + 10, 0));
  }
  SECTION("second metric") {
    auto j = parse_ok(get(ctx, "/api/v1/devices/meter-1/aggregate?metric=current&step=1h&from=" + str(t0)));
    check_buckets(j["buckets"], reference(rows, m1, "current", t0, t0 + 365 * 24 * hour, hour));
  }
  SECTION("only the asked fns, in the documented order") {
    auto a = get(ctx, base + "&step=1h&from=" + str(t0) + "&fn=max,avg");
    REQUIRE(a.status == 200);
    auto j = nlohmann::ordered_json::parse(a.body);
    REQUIRE(j["buckets"].size() == 3);
    std::vector<std::string> keys;
    for (auto& [k, v] : j["buckets"][0].items()) keys.push_back(k);
    CHECK(keys == std::vector<std::string>{"t", "max", "avg"});
    a = get(ctx, base + "&step=1h&from=" + str(t0));
    j = nlohmann::ordered_json::parse(a.body);
    keys.clear();
    for (auto& [k, v] : j["buckets"][0].items()) keys.push_back(k);
    CHECK(keys == std::vector<std::string>{"t", "count", "sum", "min", "max", "avg", "first", "last"});
    keys.clear();
    for (auto& [k, v] : j.items()) keys.push_back(k);
    CHECK(keys == std::vector<std::string>{"device", "metric", "step", "buckets", "partial"});
    auto c = parse_ok(get(ctx, base + "&step=1h&from=" + str(t0) + "&fn=count"));
    CHECK(c["buckets"][0] == json{{"t", t0}, {"count", 6}});
  }
  SECTION("seq breaks ties of first and last; negative values") {
    const std::set<std::string> m3{"meter-3"};
    auto j = parse_ok(get(ctx, "/api/v1/devices/meter-3/aggregate?metric=voltage&step=1h&from=" + str(t0)));
    check_buckets(j["buckets"], reference(rows, m3, "voltage", t0, t0 + 365 * 24 * hour, hour));
    REQUIRE(j["buckets"].size() == 2);
    CHECK(j["buckets"][0]["first"].get<double>() == 100);
    CHECK(j["buckets"][0]["last"].get<double>() == 200);
    CHECK(j["buckets"][1]["min"].get<double>() == -300.5);
  }
  SECTION("fractional values round-trip") {
    const std::set<std::string> m2{"meter-2"};
    auto j = parse_ok(get(ctx, "/api/v1/devices/meter-2/aggregate?metric=voltage&step=30m&from=" + str(t0)));
    check_buckets(j["buckets"], reference(rows, m2, "voltage", t0, t0 + 365 * 24 * hour, 30 * minute));
    REQUIRE(j["buckets"].size() == 6);
    CHECK(j["buckets"][0]["first"].get<double>() == 220.1);
  }
  SECTION("a metric the device never sent, an empty window") {
    auto j = parse_ok(get(ctx, "/api/v1/devices/meter-1/aggregate?metric=frequency&step=1h&from=" + str(t0)));
    CHECK(j["buckets"] == json::array());
    j = parse_ok(get(ctx, base + "&from=0&to=" + str(t0)));
    CHECK(j["buckets"] == json::array());
  }
  SECTION("unknown device") {
    check_error(get(ctx, "/api/v1/devices/meter-99/aggregate?metric=voltage"), 404, "not_found");
    check_error(get(ctx, "/api/v1/devices/%2e%2e/aggregate?metric=voltage"), 404, "not_found");
  }
}

TEST_CASE_METHOD(fleet_fixture, "fleet aggregate merges or groups devices", "[query_api][storage]") {
  const std::set<std::string> meters{"meter-1", "meter-2", "meter-3", "meter-4"};
  const std::set<std::string> all{"meter-1", "meter-2", "meter-3", "meter-4", "battery-1"};
  const auto end = t0 + 365 * 24 * hour;

  SECTION("merged across a prefix") {
    auto j = parse_ok(get(ctx, "/api/v1/aggregate?metric=voltage&prefix=meter-&step=1h&from=" + str(t0)));
    CHECK(j["metric"] == "voltage");
    CHECK(j["step"] == "1h");
    CHECK(j["partial"] == false);
    CHECK(!j.contains("groups"));
    check_buckets(j["buckets"], reference(rows, meters, "voltage", t0, end, hour));
  }
  SECTION("merged across everything, one bucket") {
    auto j = parse_ok(get(ctx, "/api/v1/aggregate?from=0&metric=voltage"));
    CHECK(j["step"].is_null());
    check_buckets(j["buckets"], reference(rows, all, "voltage", 0, end, 0));
    REQUIRE(j["buckets"].size() == 1);
    CHECK(j["buckets"][0]["count"] == 18 + 6 + 3 + 2);
  }
  SECTION("grouped by device") {
    auto j = parse_ok(get(ctx, "/api/v1/aggregate?metric=voltage&prefix=meter-&step=30m&group_by=device&from=" + str(t0)));
    CHECK(!j.contains("buckets"));
    auto& groups = j["groups"];
    REQUIRE(groups.size() == 3);  // meter-4 has no voltage
    std::vector<std::string> ids;
    for (auto& g : groups) {
      auto id = g["device"].get<std::string>();
      ids.push_back(id);
      INFO(id);
      check_buckets(g["buckets"], reference(rows, {id}, "voltage", t0, end, 30 * minute));
    }
    CHECK(ids == std::vector<std::string>{"meter-1", "meter-2", "meter-3"});
  }
  SECTION("grouped, every device, selected fns") {
    auto j = parse_ok(get(ctx, "/api/v1/aggregate?from=0&metric=voltage&group_by=device&fn=count,sum"));
    auto& groups = j["groups"];
    REQUIRE(groups.size() == 4);
    CHECK(groups[0]["device"] == "battery-1");
    CHECK(groups[0]["buckets"] == json::array({{{"t", 0}, {"count", 2}, {"sum", 102.0}}}));
  }
  SECTION("a prefix or metric that matches nothing") {
    auto j = parse_ok(get(ctx, "/api/v1/aggregate?metric=voltage&prefix=zzz"));
    CHECK(j["buckets"] == json::array());
    j = parse_ok(get(ctx, "/api/v1/aggregate?metric=nothing&group_by=device"));
    CHECK(j["groups"] == json::array());
  }
}

TEST_CASE_METHOD(fleet_fixture, "devices listing with prefix and pagination", "[query_api][storage]") {
  SECTION("everything on one page") {
    auto j = parse_ok(get(ctx, "/api/v1/devices"));
    CHECK(j["next_cursor"].is_null());
    auto& devices = j["devices"];
    REQUIRE(devices.size() == 5);
    std::vector<std::string> ids;
    for (auto& d : devices) ids.push_back(id_of(d));
    CHECK(ids == std::vector<std::string>{"battery-1", "meter-1", "meter-2", "meter-3", "meter-4"});
    auto& m1 = devices[1];
    CHECK(m1["last_seq"] == 18);
    CHECK(m1["online"] == true);
    CHECK(devices[2]["online"] == false);
    CHECK(m1["first_seen"] == first_flush_ms);
    CHECK(m1["last_seen"] == second_flush_ms);
    auto metrics = m1["metrics"].get<std::vector<std::string>>();
    std::sort(metrics.begin(), metrics.end());
    CHECK(metrics == std::vector<std::string>{"current", "voltage"});
    std::vector<std::string> keys;
    auto ordered = nlohmann::ordered_json::parse(get(ctx, "/api/v1/devices").body);
    for (auto& [k, v] : ordered["devices"][0].items()) keys.push_back(k);
    CHECK(keys == std::vector<std::string>{"id", "last_seq", "first_seen", "last_seen", "online", "metrics"});
  }
  SECTION("pages of two with a prefix") {
    auto j = parse_ok(get(ctx, "/api/v1/devices?prefix=meter-&limit=2"));
    REQUIRE(j["devices"].size() == 2);
    CHECK(id_of(j["devices"][0]) == "meter-1");
    CHECK(id_of(j["devices"][1]) == "meter-2");
    REQUIRE(j["next_cursor"] == "meter-2");
    j = parse_ok(get(ctx, "/api/v1/devices?prefix=meter-&limit=2&cursor=meter-2"));
    REQUIRE(j["devices"].size() == 2);
    CHECK(id_of(j["devices"][0]) == "meter-3");
    CHECK(id_of(j["devices"][1]) == "meter-4");
    CHECK(j["next_cursor"].is_null());
  }
  SECTION("walking pages of one collects every device once") {
    std::vector<std::string> ids;
    std::string target = "/api/v1/devices?limit=1";
    for (int pages = 0; pages < 10; ++pages) {
      auto j = parse_ok(get(ctx, target));
      for (auto& d : j["devices"]) ids.push_back(id_of(d));
      if (j["next_cursor"].is_null()) break;
      target = "/api/v1/devices?limit=1&cursor=" + net::url_encode(j["next_cursor"].get<std::string>());
    }
    CHECK(ids == std::vector<std::string>{"battery-1", "meter-1", "meter-2", "meter-3", "meter-4"});
  }
  SECTION("a prefix matching nothing, a cursor past the end") {
    auto j = parse_ok(get(ctx, "/api/v1/devices?prefix=sensor"));
    CHECK(j["devices"] == json::array());
    CHECK(j["next_cursor"].is_null());
    j = parse_ok(get(ctx, "/api/v1/devices?cursor=zzz"));
    CHECK(j["devices"] == json::array());
  }
}

TEST_CASE_METHOD(fleet_fixture, "device record with latest values and meta", "[query_api][storage]") {
  auto j = parse_ok(get(ctx, "/api/v1/devices/meter-2"));
  CHECK(j["id"] == "meter-2");
  CHECK(j["last_seq"] == 6);
  CHECK(j["online"] == false);
  CHECK(j["meta"] == json{{"firmware", "1.2.3"}, {"phases", 3}});
  CHECK(j["latest"]["ts"] == t0 + 5 * minute + 5 * 30 * minute);
  CHECK(j["latest"]["values"] == json{{"voltage", 230.1}});

  j = parse_ok(get(ctx, "/api/v1/devices/meter-1"));
  CHECK(j["online"] == true);
  CHECK(j["meta"] == json::object());
  CHECK(j["latest"]["ts"] == t0 + 17 * 10 * minute);
  CHECK(j["latest"]["values"] == json{{"voltage", 247.0}, {"current", 8.5}});

  // An escaped but valid id is the same device.
  CHECK(parse_ok(get(ctx, "/api/v1/devices/meter%2D2"))["id"] == "meter-2");

  check_error(get(ctx, "/api/v1/devices/meter-99"), 404, "not_found");
  check_error(get(ctx, "/api/v1/devices/%2e%2e"), 404, "not_found");
  check_error(get(ctx, "/api/v1/devices/METER-1"), 404, "not_found");
}

TEST_CASE_METHOD(fleet_fixture, "readings page end to end", "[query_api][storage]") {
  SECTION("pages of five") {
    std::vector<std::uint64_t> seqs;
    std::vector<std::size_t> page_sizes;
    std::string target = "/api/v1/devices/meter-1/readings?from=0&limit=5";
    for (int pages = 0; pages < 20; ++pages) {
      auto j = parse_ok(get(ctx, target));
      CHECK(j["device"] == "meter-1");
      page_sizes.push_back(j["readings"].size());
      for (auto& r : j["readings"]) {
        auto seq = r["seq"].get<std::uint64_t>();
        seqs.push_back(seq);
        auto i = static_cast<std::int64_t>(seq - 1);
        CHECK(r["ts"] == t0 + i * 10 * minute);
        CHECK(r["values"] == json{{"voltage", 230.0 + i}, {"current", 0.5 * i}});
      }
      if (j["next_cursor"].is_null()) break;
      REQUIRE(j["next_cursor"].is_string());
      target = "/api/v1/devices/meter-1/readings?from=0&limit=5&cursor=" +
               net::url_encode(j["next_cursor"].get<std::string>());
    }
    std::vector<std::uint64_t> want(18);
    for (std::size_t i = 0; i < want.size(); ++i) want[i] = i + 1;
    CHECK(seqs == want);
    CHECK(page_sizes.front() == 5);
    CHECK(page_sizes.size() <= 5);  // 5+5+5+3, maybe an empty last page
  }
  SECTION("everything on one page") {
    auto j = parse_ok(get(ctx, "/api/v1/devices/meter-1/readings?from=0"));
    CHECK(j["readings"].size() == 18);
    CHECK(j["next_cursor"].is_null());
    std::vector<std::string> keys;
    auto ordered = nlohmann::ordered_json::parse(get(ctx, "/api/v1/devices/meter-1/readings?from=0").body);
    for (auto& [k, v] : ordered.items()) keys.push_back(k);
    CHECK(keys == std::vector<std::string>{"device", "readings", "next_cursor"});
  }
  SECTION("a window, in RFC 3339 and ms") {
    auto j = parse_ok(get(ctx, "/api/v1/devices/meter-1/readings?from=2024-11-17T01:00:00Z&to=" + str(t0 + 2 * hour)));
    REQUIRE(j["readings"].size() == 6);
    CHECK(j["readings"][0]["seq"] == 7);
    CHECK(j["readings"][5]["seq"] == 12);
    CHECK(j["next_cursor"].is_null());
  }
  SECTION("readings sharing a ts come in seq order") {
    auto j = parse_ok(get(ctx, "/api/v1/devices/meter-3/readings?from=0&limit=2"));
    REQUIRE(j["readings"].size() == 2);
    CHECK(j["readings"][0]["seq"] == 1);
    CHECK(j["readings"][1]["seq"] == 2);
    CHECK(j["next_cursor"].is_string());
  }
  SECTION("a cursor storage did not make") {
    for (const char* c : {"garbage", "x", "%FF%FE", "-1"}) {
      INFO(c);
      check_error(get(ctx, std::string("/api/v1/devices/meter-1/readings?from=0&cursor=") + c), 400,
                  "bad_request");
    }
  }
  SECTION("unknown device") {
    check_error(get(ctx, "/api/v1/devices/meter-99/readings"), 404, "not_found");
  }
}
