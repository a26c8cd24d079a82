// Integration: storage.retention and storage.rollup-retention (issue 11,
// point 3) on a real node whose clock is moved with debug.fault-injection's
// POST /admin/clock: raw readings go first, rollups later, device records
// stay, ingest goes on; bad settings stop start-up.

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <string>

#include "tests/support/http_helpers.hpp"
#include "tests/support/process.hpp"

using namespace pulse;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

constexpr std::int64_t hour = 3'600'000;
constexpr std::int64_t day = 24 * hour;

std::int64_t now_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

json get_ok(const test::node_process& n, const std::string& target) {
  auto res = test::http_send(n, "GET", target);
  INFO(target << " -> " << res.body);
  REQUIRE(res.status == 200);
  return json::parse(res.body);
}

}  // namespace

TEST_CASE("retention drops old readings, then old rollups, as the clock moves",
          "[integration][retention]") {
  test::temp_dir dir;
  // No head: every flush writes its chunks and rollups, so what a pass drops
  // is on disk already (with a head they reach disk at the next checkpoint).
  auto node = test::start_node(dir.path() + "/db",
                               {"--storage.retention=2d", "--storage.rollup-retention=10d",
                                "--storage.head-max-readings=0", "--debug.fault-injection=true"});
  // Ten readings in one whole hour, a few hours ago.
  const std::int64_t h0 = (now_ms() / hour - 3) * hour;
  std::string body;
  for (int i = 0; i < 10; ++i)
    body += json{{"device", "r-1"}, {"seq", i + 1}, {"ts", h0 + i * 60'000}, {"values", {{"v", 1.0}}}}.dump() + "\n";
  REQUIRE(test::http_send(node, "POST", "/api/v1/readings", body).status == 200);

  const std::string far = std::to_string(now_ms() + 30 * day);
  const std::string raw = "/api/v1/devices/r-1/readings?from=0&to=" + far;
  // Whole hours: answered from hour rollup rows.
  const std::string hourly = "/api/v1/devices/r-1/aggregate?metric=v&fn=count&step=1h&from=" +
                             std::to_string(h0) + "&to=" + std::to_string(h0 + hour);
  auto count_of = [&](const json& j) {
    return j["buckets"].empty() ? 0 : j["buckets"][0]["count"].get<int>();
  };
  REQUIRE(get_ok(node, raw)["readings"].size() == 10);
  REQUIRE(count_of(get_ok(node, hourly)) == 10);

  // One day on: nothing is past 2 days yet.
  auto res = test::http_send(node, "POST", "/admin/clock?offset=1d");
  INFO(res.body);
  REQUIRE(res.status == 200);
  CHECK(get_ok(node, raw)["readings"].size() == 10);

  // Three days on: the readings' hour is past 2 days and goes; rollups stay.
  res = test::http_send(node, "POST", "/admin/clock?offset=3d");
  REQUIRE(res.status == 200);
  auto pass = json::parse(res.body);
  CHECK(pass["readings_before"].get<std::int64_t>() > h0 + hour);
  CHECK(pass["rollups_before"].get<std::int64_t>() < h0);
  CHECK(get_ok(node, raw)["readings"].empty());
  CHECK(count_of(get_ok(node, hourly)) == 10);
  // The device and its last_seq stay: a resent seq is still a duplicate.
  CHECK(get_ok(node, "/api/v1/devices/r-1")["last_seq"] == 10);
  // Ingest goes on meanwhile.
  auto post = test::http_send(node, "POST", "/api/v1/readings",
                              json::array({{{"device", "r-2"}, {"ts", now_ms()}, {"values", {{"v", 2.0}}}}}).dump());
  CHECK(post.status == 200);

  // Eleven days on: the rollups go too.
  REQUIRE(test::http_send(node, "POST", "/admin/clock?offset=11d").status == 200);
  CHECK(count_of(get_ok(node, hourly)) == 0);
  CHECK(get_ok(node, "/api/v1/devices/r-1")["last_seq"] == 10);

  // Garbage offsets.
  for (auto t : {"/admin/clock", "/admin/clock?offset=", "/admin/clock?offset=3x",
                 "/admin/clock?offset=--1d", "/admin/clock?offset=99999999d"}) {
    auto r = test::http_send(node, "POST", t);
    INFO(t << " -> " << r.body);
    CHECK(r.status == 400);
  }
}

TEST_CASE("retention settings are checked at start-up, and the clock needs fault injection",
          "[integration][retention]") {
  test::temp_dir dir;
  for (auto& args : std::vector<std::vector<std::string>>{
         {"--storage.retention=30x"},
         {"--storage.retention=30"},
         {"--storage.retention=10m"},
         {"--storage.rollup-retention=10d"},
         {"--storage.retention=10d", "--storage.rollup-retention=1d"}}) {
    std::vector<std::string> all = {"--net.port=0", "--storage.path=" + dir.path() + "/db"};
    all.insert(all.end(), args.begin(), args.end());
    test::child node(test::node_binary(), all);
    INFO(args.back() << ": " << node.err());
    CHECK(node.wait(20s) == 2);
    CHECK(node.err().find("retention") != std::string::npos);
  }
  auto node = test::start_node(dir.path() + "/db", {"--storage.retention=30d"});
  CHECK(test::http_send(node, "POST", "/admin/clock?offset=1d").status == 404);
}
