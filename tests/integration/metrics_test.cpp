// Integration: /metrics of a real node as Prometheus and OpenMetrics scrapers
// read it, and the node's log lines (UTC, text or JSON, peer misbehaviour
// logged at most once a second).

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <signal.h>

#include <ctime>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "net/http_client.hpp"
#include "net/ws_client.hpp"
#include "tests/support/process.hpp"
#include "tests/support/ws_helpers.hpp"

using namespace pulse;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

// One scrape: every sample (name with labels -> value) and every family's
// HELP and TYPE.
struct scrape {
  std::map<std::string, double> samples;
  std::map<std::string, std::string> types;  // family -> type
  std::set<std::string> helps;
  std::vector<std::string> problems;

  double value(const std::string& series) const {
    auto it = samples.find(series);
    return it == samples.end() ? -1 : it->second;
  }
};

scrape get_metrics(const test::node_process& n) {
  net::http_response res;
  std::string err;
  REQUIRE(net::http_request(n.host, n.port, "GET", "/metrics", "", res, err));
  REQUIRE(res.status == 200);
  scrape s;
  std::istringstream in{res.body};
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    std::istringstream words{line};
    if (line.rfind("# HELP ", 0) == 0) {
      std::string hash, help, name;
      words >> hash >> help >> name;
      if (!s.helps.insert(name).second) s.problems.push_back("two HELP lines for " + name);
      continue;
    }
    if (line.rfind("# TYPE ", 0) == 0) {
      std::string hash, type_word, name, type;
      words >> hash >> type_word >> name >> type;
      if (!s.types.emplace(name, type).second) s.problems.push_back("two TYPE lines for " + name);
      continue;
    }
    auto space = line.rfind(' ');
    auto series = line.substr(0, space);
    auto name = series.substr(0, series.find('{'));
    // The family a sample belongs to: histograms add _bucket, _sum, _count.
    std::string family = name;
    for (const char* suffix : {"_bucket", "_sum", "_count"}) {
      std::string sfx = suffix;
      if (name.size() > sfx.size() && name.compare(name.size() - sfx.size(), sfx.size(), sfx) == 0 &&
          s.types.count(name.substr(0, name.size() - sfx.size())) &&
          s.types[name.substr(0, name.size() - sfx.size())] == "histogram")
        family = name.substr(0, name.size() - sfx.size());
    }
    if (!s.types.count(family)) s.problems.push_back(name + " has no TYPE before its samples");
    if (!s.helps.count(family)) s.problems.push_back(name + " has no HELP before its samples");
    if (!s.samples.emplace(series, std::stod(line.substr(space + 1))).second)
      s.problems.push_back("sample twice: " + series);
  }
  return s;
}

void get(const test::node_process& n, const std::string& target, int status) {
  net::http_response res;
  std::string err;
  REQUIRE(net::http_request(n.host, n.port, "GET", target, "", res, err));
  CHECK(res.status == status);
}

}  // namespace

TEST_CASE("/metrics: every family has HELP and TYPE, names are unique, the new families move") {
  test::temp_dir dir;
  auto node = test::start_node(dir.path() + "/db");
  auto before = get_metrics(node);
  for (auto& p : before.problems) FAIL_CHECK(p);
  CHECK(before.problems.empty());

  // No OpenMetrics clash: a counter family `x_total` is `x`, so no other
  // family may be called `x` (pulse_connections was, next to pulse_connections_total).
  for (auto& [family, type] : before.types) {
    if (type != "counter") continue;
    INFO(family);
    CHECK(family.size() > 6);
    CHECK(family.compare(family.size() - 6, 6, "_total") == 0);
    CHECK(before.types.count(family.substr(0, family.size() - 6)) == 0);
  }
  CHECK(before.types.count("pulse_connections") == 0);
  CHECK(before.types["pulse_connections_open"] == "gauge");

  // Process and build families.
  CHECK(before.types["process_cpu_seconds_total"] == "counter");
  CHECK(before.value("process_resident_memory_bytes") > 1e6);
  CHECK(before.value("process_open_fds") >= 5);
  CHECK(before.value("process_max_fds") >= before.value("process_open_fds"));
  auto now = static_cast<double>(std::time(nullptr));
  CHECK(before.value("process_start_time_seconds") > now - 600);
  CHECK(before.value("process_start_time_seconds") <= now + 1);
  bool build_info = false;
  for (auto& [series, v] : before.samples)
    if (series.rfind("pulse_build_info{version=\"", 0) == 0 && v == 1) build_info = true;
  CHECK(build_info);
  // RocksDB's gauges, L0 files among them, per column family.
  CHECK(before.types["pulse_rocksdb_l0_files"] == "gauge");
  CHECK(before.value("pulse_rocksdb_l0_files{cf=\"readings\"}") >= 0);
  CHECK(before.value("pulse_rocksdb_estimate_num_keys{cf=\"meta\"}") >= 0);

  // Traffic: readings acked over a WebSocket, a few HTTP requests.
  net::ws_blocking_client ws;
  test::connect(ws, node);
  std::string err;
  for (int seq = 1; seq <= 5; ++seq) {
    REQUIRE(ws.send_text(R"({"device":"met-1","seq":)" + std::to_string(seq) + R"(,"values":{"v":1}})", err));
    CHECK(test::read_until(ws, "ack")["ack"]["seq"] == seq);
  }
  get(node, "/healthz", 200);
  get(node, "/api/v1/devices/met-1", 200);
  get(node, "/api/v1/devices/met-1/aggregate?metric=v", 200);
  get(node, "/api/v1/nothing", 404);
  auto after = get_metrics(node);
  CHECK(after.problems.empty());
  CHECK(after.value("pulse_connections_open") == 1);
  CHECK(after.value("pulse_ack_latency_seconds_count") >= before.value("pulse_ack_latency_seconds_count") + 5);
  CHECK(after.value("pulse_ack_latency_seconds_sum") > 0);
  CHECK(after.value("pulse_ack_latency_seconds_bucket{le=\"+Inf\"}") ==
        after.value("pulse_ack_latency_seconds_count"));
  for (auto route : {"healthz", "device", "device_aggregate", "other", "metrics"}) {
    INFO(route);
    auto series = std::string("pulse_http_request_duration_seconds_count{route=\"") + route + "\"}";
    CHECK(after.value(series) >= before.value(series) + 1);
  }
  CHECK(after.value("process_cpu_seconds_total") >= before.value("process_cpu_seconds_total"));
  CHECK(after.value("process_cpu_seconds_total") > 0);
}

TEST_CASE("logs are in UTC with the zone, log.format=json gives one JSON object a line, refusals are rate-limited") {
  test::temp_dir dir;
  SECTION("text") {
    auto node = test::start_node(dir.path() + "/db", {"--log.level=info"});
    node.proc->stop(SIGTERM, 30s);
    std::istringstream lines{node.proc->err()};
    std::string line;
    std::size_t n = 0;
    std::regex utc{R"(^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (info|warning|error|debug) .+)"};
    while (std::getline(lines, line)) {
      INFO(line);
      CHECK(std::regex_match(line, utc));
      ++n;
    }
    CHECK(n >= 2);
  }
  SECTION("json, with 50 bad frames from one client logged at most a few times") {
    auto node = test::start_node(dir.path() + "/db", {"--log.format=json", "--log.level=info"});
    net::ws_blocking_client ws;
    test::connect(ws, node);
    std::string err;
    for (int i = 0; i < 50; ++i) {
      REQUIRE(ws.send_text(R"({"device":"bad\"dev","values":{"v":1}})", err));
      CHECK(test::read_until(ws, "error")["error"]["code"] == "invalid_reading");
    }
    node.proc->stop(SIGTERM, 30s);
    std::istringstream lines{node.proc->err()};
    std::string line;
    std::size_t n = 0, refusals = 0;
    while (std::getline(lines, line)) {
      INFO(line);
      auto j = json::parse(line, nullptr, false);
      REQUIRE_FALSE(j.is_discarded());
      auto ts = j["ts"].get<std::string>();
      CHECK(ts.size() == 24);
      CHECK(ts.back() == 'Z');
      CHECK(j["level"].is_string());
      if (j["msg"].get<std::string>().find("refused") != std::string::npos) ++refusals;
      ++n;
    }
    CHECK(n >= 2);
    CHECK(refusals >= 1);   // logged...
    CHECK(refusals <= 10);  // ...but not 50 times
  }
}
