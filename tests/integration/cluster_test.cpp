// Integration: cluster membership between three real pulse-node processes on
// loopback (docs/cluster.md): join through a seed, gossip, heartbeats, down
// detection within cluster.heartbeat-timeout, reconnect with backoff,
// /api/v1/cluster and /readyz.

#include <signal.h>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "tests/integration/cluster_support.hpp"

using namespace pulse;
using namespace pulse::test::cluster;
using namespace std::chrono_literals;
using nlohmann::json;

TEST_CASE("three nodes join through one seed and learn each other by gossip", "[cluster]") {
  trio t;  // returns once every node sees the two others up
  // node-c was only given node-a: it knows node-b from gossip.
  auto res = try_get(t[2].http_port, "/api/v1/cluster");
  REQUIRE(res);
  REQUIRE(res->status == 200);
  auto j = json::parse(res->body);
  CHECK(j["node"] == "node-c");
  CHECK(j["state"] == "joined");
  CHECK(j["live"] == 3);
  CHECK(j["shards"]["live"] == 3 * j["shards"]["per_node"].get<int>());
  std::map<std::string, json> by_name;
  for (auto& m : j["members"]) by_name[m["name"]] = m;
  REQUIRE(by_name.size() == 3);
  CHECK(by_name["node-c"]["state"] == "self");
  CHECK(by_name["node-b"]["cluster"] == t[1].endpoint());
  // Each member says where its HTTP listener is: what a client or operator follows.
  CHECK(by_name["node-a"]["http"] == "127.0.0.1:" + std::to_string(t[0].http_port));
  CHECK(by_name["node-b"]["http"] == "127.0.0.1:" + std::to_string(t[1].http_port));
  for (auto& n : t.nodes) {
    auto ready = try_get(n.http_port, "/readyz");
    REQUIRE(ready);
    CHECK(ready->status == 200);
  }
}

TEST_CASE("a killed member is down at once and a hung one within heartbeat-timeout and both come back",
          "[cluster]") {
  trio t;
  SECTION("kill -9 and restart") {
    REQUIRE(t[1].stop(SIGKILL) == 128 + SIGKILL);
    // The connection drops: down well before the 1 s heartbeat timeout.
    auto took_a = wait_state(t[0], "node-b", "down", 3s);
    auto took_c = wait_state(t[2], "node-b", "down", 3s);
    INFO("down after " << took_a.count() << " / " << took_c.count() << " ms");
    CHECK(took_a < 1000ms);
    CHECK(took_c < 1000ms);
    CHECK(states(t[0])["node-c"] == "up");
    // Same cluster port and storage: the others reconnect (backoff capped at 500 ms).
    t[1].start();
    wait_state(t[0], "node-b", "up", 10s);
    wait_state(t[2], "node-b", "up", 10s);
    wait_state(t[1], "node-c", "up", 10s);
  }
  SECTION("SIGSTOP and SIGCONT") {
    t[2].signal(SIGSTOP);
    auto t0 = std::chrono::steady_clock::now();
    wait_state(t[0], "node-c", "down", 5s);
    auto took = std::chrono::steady_clock::now() - t0;
    wait_state(t[1], "node-c", "down", 5s);
    INFO("down after " << std::chrono::duration_cast<std::chrono::milliseconds>(took).count()
                       << " ms");
    // Not before the timeout (1 s) has passed, and not long after it.
    CHECK(took >= 800ms);
    CHECK(took < 2500ms);
    t[2].signal(SIGCONT);
    wait_state(t[0], "node-c", "up", 10s);
    wait_state(t[1], "node-c", "up", 10s);
  }
}

TEST_CASE("a node whose seeds cannot be reached is not ready and joins when one comes up",
          "[cluster]") {
  test::temp_dir dir;
  member a, b;
  a.name = "node-a";
  a.storage = dir.path() + "/a";
  a.cluster_port = test::durable::free_port();
  b.name = "node-b";
  b.storage = dir.path() + "/b";
  b.cluster_port = test::durable::free_port();
  b.seeds = {a.endpoint()};
  b.start();
  // Not ready all along; the reason is the cluster once the shards are up.
  std::optional<net::http_response> res;
  for (int i = 0; i < 100; ++i) {
    res = try_get(b.http_port, "/readyz");
    REQUIRE(res);
    REQUIRE(res->status == 503);
    if (res->body.find("shards starting") == std::string::npos) break;
    std::this_thread::sleep_for(50ms);
  }
  CHECK(res->body.find("cluster not joined") != std::string::npos);
  auto j = json::parse(try_get(b.http_port, "/api/v1/cluster")->body);
  CHECK(j["state"] == "joining");
  a.start();
  wait_state(b, "node-a", "up", 10s);
  wait_state(a, "node-b", "up", 10s);
  res = try_get(b.http_port, "/readyz");
  REQUIRE(res);
  CHECK(res->status == 200);
}

TEST_CASE("a single node answers /api/v1/cluster with itself only", "[cluster]") {
  test::temp_dir dir;
  auto n = test::start_node(dir.path() + "/db");
  auto res = try_get(n.port, "/api/v1/cluster");
  REQUIRE(res);
  REQUIRE(res->status == 200);
  auto j = json::parse(res->body);
  CHECK(j["state"] == "single");
  REQUIRE(j["members"].size() == 1);
  CHECK(j["members"][0]["name"] == "test-node");
  CHECK(j["members"][0]["http"] == "127.0.0.1:" + std::to_string(n.port));
}

TEST_CASE("pulse-node refuses cluster settings that cannot work and names them", "[cluster]") {
  test::temp_dir dir;
  auto db = dir.path() + "/db";
  struct bad {
    std::vector<std::string> args;
    std::string named;
  };
  std::vector<bad> cases = {
    {{"--cluster.seeds=[\"127.0.0.1:7100\"]"}, "cluster.seeds needs cluster.port"},
    {{"--cluster.port=7100", "--cluster.seeds=[\"nohost\"]"}, "\"nohost\" is not host:port"},
    {{"--cluster.port=7100", "--cluster.heartbeat-interval=1s", "--cluster.heartbeat-timeout=1s"},
     "cluster.heartbeat-timeout"},
    {{"--cluster.port=7100", "--cluster.replicas=0"}, "cluster.replicas must be 1 to 5"},
    {{"--cluster.port=7100", "--cluster.replicas=9"}, "cluster.replicas must be 1 to 5"},
    {{"--cluster.replicas=2"}, "cluster.replicas needs cluster.port"},
  };
  for (auto& c : cases) {
    std::vector<std::string> args = {"--net.port=0", "--storage.path=" + db};
    args.insert(args.end(), c.args.begin(), c.args.end());
    test::child p{test::node_binary(), args};
    auto rc = p.wait(20s);
    INFO(c.named << ": " << p.err());
    CHECK(rc == 2);
    CHECK(p.err().find(c.named) != std::string::npos);
  }
}
