#pragma once
// Shared by the integration tests that restart nodes and check what a
// pulse-sim run left stored (durability_test.cpp, storage_fault_test.cpp).

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "net/http_client.hpp"
#include "sim/sim.hpp"
#include "tests/support/process.hpp"

namespace pulse::test::durable {

using namespace std::chrono_literals;
using nlohmann::json;

constexpr std::int64_t hour_ms = 3600 * 1000;
constexpr std::size_t sim_devices = 20;

// A port that was free a moment ago: the node must come back on the same one,
// so port 0 (a new port per start) will not do.
inline std::uint16_t free_port() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  bool ok = bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
            getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0;
  close(fd);
  REQUIRE(ok);
  return ntohs(addr.sin_port);
}

// A pulse-node on a fixed port and storage path that can be killed and started again.
struct restartable_node {
  std::string storage;
  std::uint16_t port = 0;
  std::vector<std::string> extra;  // more --key=value
  std::unique_ptr<test::child> proc;

  void start() {
    std::string err;
    std::vector<std::string> args = {"--node.name=durable", "--net.port=" + std::to_string(port),
                                     "--storage.path=" + storage, "--log.level=warn"};
    args.insert(args.end(), extra.begin(), extra.end());
    // A few tries: another process may grab the port between free_port() and here.
    for (int attempt = 0; attempt < 5; ++attempt) {
      proc = std::make_unique<test::child>(test::node_binary(), args);
      if (!proc->wait_for_line("listening on", 20s).empty()) return;
      err = proc->err();
      proc->stop(SIGKILL, 5s);
      std::this_thread::sleep_for(300ms);
    }
    FAIL("pulse-node did not start on port " << port << ": " << err);
  }

  int stop(int sig) { return proc->stop(sig, 20s); }
};


inline json get_json(std::uint16_t port, const std::string& target) {
  net::http_response res;
  std::string err;
  REQUIRE(net::http_request("127.0.0.1", port, "GET", target, "", res, err, 20s));
  INFO(target << " -> " << res.status << " " << res.body.substr(0, 300));
  REQUIRE(res.status == 200);
  auto j = json::parse(res.body, nullptr, false);
  REQUIRE_FALSE(j.is_discarded());
  return j;
}

// The node's last_seq of a device, 0 while it has none stored (404).
inline std::uint64_t stored_last_seq(std::uint16_t port, const std::string& device) {
  net::http_response res;
  std::string err;
  if (!net::http_request("127.0.0.1", port, "GET", "/api/v1/devices/" + device, "", res, err, 5s) ||
      res.status != 200)
    return 0;
  auto j = json::parse(res.body, nullptr, false);
  return j.is_discarded() ? 0 : j.value("last_seq", std::uint64_t{0});
}

// Waits (bounded) until the node holds readings of the first simulated device,
// so that a kill lands in the middle of the run, not before it.
inline void wait_for_progress(std::uint16_t port, std::uint64_t beyond, std::chrono::milliseconds timeout,
                       const std::string& device = "sim-meter-0") {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (stored_last_seq(port, device) <= beyond) {
    REQUIRE(std::chrono::steady_clock::now() < deadline);
    std::this_thread::sleep_for(100ms);
  }
}

inline std::vector<std::string> sim_args(std::uint16_t port, const std::string& report,
                                  const std::string& rate, const std::string& duration,
                                  const std::string& batch = "10",
                                  const std::string& window = "200") {
  return {"--node=127.0.0.1:" + std::to_string(port),
          "--devices=" + std::to_string(sim_devices),
          "--rate=" + rate,
          "--batch=" + batch,
          "--window=" + window,
          "--duration=" + duration,
          "--drain=20s",
          "--reconnect-min=50ms",
          "--reconnect-max=1s",
          "--reconnect-attempts=40",
          "--verify",
          "--quiet",
          "--report=" + report};
}

inline json read_report(const std::string& path) {
  std::ifstream in{path};
  REQUIRE(in);
  auto j = json::parse(in, nullptr, false);
  REQUIRE_FALSE(j.is_discarded());
  return j;
}

// What the node holds of one device, read from the raw readings, page by page.
struct raw_view {
  std::uint64_t readings = 0;
  std::uint64_t distinct = 0;  // distinct seqs
  std::uint64_t max_seq = 0;
  sim::exact_sum voltage;
};

inline raw_view read_raw(std::uint16_t port, const std::string& device, std::int64_t from,
                  std::int64_t to) {
  raw_view v;
  std::set<std::uint64_t> seqs;
  std::string cursor;
  for (int page = 0; page < 200; ++page) {  // 2M readings at most; far above what a run sends
    auto target = "/api/v1/devices/" + device + "/readings?from=" + std::to_string(from) +
                  "&to=" + std::to_string(to) + "&limit=10000";
    if (!cursor.empty()) target += "&cursor=" + net::url_encode(cursor);
    auto j = get_json(port, target);
    for (auto& r : j["readings"]) {
      auto seq = r["seq"].get<std::uint64_t>();
      ++v.readings;
      seqs.insert(seq);
      v.max_seq = std::max(v.max_seq, seq);
      if (r["values"].contains("voltage")) v.voltage.add(r["values"]["voltage"].get<double>());
    }
    if (!j["next_cursor"].is_string()) break;
    cursor = j["next_cursor"].get<std::string>();
    REQUIRE(page < 199);
  }
  v.distinct = seqs.size();
  return v;
}

// Rollups answer whole hours; a window from one hour boundary to another with
// step=1h is served from them, not from raw chunks.
inline std::pair<std::uint64_t, double> rollup_voltage(std::uint16_t port, const std::string& device,
                                                std::int64_t from, std::int64_t to) {
  auto j = get_json(port, "/api/v1/devices/" + device +
                              "/aggregate?metric=voltage&from=" + std::to_string(from) +
                              "&to=" + std::to_string(to) + "&step=1h&fn=count,sum");
  std::uint64_t count = 0;
  sim::exact_sum sum;
  for (auto& b : j["buckets"]) {
    count += b["count"].get<std::uint64_t>();
    sum.add(b["sum"].get<double>());
  }
  return {count, sum.value()};
}

inline std::int64_t now_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

inline void check_run_report(const json& r) {
  INFO(r.dump(2).substr(0, 3000));
  CHECK(r["acked"].get<std::uint64_t>() > 0);
  CHECK(r["acked"] == r["sent"]);
  CHECK(r["unconfirmed"] == 0);
  CHECK(r["rejected"] == 0);
  CHECK(r["gave_up"] == 0);
  CHECK(r["verify"]["mismatches"] == 0);
  CHECK(r["verify"]["checked"] == sim_devices * 4);
  CHECK(r["per_device"].size() == sim_devices);
}


}  // namespace pulse::test::durable
