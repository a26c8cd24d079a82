// Integration: query fan-out in a three-node cluster (docs/cluster.md).
// Device and fleet aggregates give the same answer on every node, merged
// from the members' partials; a member down or late past query.timeout makes
// the answer "partial":true naming it, within that timeout, never a hang.

#include <signal.h>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "tests/integration/cluster_support.hpp"

using namespace pulse;
using namespace pulse::test::cluster;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

constexpr int devices = 30;
constexpr int per_device = 4;
constexpr std::int64_t t0 = 1731801600000;  // an hour boundary

// Stores per_device readings of q-0..q-29 through node `entry` (a POST answers
// once the owners' writes are durable). Reading s of device d: d + s/8 at
// t0 + s s + d ms, so the fleet's first and last are unique.
void post_readings(const member& entry) {
  json body = json::array();
  for (int d = 0; d < devices; ++d)
    for (int s = 1; s <= per_device; ++s)
      body.push_back({{"device", "q-" + std::to_string(d)},
                      {"seq", s},
                      {"ts", t0 + s * 1000 + d},
                      {"values", {{"v", d + s / 8.0}}}});
  net::http_response res;
  std::string err;
  REQUIRE(net::http_request("127.0.0.1", entry.http_port, "POST", "/api/v1/readings", body.dump(),
                            res, err, 20s));
  INFO(res.body);
  REQUIRE(res.status == 200);
}

json get_ok(const member& m, const std::string& target) {
  auto res = try_get(m.http_port, target, 20s);
  REQUIRE(res);
  INFO(m.name << " " << target << " -> " << res->status << " " << res->body.substr(0, 300));
  REQUIRE(res->status == 200);
  return json::parse(res->body);
}

const std::string window = "&from=" + std::to_string(t0) + "&to=" + std::to_string(t0 + 60000);
const std::string fleet = "/api/v1/aggregate?metric=v&prefix=q-&fn=count,sum,min,max,avg,first,last" + window;

}  // namespace

TEST_CASE("device and fleet aggregates are the same on every node and merged from the members",
          "[cluster]") {
  trio t;
  post_readings(t[1]);
  // The readings are spread: no node holds every device (partials=1: the
  // node's own list, as it answers a coordinator).
  std::size_t held = 0;
  for (auto& n : t.nodes) {
    auto local = get_ok(n, "/api/v1/devices?prefix=q-&limit=1000&partials=1")["devices"].size();
    CHECK(local < static_cast<std::size_t>(devices));
    held += local;
  }
  CHECK(held == static_cast<std::size_t>(devices));

  double sum = 0;
  for (int d = 0; d < devices; ++d)
    for (int s = 1; s <= per_device; ++s) sum += d + s / 8.0;
  auto a = get_ok(t[0], fleet);
  INFO(a.dump());
  REQUIRE(a["buckets"].size() == 1);
  auto& b = a["buckets"][0];
  CHECK(b["count"] == devices * per_device);
  CHECK(b["sum"].get<double>() == Approx(sum).epsilon(1e-12));
  CHECK(b["min"] == 0.125);
  CHECK(b["max"] == devices - 1 + 0.5);
  // first and last by ts over the whole fleet, whichever node held them.
  CHECK(b["first"] == 0.125);
  CHECK(b["last"] == devices - 1 + 0.5);
  CHECK(a["partial"] == false);
  CHECK_FALSE(a.contains("missing"));
  for (auto& n : t.nodes) CHECK(get_ok(n, fleet) == a);

  auto grouped = get_ok(t[2], fleet + "&group_by=device");
  CHECK(grouped["groups"].size() == static_cast<std::size_t>(devices));
  for (auto& n : t.nodes) CHECK(get_ok(n, fleet + "&group_by=device") == grouped);

  for (int d = 0; d < devices; d += 7) {
    auto target = "/api/v1/devices/q-" + std::to_string(d) + "/aggregate?metric=v&step=1s" + window;
    auto one = get_ok(t[0], target);
    CHECK(one["buckets"].size() == static_cast<std::size_t>(per_device));
    for (auto& n : t.nodes) CHECK(get_ok(n, target) == one);
  }
  // The device list is the cluster's on every node, page by page.
  auto all = get_ok(t[0], "/api/v1/devices?prefix=q-&limit=1000");
  CHECK(all["devices"].size() == static_cast<std::size_t>(devices));
  CHECK(all["next_cursor"].is_null());
  for (auto& n : t.nodes) {
    std::vector<std::string> ids;
    std::string cursor;
    for (int page = 0; page < 10; ++page) {
      auto j = get_ok(n, "/api/v1/devices?prefix=q-&limit=7" + (cursor.empty() ? "" : "&cursor=" + cursor));
      CHECK(j["devices"].size() <= 7);
      for (auto& d : j["devices"]) {
        ids.push_back(d["id"]);
        CHECK(d["last_seq"] == per_device);
      }
      if (j["next_cursor"].is_null()) break;
      cursor = j["next_cursor"].get<std::string>();
    }
    CHECK(ids.size() == static_cast<std::size_t>(devices));
    CHECK(std::is_sorted(ids.begin(), ids.end()));
    CHECK(std::adjacent_find(ids.begin(), ids.end()) == ids.end());
  }
  // A device nobody holds is 404 on every node, as on a single node.
  for (auto& n : t.nodes) {
    auto res = try_get(n.http_port, "/api/v1/devices/q-none/aggregate?metric=v" + window);
    REQUIRE(res);
    CHECK(res->status == 404);
  }
  // A bad request is the members' 400, not a partial answer.
  auto bad = try_get(t[0].http_port, "/api/v1/aggregate?prefix=q-" + window);
  REQUIRE(bad);
  CHECK(bad->status == 400);
}

TEST_CASE("a member late or down makes the answer partial and names it within query.timeout",
          "[cluster]") {
  trio t({"--query.timeout=1s"});
  post_readings(t[0]);
  auto complete = get_ok(t[0], fleet)["buckets"][0]["count"].get<int>();
  REQUIRE(complete == devices * per_device);
  auto check_partial = [&](const std::string& why, std::chrono::milliseconds within) {
    INFO(why);
    auto start = std::chrono::steady_clock::now();
    auto j = get_ok(t[0], fleet);
    auto took = std::chrono::steady_clock::now() - start;
    CHECK(took < within);
    CHECK(j["partial"] == true);
    CHECK(j["missing"] == json::array({"node-c"}));
    // node-c's devices are missing from the count, the others' are there.
    CHECK(j["buckets"][0]["count"].get<int>() < complete);
    CHECK(j["buckets"][0]["count"].get<int>() > 0);
  };
  // Hung (still a member for up to heartbeat-timeout): late past 90% of query.timeout.
  t[2].signal(SIGSTOP);
  check_partial("node-c hung", 1500ms);
  wait_state(t[0], "node-c", "down", 5s);
  check_partial("node-c marked down", 500ms);
  t[2].signal(SIGCONT);
  wait_state(t[0], "node-c", "up", 10s);
  CHECK(get_ok(t[0], fleet)["partial"] == false);
  REQUIRE(t[2].stop(SIGKILL) == 128 + SIGKILL);
  wait_state(t[0], "node-c", "down", 5s);
  check_partial("node-c killed", 500ms);
  // Back with its data: complete again.
  t[2].start();
  wait_state(t[0], "node-c", "up", 10s);
  auto again = get_ok(t[0], fleet);
  CHECK(again["partial"] == false);
  CHECK(again["buckets"][0]["count"] == complete);
}
