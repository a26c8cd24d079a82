// Integration: the queries people write (issue 11, point 6) against a real
// pulse-node on loopback: relative times and default windows, counters
// (fn=increase/rate across a reset), CSV, CORS, Allow on 405, 426 on /ws,
// seconds refused where milliseconds belong, and query.timeout on GETs.

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "net/http_client.hpp"
#include "net/ws_client.hpp"
#include "tests/support/http_helpers.hpp"
#include "tests/support/process.hpp"
#include "tests/support/ws_helpers.hpp"

using namespace pulse;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

using test::header_list;

net::http_response request(const test::node_process& n, const std::string& method,
                           const std::string& target, const std::string& body = "",
                           const header_list& headers = {}) {
  return test::http_send(n, method, target, body, headers);
}

json body_json(const net::http_response& res) {
  auto j = json::parse(res.body, nullptr, false);
  INFO(res.body);
  REQUIRE_FALSE(j.is_discarded());
  return j;
}

std::int64_t now_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

constexpr std::int64_t minute = 60'000;

// An energy register that restarts from 0 between its third and fourth reading.
std::string counter_body(std::int64_t now) {
  std::string body;
  const double values[] = {100, 150, 170, 20, 50};
  for (int i = 0; i < 5; ++i)
    body += json{{"device", "em-1"}, {"seq", i + 1}, {"ts", now - (50 - 10 * i) * minute},
                 {"values", {{"energy", values[i]}}}}.dump() + "\n";
  return body;
}

}  // namespace

TEST_CASE("relative times, default window, counters with a reset, CSV", "[integration][query]") {
  test::temp_dir dir;
  auto node = test::start_node(dir.path() + "/db");
  auto now = now_ms();
  auto post = request(node, "POST", "/api/v1/readings", counter_body(now));
  INFO(post.body);
  REQUIRE(post.status == 200);

  SECTION("without from/to the window is the last hour") {
    auto j = body_json(request(node, "GET", "/api/v1/devices/em-1/aggregate?metric=energy&fn=count"));
    REQUIRE(j["buckets"].size() == 1);
    CHECK(j["buckets"][0]["count"] == 5);
    auto t = j["buckets"][0]["t"].get<std::int64_t>();
    CHECK(t >= now - 60 * minute);
    CHECK(t <= now_ms() - 60 * minute);
    // to=now-30m: the two readings before it (at -50m and -40m) and nothing later.
    j = body_json(request(node, "GET", "/api/v1/devices/em-1/aggregate?metric=energy&fn=count,last&from=-1h&to=now-35m"));
    REQUIRE(j["buckets"].size() == 1);
    CHECK(j["buckets"][0]["count"] == 2);
    CHECK(j["buckets"][0]["last"] == 150.0);
    // A window entirely before the readings: nothing.
    j = body_json(request(node, "GET", "/api/v1/devices/em-1/aggregate?metric=energy&from=-3h&to=-2h"));
    CHECK(j["buckets"] == json::array());
  }
  SECTION("increase and rate count a drop as a restart from 0") {
    auto j = body_json(request(node, "GET",
                               "/api/v1/devices/em-1/aggregate?metric=energy&fn=increase,rate,last&from=-1h&to=now"));
    REQUIRE(j["buckets"].size() == 1);
    auto& b = j["buckets"][0];
    // 100 -> 150 -> 170 -> (restart) 20 -> 50: 50 + 20 + 20 + 30.
    CHECK(b["increase"] == 120.0);
    CHECK(b["rate"].get<double>() == Approx(120.0 / 3600.0));
    CHECK(b["last"] == 50.0);
    CHECK(!b.contains("count"));
    // From just before the reset reading: only the rise after it.
    j = body_json(request(node, "GET", "/api/v1/devices/em-1/aggregate?metric=energy&fn=increase&from=-25m"));
    CHECK(j["buckets"][0]["increase"] == 30.0);
    // The fleet sums its devices' increases.
    j = body_json(request(node, "GET", "/api/v1/aggregate?metric=energy&fn=increase,count&prefix=em-"));
    CHECK(j["buckets"][0]["increase"] == 120.0);
    CHECK(j["buckets"][0]["count"] == 5);
    j = body_json(request(node, "GET", "/api/v1/aggregate?metric=energy&fn=increase&group_by=device"));
    REQUIRE(j["groups"].size() == 1);
    CHECK(j["groups"][0]["buckets"][0]["increase"] == 120.0);
  }
  SECTION("format=csv and Accept: text/csv") {
    auto res = request(node, "GET", "/api/v1/devices/em-1/aggregate?metric=energy&fn=count,increase&format=csv");
    REQUIRE(res.status == 200);
    CHECK(res.content_type == "text/csv; charset=utf-8");
    REQUIRE(res.body.rfind("t,count,increase\n", 0) == 0);
    auto row = res.body.substr(res.body.find('\n') + 1);
    CHECK(row.substr(row.find(',')) == ",5,120\n");

    res = request(node, "GET", "/api/v1/devices/em-1/readings?limit=2", "", {{"Accept", "text/csv"}});
    REQUIRE(res.status == 200);
    CHECK(res.content_type == "text/csv; charset=utf-8");
    CHECK(res.body == "seq,ts,energy\n1," + std::to_string(now - 50 * minute) + ",100\n2," +
                        std::to_string(now - 40 * minute) + ",150\n");
    auto cursor = res.header("X-Next-Cursor");
    REQUIRE(!cursor.empty());
    res = request(node, "GET", "/api/v1/devices/em-1/readings?format=csv&limit=10&cursor=" + net::url_encode(cursor));
    CHECK(res.body.rfind("seq,ts,energy\n3,", 0) == 0);
    CHECK(res.header("X-Next-Cursor").empty());

    // format=json wins over the Accept header; errors stay JSON.
    res = request(node, "GET", "/api/v1/devices/em-1/readings?format=json", "", {{"Accept", "text/csv"}});
    CHECK(res.content_type == "application/json");
    res = request(node, "GET", "/api/v1/devices/em-1/readings?format=xml", "", {{"Accept", "text/csv"}});
    CHECK(res.status == 400);
    CHECK(body_json(res)["error"]["code"] == "bad_request");
  }
  SECTION("garbage times are 400 with the accepted forms named") {
    for (auto t : {"from=-1", "from=now+1h", "to=-1y", "from=yesterday", "from=-1h&to=-2h"}) {
      auto res = request(node, "GET", std::string("/api/v1/devices/em-1/aggregate?metric=energy&") + t);
      INFO(t << " -> " << res.body);
      CHECK(res.status == 400);
      CHECK(body_json(res)["error"]["code"] == "bad_request");
    }
    auto res = request(node, "GET", "/api/v1/devices/em-1/readings?from=bad");
    CHECK(body_json(res)["error"]["message"].get<std::string>().find("-1h") != std::string::npos);
  }
}

TEST_CASE("timestamps in seconds are refused on every ingest path", "[integration][query]") {
  test::temp_dir dir;
  auto node = test::start_node(dir.path() + "/db");
  const std::string expected = "looks like seconds: timestamps are milliseconds";

  // POST: all or nothing, the message names the unit.
  auto res = request(node, "POST", "/api/v1/readings",
                     R"([{"device":"s-1","seq":1,"ts":1731801600,"values":{"v":1}}])");
  CHECK(res.status == 400);
  auto j = body_json(res);
  CHECK(j["error"]["code"] == "invalid_reading");
  CHECK(j["error"]["message"].get<std::string>().find(expected) != std::string::npos);
  CHECK(request(node, "GET", "/api/v1/devices/s-1").status == 404);

  // WebSocket: an error for that reading, the connection stays open for good ones.
  net::ws_blocking_client ws;
  test::connect(ws, node);
  std::string err;
  REQUIRE(ws.send_text(R"({"hello":{"device":"s-1"}})", err));
  test::read_until(ws, "welcome");
  REQUIRE(ws.send_text(R"({"device":"s-1","seq":1,"ts":1700000000,"values":{"v":1}})", err));
  j = test::read_until(ws, "error");
  CHECK(j["error"]["code"] == "invalid_reading");
  CHECK(j["error"]["seq"] == 1);
  CHECK(j["error"]["message"].get<std::string>().find(expected) != std::string::npos);
  REQUIRE(ws.send_text(R"({"device":"s-1","seq":2,"ts":)" + std::to_string(now_ms()) +
                         R"(,"values":{"v":1}})", err));
  j = test::read_until(ws, "ack");
  CHECK(j["ack"]["seq"] == 2);
}

TEST_CASE("CORS, Allow on 405, OPTIONS and 426 on a plain GET of /ws", "[integration][query]") {
  test::temp_dir dir;
  auto node = test::start_node(dir.path() + "/db",
                               {"--http.cors-origins=[\"http://dash.example:3000\"]"});
  const header_list allowed{{"Origin", "http://dash.example:3000"}};
  const header_list other{{"Origin", "http://evil.example"}};

  SECTION("an allowed origin gets the headers, another does not") {
    auto res = request(node, "GET", "/api/v1/devices", "", allowed);
    CHECK(res.status == 200);
    CHECK(res.header("Access-Control-Allow-Origin") == "http://dash.example:3000");
    CHECK(res.header("Vary") == "Origin");
    res = request(node, "GET", "/api/v1/devices/nope", "", allowed);
    CHECK(res.status == 404);  // errors carry it too, so a page can read them
    CHECK(res.header("Access-Control-Allow-Origin") == "http://dash.example:3000");
    res = request(node, "GET", "/api/v1/devices", "", other);
    CHECK(res.status == 200);
    CHECK(res.header("Access-Control-Allow-Origin").empty());
    res = request(node, "GET", "/api/v1/devices");
    CHECK(res.header("Access-Control-Allow-Origin").empty());
  }
  SECTION("preflight") {
    auto h = allowed;
    h.emplace_back("Access-Control-Request-Method", "POST");
    auto res = request(node, "OPTIONS", "/api/v1/readings", "", h);
    CHECK(res.status == 204);
    CHECK(res.header("Access-Control-Allow-Origin") == "http://dash.example:3000");
    CHECK(res.header("Access-Control-Allow-Methods") == "POST, OPTIONS");
    CHECK(res.header("Access-Control-Allow-Headers").find("Authorization") != std::string::npos);
    CHECK(res.header("Allow") == "POST, OPTIONS");
    res = request(node, "OPTIONS", "/api/v1/devices/m-1/aggregate", "", other);
    CHECK(res.status == 204);
    CHECK(res.header("Allow") == "GET, HEAD, OPTIONS");
    CHECK(res.header("Access-Control-Allow-Origin").empty());
    CHECK(res.header("Access-Control-Allow-Methods").empty());
    CHECK(request(node, "OPTIONS", "/nowhere", "", allowed).status == 404);
  }
  SECTION("405 names the allowed methods") {
    struct probe {
      const char* method;
      const char* target;
      const char* allow;
    };
    for (auto p : {probe{"POST", "/healthz", "GET, HEAD, OPTIONS"},
                   probe{"DELETE", "/metrics", "GET, HEAD, OPTIONS"},
                   probe{"PUT", "/api/v1/devices", "GET, HEAD, OPTIONS"},
                   probe{"GET", "/api/v1/readings", "POST, OPTIONS"},
                   probe{"GET", "/admin/shards/0/crash", "POST, OPTIONS"}}) {
      auto res = request(node, p.method, p.target);
      INFO(p.method << " " << p.target << " -> " << res.body);
      CHECK(res.status == 405);
      CHECK(res.header("Allow") == p.allow);
      CHECK(body_json(res)["error"]["code"] == "method_not_allowed");
    }
  }
  SECTION("a GET of /ws without Upgrade is 426") {
    auto res = request(node, "GET", "/ws");
    CHECK(res.status == 426);
    CHECK(res.header("Upgrade") == "websocket");
    CHECK(body_json(res)["error"]["message"].get<std::string>().find("WebSocket") != std::string::npos);
    // The real upgrade still works.
    net::ws_blocking_client ws;
    test::connect(ws, node);
  }
}

TEST_CASE("query.timeout answers a slow GET with 503 while other GETs go on", "[integration][query]") {
  test::temp_dir dir;
  auto node = test::start_node(dir.path() + "/db",
                               {"--debug.fault-injection=true", "--query.timeout=5s"});
  auto t0 = std::chrono::steady_clock::now();
  // This GET's worker sleeps 12 s (debug.fault-injection's X-Pulse-Debug-Delay).
  auto slow = std::async(std::launch::async, [&] {
    return request(node, "GET", "/api/v1/devices", "", {{"X-Pulse-Debug-Delay", "12000"}});
  });
  std::this_thread::sleep_for(200ms);
  // Meanwhile other GETs are answered: they are not queued behind the slow one.
  for (int i = 0; i < 3; ++i) {
    auto res = request(node, "GET", "/api/v1/devices");
    CHECK(res.status == 200);
  }
  auto fast_done = std::chrono::steady_clock::now();
  CHECK(slow.wait_for(0s) == std::future_status::timeout);  // still waiting for its timeout
  auto res = slow.get();
  auto slow_done = std::chrono::steady_clock::now();
  CHECK(res.status == 503);
  auto j = body_json(res);
  CHECK(j["error"]["code"] == "overloaded");
  CHECK(j["error"]["message"].get<std::string>().find("query.timeout") != std::string::npos);
  CHECK(fast_done < slow_done);
  CHECK(slow_done - t0 >= 5s);
  CHECK(slow_done - t0 < 12s);  // answered at the timeout, not when the worker finished
}
