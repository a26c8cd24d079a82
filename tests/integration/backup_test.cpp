// Integration: POST /admin/backup under load (issue 11, point 4). A real node
// takes writes from pulse-sim and from a WebSocket writer of the test's own;
// the backup is taken meanwhile; a second node started on the copy must hold
// every reading acked before the backup started (per device last_seq and
// counts), and refused paths and tokens get clear errors.

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "net/http_client.hpp"
#include "net/ws_client.hpp"
#include "tests/support/process.hpp"
#include "tests/support/ws_helpers.hpp"

using namespace pulse;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

net::http_response post(const test::node_process& n, const std::string& target,
                        const std::string& body = "", const std::string& token = "") {
  net::http_response res;
  std::string err;
  std::vector<std::pair<std::string, std::string>> headers;
  if (!token.empty()) headers.emplace_back("Authorization", "Bearer " + token);
  INFO(target);
  REQUIRE(net::http_request(n.host, n.port, "POST", target, body, res, err, 60s,
                            "application/json", headers));
  return res;
}

json get_json(const test::node_process& n, const std::string& target) {
  net::http_response res;
  std::string err;
  REQUIRE(net::http_request(n.host, n.port, "GET", target, "", res, err, 30s));
  INFO(target << " -> " << res.status << " " << res.body.substr(0, 300));
  REQUIRE(res.status == 200);
  return json::parse(res.body);
}

std::int64_t now_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

// Writes batches of 10 readings for a few devices over one WebSocket until
// told to stop, and keeps, per device, the highest seq acked so far.
struct acked_writer {
  static constexpr int devices = 4;
  std::atomic<bool> stop{false};
  std::mutex mtx;
  std::map<std::string, std::uint64_t> acked;
  std::string problem;

  void run(const test::node_process& node) {
    net::ws_blocking_client ws;
    std::string err;
    if (!ws.connect(node.host, node.port, err)) {
      problem = "connect: " + err;
      return;
    }
    std::uint64_t seq[devices] = {};
    // Frames sent and not yet acked: (device, its last seq). Acks are
    // cumulative and may cover several frames of a device.
    std::vector<std::pair<std::string, std::uint64_t>> unacked;
    std::size_t in_flight = 0;
    auto deadline = std::chrono::steady_clock::now() + 60s;  // bounded, whatever happens
    while (std::chrono::steady_clock::now() < deadline && !(stop && in_flight == 0)) {
      while (!stop && in_flight < 8) {
        auto d = in_flight % devices;
        json readings = json::array();
        for (int i = 0; i < 10; ++i)
          readings.push_back({{"seq", ++seq[d]}, {"ts", now_ms()}, {"values", {{"v", 1.0 * seq[d]}}}});
        json frame{{"device", "bk-" + std::to_string(d)}, {"readings", readings}};
        unacked.emplace_back("bk-" + std::to_string(d), seq[d]);
        if (!ws.send_text(frame.dump(), err)) {
          problem = "send: " + err;
          return;
        }
        in_flight = unacked.size();
      }
      auto msg = ws.read(200ms);
      if (!msg) {
        if (ws.closed()) {
          problem = "the node closed the connection";
          return;
        }
        continue;
      }
      auto j = json::parse(*msg, nullptr, false);
      if (j.contains("ack")) {
        auto device = j["ack"]["device"].get<std::string>();
        auto seq_acked = j["ack"]["seq"].get<std::uint64_t>();
        {
          std::lock_guard<std::mutex> g{mtx};
          auto& a = acked[device];
          a = std::max(a, seq_acked);
        }
        unacked.erase(std::remove_if(unacked.begin(), unacked.end(),
                                     [&](const auto& u) { return u.first == device && u.second <= seq_acked; }),
                      unacked.end());
        in_flight = unacked.size();
      } else if (j.contains("error")) {
        problem = "error: " + *msg;
        return;
      }
    }
  }

  std::map<std::string, std::uint64_t> snapshot() {
    std::lock_guard<std::mutex> g{mtx};
    return acked;
  }
};

}  // namespace

TEST_CASE("a backup under load holds every reading acked before it", "[integration][backup]") {
  test::temp_dir dir;
  auto node = test::start_node(dir.path() + "/db");
  auto copy = dir.path() + "/backup-1";

  // Background load on other devices.
  test::child sim(test::sim_binary(), {"--node=127.0.0.1:" + std::to_string(node.port),
                                       "--devices=20", "--rate=0", "--batch=10", "--duration=6s",
                                       "--drain=20s", "--quiet"});
  acked_writer writer;
  std::thread t([&] { writer.run(node); });
  // Let both get going: the writer has acks for every device.
  auto deadline = std::chrono::steady_clock::now() + 30s;
  while (writer.snapshot().size() < acked_writer::devices && writer.problem.empty() &&
         std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(50ms);
  std::this_thread::sleep_for(500ms);

  auto before = writer.snapshot();  // acked before the backup started
  auto res = post(node, "/admin/backup?dir=" + net::url_encode(copy));
  auto during = writer.snapshot();
  writer.stop = true;
  t.join();
  INFO(writer.problem);
  REQUIRE(writer.problem.empty());
  INFO(res.body);
  REQUIRE(res.status == 200);
  auto j = json::parse(res.body);
  CHECK(j["path"] == copy);
  CHECK(j["bytes"].get<std::uint64_t>() > 0);
  CHECK(j["files"].get<std::uint64_t>() > 0);
  REQUIRE(before.size() == acked_writer::devices);
  // Ingest went on while the backup ran? Not guaranteed on a fast machine,
  // so only reported.
  std::uint64_t acked_during = 0;
  for (auto& [d, s] : during) acked_during += s - before[d];
  WARN("readings acked while the backup ran: " << acked_during << "; backup took " << j["ms"]
                                               << " ms, " << j["bytes"] << " bytes");

  // A second node on the copy, while the first still runs.
  auto restored = test::start_node(copy);
  for (auto& [device, seq] : before) {
    INFO(device << " acked up to " << seq << " before the backup");
    auto rec = get_json(restored, "/api/v1/devices/" + device);
    auto last = rec["last_seq"].get<std::uint64_t>();
    CHECK(last >= seq);
    // Every seq from 1 to last_seq is there once: the copy has no holes.
    auto agg = get_json(restored, "/api/v1/devices/" + device +
                                    "/aggregate?metric=v&fn=count,max&from=0&to=" +
                                    std::to_string(now_ms() + 60'000));
    REQUIRE(agg["buckets"].size() == 1);
    CHECK(agg["buckets"][0]["count"] == last);
    CHECK(agg["buckets"][0]["max"] == static_cast<double>(last));
  }
  // The simulated devices are in the copy too.
  auto sims = get_json(restored, "/api/v1/devices?prefix=sim-&limit=1000");
  CHECK(sims["devices"].size() > 0);
  CHECK(sim.wait(60s) == 0);
  INFO(sim.err());
}

TEST_CASE("backup refuses unsafe or existing paths and needs an admin token",
          "[integration][backup]") {
  test::temp_dir dir;
  std::ofstream(dir.path() + "/tokens") << "[admin]\nops-tok = \"\"\n[reader]\nread-tok = \"\"\n";
  auto node = test::start_node(dir.path() + "/db", {"--auth.tokens-file=" + dir.path() + "/tokens"});
  std::filesystem::create_directory(dir.path() + "/exists");

  struct probe {
    std::string target;
    std::string body;
    std::string says;
  };
  const std::string base = "/admin/backup";
  for (auto& p : std::vector<probe>{
         {base, "", "name the backup directory"},
         {base + "?dir=relative/x", "", "absolute path"},
         {base + "?dir=" + net::url_encode(dir.path() + "/a/../b"), "", "'..' segments"},
         {base + "?dir=" + net::url_encode(dir.path() + "/./b"), "", "'.' or '..'"},
         {base + "?dir=" + net::url_encode(dir.path() + "//b"), "", "empty"},
         {base + "?dir=" + net::url_encode(dir.path() + "/b/"), "", "empty"},
         {base + "?dir=" + net::url_encode(dir.path() + "/exists"), "", "already exists"},
         {base + "?dir=" + net::url_encode(dir.path() + "/no/such/parent"), "", "not an existing directory"},
         {base + "?dir=" + net::url_encode(dir.path() + "/db/inside"), "", "outside storage.path"},
         {base + "?dir=" + net::url_encode(dir.path() + "/a") + "%01b", "", "control character"},
         {base + "?dir=/x&dir=/y", "", "duplicate"},
         {base + "?where=/x", "", "unknown query parameter"},
         {base, "{\"dir\":5}", "the body must be"},
         {base, "[\"/x\"]", "the body must be"},
         {base, "not json", "the body must be"},
         {base + "?dir=/tmp/x", "{\"dir\":\"/tmp/y\"}", "once"},
       }) {
    auto res = post(node, p.target, p.body, "ops-tok");
    INFO(p.target << " " << p.body << " -> " << res.body);
    CHECK(res.status == 400);
    auto j = json::parse(res.body, nullptr, false);
    REQUIRE_FALSE(j.is_discarded());
    CHECK(j["error"]["code"] == "bad_request");
    CHECK(j["error"]["message"].get<std::string>().find(p.says) != std::string::npos);
  }
  auto target = base + "?dir=" + net::url_encode(dir.path() + "/ok");
  CHECK(post(node, target).status == 401);
  CHECK(post(node, target, "", "read-tok").status == 401);
  CHECK(post(node, target, "", "wrong").status == 401);
  CHECK_FALSE(std::filesystem::exists(dir.path() + "/ok"));
  // The body form, with the admin token.
  auto res = post(node, base, "{\"dir\":\"" + dir.path() + "/ok\"}", "ops-tok");
  INFO(res.body);
  CHECK(res.status == 200);
  CHECK(std::filesystem::is_directory(dir.path() + "/ok"));
  net::http_response got;
  std::string err;
  REQUIRE(net::http_request(node.host, node.port, "GET", base, "", got, err));
  CHECK(got.status == 405);
  CHECK(got.header("Allow") == "POST, OPTIONS");
}
