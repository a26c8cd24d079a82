// pulse-sim's battery and host profiles, --phases and --subscribe against a
// real node; the dashboard's files served by the node.

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <fstream>
#include <iterator>

#include "net/http_client.hpp"
#include "tests/support/process.hpp"

using namespace pulse;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

net::http_response get(const test::node_process& n, const std::string& target) {
  net::http_response res;
  std::string err;
  REQUIRE(net::http_request(n.host, n.port, "GET", target, "", res, err));
  return res;
}

json get_json(const test::node_process& n, const std::string& target) {
  auto res = get(n, target);
  INFO(target << " -> " << res.status << " " << res.body);
  REQUIRE(res.status == 200);
  auto j = json::parse(res.body, nullptr, false);
  REQUIRE_FALSE(j.is_discarded());
  return j;
}

json run_sim(const test::node_process& node, const std::string& dir, std::vector<std::string> args) {
  auto report = dir + "/report.json";
  args.push_back("--node=127.0.0.1:" + std::to_string(node.port));
  args.push_back("--quiet");
  args.push_back("--report=" + report);
  test::child sim(test::sim_binary(), args);
  int rc = sim.wait(120s);
  INFO(sim.out() << sim.err());
  REQUIRE(rc == 0);
  std::ifstream in{report};
  return json::parse(in);
}

}  // namespace

TEST_CASE("pulse-sim battery profile: values in range, stored, pushed to --subscribe dashboards") {
  test::temp_dir dir;
  auto node = test::start_node(dir.path() + "/db");
  auto j = run_sim(node, dir.path(), {"--profile=battery", "--devices=5", "--rate=20", "--batch=2",
                                      "--duration=3s", "--jitter=0.2", "--subscribe=2", "--verify"});
  CHECK(j["profile"] == "battery");
  CHECK(j["acked"].get<std::uint64_t>() >= 50);
  CHECK(j["acked"] == j["sent"]);
  CHECK(j["verify"]["mismatches"] == 0);
  CHECK(j["verify"]["checked"] == 25);  // 5 devices x 5 metrics
  // both dashboards saw the devices' updates, with latencies
  auto& push = j["push"];
  CHECK(push["opened"] == 2);
  CHECK(push["updates"].get<std::uint64_t>() >= 2 * 5);
  CHECK(push["latency_ms"]["count"].get<std::uint64_t>() > 0);
  CHECK(push["latency_ms"]["p50"].get<double>() >= 0);
  CHECK(push["latency_ms"]["p99"].get<double>() >= push["latency_ms"]["p50"].get<double>());
  CHECK(push["latency_ms"]["max"].get<double>() >= push["latency_ms"]["p99"].get<double>());
  CHECK(push["problems"].empty());
  // the per-second series adds up to the totals
  std::uint64_t acked = 0, pushed = 0;
  for (auto& row : j["series"]) {
    acked += row["acked"].get<std::uint64_t>();
    pushed += row["push_latency_ms"]["count"].get<std::uint64_t>();
  }
  CHECK(acked == j["acked"].get<std::uint64_t>());
  CHECK(pushed == push["latency_ms"]["count"].get<std::uint64_t>());
  CHECK(j["series"].size() >= 3);
  // bench/plot draws this real report: throughput, ack and push latency lines
  test::child plot("/usr/bin/python3", {test::source_dir() + "/bench/plot", dir.path() + "/report.json",
                                        dir.path() + "/report.svg"});
  REQUIRE(plot.wait(60s) == 0);
  std::ifstream svg_in{dir.path() + "/report.svg"};
  std::string svg{std::istreambuf_iterator<char>(svg_in), {}};
  CHECK(svg.find("push p99") != std::string::npos);
  CHECK(svg.find("<polyline") != std::string::npos);

  auto d = get_json(node, "/api/v1/devices/sim-battery-0");
  auto& v = d["latest"]["values"];
  for (auto m : {"voltage", "current", "temperature", "state_of_charge", "state_of_health"})
    REQUIRE(v.contains(m));
  CHECK(v["voltage"].get<double>() >= 0);
  CHECK(v["voltage"].get<double>() <= 600);
  CHECK(v["current"].get<double>() >= -200);
  CHECK(v["current"].get<double>() <= 200);
  CHECK(v["state_of_charge"].get<double>() >= 0);
  CHECK(v["state_of_charge"].get<double>() <= 100);
  CHECK(v["state_of_health"].get<double>() >= 0);
  CHECK(v["state_of_health"].get<double>() <= 100);
  // every stored reading in range, not only the latest
  for (auto [metric, lo, hi] : {std::tuple{"voltage", 0.0, 600.0}, {"current", -200.0, 200.0},
                                {"state_of_charge", 0.0, 100.0}, {"state_of_health", 0.0, 100.0}}) {
    auto a = get_json(node, std::string("/api/v1/aggregate?metric=") + metric + "&prefix=sim-battery-&fn=min,max,count");
    REQUIRE(a["buckets"].size() == 1);
    CHECK(a["buckets"][0]["min"].get<double>() >= lo);
    CHECK(a["buckets"][0]["max"].get<double>() <= hi);
  }
}

TEST_CASE("pulse-sim host profile: this machine's /proc figures once a second, OS and CPU as meta") {
  test::temp_dir dir;
  auto node = test::start_node(dir.path() + "/db");
  auto j = run_sim(node, dir.path(), {"--profile=host", "--devices=2", "--duration=3s", "--verify"});
  CHECK(j["verify"]["mismatches"] == 0);
  // one reading a second per device: 3 s gives 3 or 4 (the first at once)
  CHECK(j["acked"].get<std::uint64_t>() >= 2 * 2);
  CHECK(j["acked"].get<std::uint64_t>() <= 2 * 5);
  auto d = get_json(node, "/api/v1/devices/sim-host-1");
  auto& v = d["latest"]["values"];
  CHECK(v["cpu_load"].get<double>() >= 0);
  CHECK(v["cpu_load"].get<double>() <= 100);
  CHECK(v["mem_total"].get<double>() > 0);
  CHECK(v["mem_used"].get<double>() <= v["mem_total"].get<double>());
  CHECK(v["mem_free"].get<double>() <= v["mem_total"].get<double>());
  CHECK(v["uptime"].get<double>() > 0);
  auto& meta = d["meta"];
  INFO(meta.dump());
  CHECK(meta["os"].is_string());
  CHECK(meta["kernel"].is_string());
  CHECK(meta["cpus"].get<int>() >= 1);
}

TEST_CASE("pulse-sim --phases ramps the rate, and bad profile, phases and jitter are refused") {
  test::temp_dir dir;
  auto node = test::start_node(dir.path() + "/db");
  // 0 -> 40 readings/s over 2 s, then 40/s for 1 s: 80 readings per device at most
  auto j = run_sim(node, dir.path(), {"--devices=3", "--phases=0:40:2s,40:40:1s", "--verify"});
  CHECK(j["phases"].size() == 2);
  auto acked = j["acked"].get<std::uint64_t>();
  CHECK(acked <= 3 * 82);
  CHECK(acked >= 3 * 20);
  CHECK(j["verify"]["mismatches"] == 0);
  // the ramp: the first second sends less than the last full one
  auto& s = j["series"];
  REQUIRE(s.size() >= 3);
  CHECK(s[0]["acked"].get<std::uint64_t>() < s[2]["acked"].get<std::uint64_t>());

  for (std::vector<std::string> bad : {std::vector<std::string>{"--profile=toaster"},
                                       {"--phases=1:2"}, {"--phases=1:2:3s,"}, {"--jitter=2"},
                                       {"--subscribe=100000"}}) {
    test::child sim(test::sim_binary(), bad);
    CHECK(sim.wait(20s) == 2);
    INFO(sim.err());
    CHECK_FALSE(sim.err().empty());
  }
}

TEST_CASE("the dashboard's files are served by the node itself") {
  test::temp_dir dir;
  auto node = test::start_node(dir.path() + "/db");
  auto page = get(node, "/");
  CHECK(page.status == 200);
  CHECK(page.body.find("<script src=\"/app.js\">") != std::string::npos);
  auto js = get(node, "/app.js");
  CHECK(js.status == 200);
  CHECK(js.body.find("subscribe") != std::string::npos);
  CHECK(js.content_type.find("javascript") != std::string::npos);
  CHECK(page.content_type.find("text/html") != std::string::npos);
  CHECK(get(node, "/style.css").status == 200);
  CHECK(get(node, "/nope.js").status == 404);
  // never HTML from data: the page writes ids, metrics and meta as text only
  CHECK(js.body.find("innerHTML") == std::string::npos);
  CHECK(js.body.find("insertAdjacentHTML") == std::string::npos);
}

TEST_CASE("pulse-sim --source connects from the given local address, and refuses one it cannot use") {
  test::temp_dir dir;
  auto node = test::start_node(dir.path() + "/db");
  // Another loopback address: works, every reading stored.
  auto j = run_sim(node, dir.path(), {"--source=127.0.0.2", "--devices=3", "--rate=20",
                                      "--duration=1s", "--verify"});
  CHECK(j["acked"].get<std::uint64_t>() > 0);
  CHECK(j["verify"]["mismatches"] == 0);
  // An address of no local interface (TEST-NET-1): no connection can be
  // made from it, the devices give up, the run fails and says why.
  {
    test::child sim(test::sim_binary(),
                    {"--node=127.0.0.1:" + std::to_string(node.port), "--source=192.0.2.1",
                     "--devices=1", "--duration=1s", "--drain=1s", "--reconnect-min=10ms",
                     "--reconnect-max=20ms", "--reconnect-attempts=2", "--quiet"});
    int rc = sim.wait(60s);
    INFO(sim.out() << sim.err());
    CHECK(rc != 0);
    CHECK(rc != 2);
    CHECK((sim.out() + sim.err()).find("192.0.2.1") != std::string::npos);
  }
  test::child bad(test::sim_binary(), {"--node=127.0.0.1:1", "--source=not-an-address"});
  CHECK(bad.wait(20s) == 2);
  CHECK(bad.err().find("--source") != std::string::npos);
}
