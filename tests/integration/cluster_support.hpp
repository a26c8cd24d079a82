#pragma once
// Shared by the cluster integration tests: three (or more) real pulse-node
// processes on loopback, each with its own storage, HTTP port from the OS
// (net.port=0) and a cluster port that was free a moment ago (the node must
// come back on the same one after a restart).

#include <signal.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "net/http_client.hpp"
#include "tests/integration/durable_support.hpp"
#include "tests/support/process.hpp"

namespace pulse::test::cluster {

using namespace std::chrono_literals;
using nlohmann::json;

// Fast membership for tests: a member silent for 1 s is down.
inline const std::vector<std::string> fast_membership = {
  "--cluster.heartbeat-interval=100ms", "--cluster.heartbeat-timeout=1s",
  "--cluster.reconnect-max=500ms"};

struct member {
  std::string name;
  std::string storage;
  std::uint16_t cluster_port = 0;
  std::vector<std::string> seeds;  // host:port
  std::vector<std::string> extra;
  std::unique_ptr<test::child> proc;
  std::uint16_t http_port = 0;

  std::string endpoint() const { return "127.0.0.1:" + std::to_string(cluster_port); }

  void start() {
    std::string seed_list = "[";
    for (auto& s : seeds) seed_list += (seed_list.size() > 1 ? ",\"" : "\"") + s + "\"";
    seed_list += "]";
    std::vector<std::string> args = {"--node.name=" + name, "--net.port=0",
                                     "--storage.path=" + storage, "--log.level=warn",
                                     "--cluster.port=" + std::to_string(cluster_port),
                                     "--cluster.seeds=" + seed_list};
    args.insert(args.end(), fast_membership.begin(), fast_membership.end());
    args.insert(args.end(), extra.begin(), extra.end());
    std::string err;
    for (int attempt = 0; attempt < 5; ++attempt) {
      proc = std::make_unique<test::child>(test::node_binary(), args);
      auto line = proc->wait_for_line("listening on", 20s);
      if (!line.empty()) {
        http_port = static_cast<std::uint16_t>(std::stoi(line.substr(line.rfind(':') + 1)));
        return;
      }
      err = proc->err();
      proc->stop(SIGKILL, 5s);
      // Another process may have taken the cluster port since free_port().
      cluster_port = durable::free_port();
      args[4] = "--cluster.port=" + std::to_string(cluster_port);
      std::this_thread::sleep_for(200ms);
    }
    FAIL("pulse-node " << name << " did not start: " << err);
  }

  int stop(int sig) { return proc->stop(sig, 20s); }
  void signal(int sig) { ::kill(proc->pid(), sig); }
};

// A GET that may fail (the node may be down): nullopt then.
inline std::optional<net::http_response> try_get(std::uint16_t port, const std::string& target,
                                                 std::chrono::milliseconds timeout = 5s) {
  net::http_response res;
  std::string err;
  if (!net::http_request("127.0.0.1", port, "GET", target, "", res, err, timeout))
    return std::nullopt;
  return res;
}

// A member as the WebSocket helpers (tests/support/ws_helpers.hpp) take a node.
inline test::node_process as_process(const member& m) {
  test::node_process p;
  p.port = m.http_port;
  return p;
}

// The node's own record of a device (partials=1: what a member answers a
// coordinator): its last_seq there, 0 if it has none.
inline std::uint64_t stored_here(const member& m, const std::string& device) {
  auto res = try_get(m.http_port, "/api/v1/devices/" + device + "?partials=1");
  REQUIRE(res);
  REQUIRE(res->status == 200);
  auto j = json::parse(res->body);
  return j.value("found", true) ? j["last_seq"].get<std::uint64_t>() : 0;
}

// name -> state, as `m` sees the cluster (empty if it does not answer).
inline std::map<std::string, std::string> states(const member& m) {
  std::map<std::string, std::string> out;
  auto res = try_get(m.http_port, "/api/v1/cluster", 2s);
  if (!res || res->status != 200) return out;
  auto j = json::parse(res->body, nullptr, false);
  if (j.is_discarded()) return out;
  for (auto& x : j["members"]) out[x["name"].get<std::string>()] = x["state"].get<std::string>();
  return out;
}

// Waits (bounded) until `m` sees `who` in state `state`; returns how long it took.
inline std::chrono::milliseconds wait_state(const member& m, const std::string& who,
                                            const std::string& state,
                                            std::chrono::milliseconds timeout) {
  auto t0 = std::chrono::steady_clock::now();
  std::map<std::string, std::string> seen;
  for (;;) {
    seen = states(m);
    if (seen[who] == state) break;
    if (std::chrono::steady_clock::now() - t0 > timeout) {
      std::string all;
      for (auto& [k, v] : seen) all += k + "=" + v + " ";
      FAIL(m.name << " did not see " << who << " " << state << " within " << timeout.count()
                  << " ms; it sees: " << all);
    }
    std::this_thread::sleep_for(20ms);
  }
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                               t0);
}

// Three members a, b, c on loopback: a is the seed of b and c (so c learns of
// b only through gossip). Started and joined on return.
struct trio {
  test::temp_dir dir;
  std::vector<member> nodes;

  explicit trio(std::vector<std::string> extra = {}) {
    for (auto name : {"node-a", "node-b", "node-c"}) {
      member m;
      m.name = name;
      m.storage = dir.path() + "/" + name;
      m.cluster_port = durable::free_port();
      m.extra = extra;
      nodes.push_back(std::move(m));
    }
    nodes[0].start();
    nodes[1].seeds = nodes[2].seeds = {nodes[0].endpoint()};
    nodes[1].start();
    nodes[2].start();
    for (auto& n : nodes)
      for (auto& other : nodes)
        if (&n != &other) wait_state(n, other.name, "up", 15s);
  }

  member& operator[](std::size_t i) { return nodes[i]; }
};

// pulse-sim (20 devices x 20 readings/s for 6 s, plus `extra`) writing to
// node-a while node-c is killed 2 s in, once readings flow (some of them
// owned by it). Checks that every reading sent was acked, none gave up, and
// acks kept coming (none waited 5 s across the kill); returns the report.
inline json sim_across_kill(trio& t, const std::vector<std::string>& extra = {}) {
  auto report = t.dir.path() + "/sim.json";
  std::vector<std::string> args = {"--node=127.0.0.1:" + std::to_string(t[0].http_port),
                                   "--devices=20", "--rate=20", "--batch=1", "--window=100",
                                   "--duration=6s", "--drain=20s", "--reconnect-min=50ms",
                                   "--reconnect-max=1s", "--quiet", "--report=" + report};
  args.insert(args.end(), extra.begin(), extra.end());
  test::child sim{test::sim_binary(), args};
  std::this_thread::sleep_for(2s);
  REQUIRE(t[2].stop(SIGKILL) == 128 + SIGKILL);
  wait_state(t[0], "node-c", "down", 3s);
  REQUIRE(sim.wait(60s) == 0);
  auto r = test::durable::read_report(report);
  INFO(r.dump().substr(0, 2000));
  CHECK(r["acked"].get<std::uint64_t>() > 0);
  CHECK(r["acked"] == r["sent"]);
  CHECK(r["unconfirmed"] == 0);
  CHECK(r["gave_up"] == 0);
  CHECK(r["latency_ms"]["max"].get<double>() < 5000);
  WARN("longest ack across the kill: " << r["latency_ms"]["max"].get<double>() << " ms");
  return r;
}

}  // namespace pulse::test::cluster
