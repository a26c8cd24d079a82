// Integration: real pulse-node processes on loopback, a real WebSocket client,
// real RocksDB in a temp dir.

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <signal.h>

#include <filesystem>
#include <fstream>

#include "net/http_client.hpp"
#include "net/ws_client.hpp"
#include "tests/support/process.hpp"
#include "tests/support/ws_helpers.hpp"

using namespace pulse;
using namespace std::chrono_literals;
using test::connect;
using test::read_until;
using nlohmann::json;

namespace {

json get_json(const test::node_process& n, const std::string& target, int expect_status = 200) {
  net::http_response res;
  std::string err;
  REQUIRE(net::http_request(n.host, n.port, "GET", target, "", res, err));
  INFO(target << " -> " << res.status << " " << res.body);
  REQUIRE(res.status == expect_status);
  auto j = json::parse(res.body, nullptr, false);
  REQUIRE_FALSE(j.is_discarded());
  return j;
}

void send(net::ws_blocking_client& ws, const std::string& text) {
  std::string err;
  REQUIRE(ws.send_text(text, err));
}

json aggregate(const test::node_process& n, const std::string& device, const std::string& metric) {
  auto j = get_json(n, "/api/v1/devices/" + device + "/aggregate?from=0&metric=" + metric);
  REQUIRE(j["buckets"].size() == 1);
  return j["buckets"][0];
}

}  // namespace

TEST_CASE("readings over WebSocket are acked, stored, aggregated and survive a restart") {
  test::temp_dir dir;
  auto storage = dir.path() + "/db";
  {
    auto node = test::start_node(storage);
    REQUIRE(get_json(node, "/healthz")["status"] == "ok");
    net::ws_blocking_client ws;
    connect(ws, node);
    send(ws, R"({"hello":{"device":"meter-1"}})");
    auto welcome = read_until(ws, "welcome");
    CHECK(welcome["welcome"]["device"] == "meter-1");
    CHECK(welcome["welcome"]["node"] == "test-node");
    CHECK(welcome["welcome"]["last_seq"] == 0);

    // single reading
    send(ws, R"({"device":"meter-1","seq":1,"ts":1731801600000,"values":{"voltage":230.5,"current":5}})");
    CHECK(read_until(ws, "ack")["ack"] == json{{"device", "meter-1"}, {"seq", 1}});
    // batch for one device
    send(ws, R"({"device":"meter-1","readings":[
      {"seq":2,"ts":1731801601000,"values":{"voltage":231.5}},
      {"seq":3,"ts":1731801602000,"values":{"voltage":229.0,"current":4}}]})");
    CHECK(read_until(ws, "ack")["ack"]["seq"] == 3);
    // an array of readings of several devices: one ack per device
    send(ws, R"([{"device":"meter-2","seq":10,"ts":1731801600500,"values":{"voltage":100}},
                 {"device":"meter-1","seq":4,"ts":1731801603000,"values":{"voltage":228.0}}])");
    auto a1 = read_until(ws, "ack")["ack"];
    auto a2 = read_until(ws, "ack")["ack"];
    std::map<std::string, int> acks{{a1["device"], a1["seq"]}, {a2["device"], a2["seq"]}};
    CHECK(acks == std::map<std::string, int>{{"meter-1", 4}, {"meter-2", 10}});

    // bad input: error, connection stays open, nothing of it stored
    send(ws, R"({"device":"meter-1","seq":5,"values":{"voltage":"high"}})");
    auto e = read_until(ws, "error")["error"];
    CHECK(e["code"] == "invalid_reading");
    CHECK(e["seq"] == 5);
    send(ws, "{not json");
    CHECK(read_until(ws, "error")["error"]["code"] == "invalid_json");
    // a reading without seq gets the next one from the node
    send(ws, R"({"device":"meter-1","ts":1731801604000,"values":{"voltage":232.0}})");
    CHECK(read_until(ws, "ack")["ack"]["seq"] == 5);

    auto v = aggregate(node, "meter-1", "voltage");
    CHECK(v["count"] == 5);
    CHECK(v["sum"].get<double>() == Approx(230.5 + 231.5 + 229.0 + 228.0 + 232.0).epsilon(1e-12));
    CHECK(v["min"] == 228.0);
    CHECK(v["max"] == 232.0);
    CHECK(v["first"] == 230.5);
    CHECK(v["last"] == 232.0);
    auto c = aggregate(node, "meter-1", "current");
    CHECK(c["count"] == 2);
    CHECK(c["sum"] == 9.0);
    CHECK(aggregate(node, "meter-2", "voltage")["count"] == 1);

    auto readings = get_json(node, "/api/v1/devices/meter-1/readings?from=0&limit=2");
    CHECK(readings["readings"].size() == 2);
    CHECK(readings["readings"][0]["seq"] == 1);
    CHECK(readings["next_cursor"].is_string());

    // graceful stop: exit 0
    ws.close();
    CHECK(node.proc->stop(SIGTERM, 20s) == 0);
  }
  {
    auto node = test::start_node(storage);
    auto dev = get_json(node, "/api/v1/devices/meter-1");
    CHECK(dev["last_seq"] == 5);
    net::ws_blocking_client ws;
    connect(ws, node);
    send(ws, R"({"hello":{"device":"meter-1"}})");
    CHECK(read_until(ws, "welcome")["welcome"]["last_seq"] == 5);
    // a duplicate is acked, not stored again
    send(ws, R"({"device":"meter-1","seq":4,"ts":1731801603000,"values":{"voltage":228.0}})");
    CHECK(read_until(ws, "ack")["ack"]["seq"] == 4);
    CHECK(aggregate(node, "meter-1", "voltage")["count"] == 5);
    // and the data is all still there, with rollups and raw agreeing per minute
    auto minute = get_json(node, "/api/v1/devices/meter-1/aggregate?metric=voltage&step=1m&fn=count,sum&from=1731801600000&to=1731801700000");
    REQUIRE(minute["buckets"].size() == 1);
    CHECK(minute["buckets"][0]["count"] == 5);
    auto secs = get_json(node, "/api/v1/devices/meter-1/aggregate?metric=voltage&step=1s&fn=count&from=1731801600000&to=1731801700000");
    CHECK(secs["buckets"].size() == 5);
    auto devices = get_json(node, "/api/v1/devices");
    CHECK(devices["devices"].size() == 2);
  }
}

TEST_CASE("POST /api/v1/readings answers once durable, all or nothing") {
  test::temp_dir dir;
  auto node = test::start_node(dir.path() + "/db");
  net::http_response res;
  std::string err;
  std::string ndjson =
    "{\"device\":\"p-1\",\"seq\":1,\"ts\":1731801600000,\"values\":{\"t\":1.5}}\n"
    "{\"device\":\"p-1\",\"seq\":2,\"ts\":1731801601000,\"values\":{\"t\":2.5}}\n";
  REQUIRE(net::http_request(node.host, node.port, "POST", "/api/v1/readings", ndjson, res, err));
  INFO(res.body);
  REQUIRE(res.status == 200);
  CHECK(json::parse(res.body)["accepted"] == 2);
  CHECK(aggregate(node, "p-1", "t")["sum"] == 4.0);

  std::string bad = R"([{"device":"p-1","seq":3,"values":{"t":1}},{"device":"p-1","seq":4,"values":{"t":"x"}}])";
  REQUIRE(net::http_request(node.host, node.port, "POST", "/api/v1/readings", bad, res, err));
  CHECK(res.status == 400);
  CHECK(json::parse(res.body)["error"]["code"] == "invalid_reading");
  CHECK(aggregate(node, "p-1", "t")["count"] == 2);

  REQUIRE(net::http_request(node.host, node.port, "GET", "/api/v1/devices/p-1/aggregate?step=1h", "", res, err));
  CHECK(res.status == 400);
  CHECK(json::parse(res.body)["error"]["code"].is_string());
  REQUIRE(net::http_request(node.host, node.port, "GET", "/nope", "", res, err));
  CHECK(res.status == 404);
  REQUIRE(net::http_request(node.host, node.port, "GET", "/metrics", "", res, err));
  CHECK(res.status == 200);
  CHECK(res.body.find("pulse_readings_stored_total 2") != std::string::npos);
  REQUIRE(net::http_request(node.host, node.port, "GET", "/readyz", "", res, err));
  CHECK(res.status == 200);
}

TEST_CASE("a frame over net.max-frame-bytes closes the connection with 1009") {
  test::temp_dir dir;
  auto node = test::start_node(dir.path() + "/db", {"--net.max-frame-bytes=4096"});
  net::ws_blocking_client ws;
  connect(ws, node);
  std::string big = R"({"device":"m","values":{"v":1},"meta":{"pad":")" + std::string(8000, 'x') + "\"}}";
  send(ws, big);
  auto deadline = std::chrono::steady_clock::now() + 5s;
  while (!ws.closed() && std::chrono::steady_clock::now() < deadline) ws.read(100ms);
  REQUIRE(ws.closed());
  CHECK(ws.close_code() == 1009);
  // the node keeps serving others
  net::ws_blocking_client other;
  connect(other, node);
  send(other, R"({"device":"m","seq":1,"values":{"v":1}})");
  CHECK(read_until(other, "ack")["ack"]["seq"] == 1);
}

TEST_CASE("a binary frame gets an error and the connection stays open") {
  test::temp_dir dir;
  auto node = test::start_node(dir.path() + "/db");
  net::ws_blocking_client ws;
  connect(ws, node);
  std::string err;
  REQUIRE(ws.send_binary(std::string("\x00\x01\x02", 3), err));
  CHECK(read_until(ws, "error")["error"]["code"] == "invalid_json");
  send(ws, R"({"device":"b","seq":7,"values":{"v":1}})");
  CHECK(read_until(ws, "ack")["ack"]["seq"] == 7);
}

TEST_CASE("bad configuration stops start-up with a message naming the key") {
  test::temp_dir dir;
  auto ini = dir.path() + "/bad.ini";
  {
    std::ofstream out{ini};
    out << "[net]\nport=0\nbogus=3\n";
  }
  test::child unknown(test::node_binary(), {"--config-file=" + ini, "--storage.path=" + dir.path() + "/db"});
  CHECK(unknown.wait(10s) == 2);
  CHECK(unknown.err().find("net.bogus") != std::string::npos);
  {
    std::ofstream out{ini};
    out << "[net]\nport=\"abc\"\n";
  }
  test::child badval(test::node_binary(), {"--config-file=" + ini, "--storage.path=" + dir.path() + "/db"});
  CHECK(badval.wait(10s) == 2);
  CHECK(badval.err().find("net.port") != std::string::npos);
  test::child range(test::node_binary(), {"--batch.max-readings=0", "--net.port=0",
                                          "--storage.path=" + dir.path() + "/db"});
  CHECK(range.wait(10s) == 2);
  CHECK(range.err().find("batch.max-readings") != std::string::npos);
  // pulse-sim checks its file the same way, including its [global] keys
  {
    std::ofstream out{ini};
    out << "[global]\nrate=5\n";
  }
  test::child sim_bad(test::sim_binary(), {"--config-file=" + ini});
  CHECK(sim_bad.wait(10s) == 2);
  CHECK(sim_bad.err().find("rate") != std::string::npos);
  // the shipped config file is valid
  test::child shipped(test::node_binary(), {"--config-file=" + test::source_dir() + "/configs/pulse-node.ini",
                                            "--net.port=0", "--storage.path=" + dir.path() + "/db2"});
  CHECK_FALSE(shipped.wait_for_line("listening on", 20s).empty());
}

TEST_CASE("pulse-sim meter run: every acked reading is stored (--verify)") {
  test::temp_dir dir;
  auto node = test::start_node(dir.path() + "/db");
  auto report = dir.path() + "/report.json";
  test::child sim(test::sim_binary(),
                  {"--node=127.0.0.1:" + std::to_string(node.port), "--devices=20", "--rate=200",
                   "--batch=5", "--duration=2s", "--verify", "--quiet", "--report=" + report});
  int rc = sim.wait(60s);
  INFO(sim.out() << sim.err());
  REQUIRE(rc == 0);
  std::ifstream in{report};
  auto j = json::parse(in);
  CHECK(j["acked"].get<std::uint64_t>() > 1000);
  CHECK(j["acked"] == j["sent"]);
  CHECK(j["verify"]["mismatches"] == 0);
}

TEST_CASE("pulse-sim replays the OCPP spreadsheet and every sampled value is stored") {
  auto xlsx = test::source_dir() + "/tests/data/meter_values_dump_10k.xlsx";
  INFO(xlsx);
  REQUIRE(std::filesystem::exists(xlsx));
  test::temp_dir dir;
  auto node = test::start_node(dir.path() + "/db");
  auto report = dir.path() + "/report.json";
  test::child sim(test::sim_binary(), {"replay", xlsx, "--node=127.0.0.1:" + std::to_string(node.port),
                                       "--verify", "--quiet", "--report=" + report});
  int rc = sim.wait(300s);
  INFO(sim.out() << sim.err());
  REQUIRE(rc == 0);
  std::ifstream in{report};
  auto j = json::parse(in);
  CHECK(j["devices"] == 53);
  CHECK(j["verify"]["mismatches"] == 0);
  CHECK(j["verify"]["checked"].get<int>() > 53);
}

TEST_CASE("subscribers get a snapshot, then live updates with latency_ms") {
  test::temp_dir dir;
  auto node = test::start_node(dir.path() + "/db");
  net::ws_blocking_client device, watcher;
  connect(device, node);
  connect(watcher, node);
  send(device, R"({"device":"battery:1:data","seq":1,"ts":1731801600000,"values":{"voltage":48.1}})");
  read_until(device, "ack");
  send(watcher, R"({"subscribe":["battery:*"]})");
  auto snap = read_until(watcher, "snapshot")["snapshot"];
  REQUIRE(snap.contains("battery:1:data"));
  CHECK(snap["battery:1:data"]["timestamp"] == 1731801600000);
  CHECK(snap["battery:1:data"]["voltage"] == 48.1);
  send(device, R"({"device":"battery:1:data","seq":2,"ts":1731801601000,"values":{"voltage":48.3}})");
  auto upd = read_until(watcher, "update")["update"]["battery:1:data"];
  CHECK(upd["timestamp"] == 1731801601000);
  CHECK(upd["voltage"] == 48.3);
  CHECK(upd["latency_ms"].get<std::int64_t>() >= 0);
  // a device outside the subscription is not pushed; after unsubscribe nothing is
  send(device, R"({"device":"meter-9","seq":1,"values":{"v":1}})");
  read_until(device, "ack");
  send(watcher, R"({"unsubscribe":["battery:*"]})");
  send(device, R"({"device":"battery:1:data","seq":3,"ts":1731801602000,"values":{"voltage":48.4}})");
  read_until(device, "ack");
  auto extra = watcher.read(500ms);
  CHECK_FALSE(extra.has_value());
}
