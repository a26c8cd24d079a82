// Integration: kill -9 of one of three nodes under simulator load, with
// cluster.replicas=1 (docs/cluster.md; cluster_replicas_test.cpp has 2). The
// survivor the simulator writes to keeps acking (the dead node's devices are
// re-homed to the survivors), no acked reading is lost, and once the dead node
// is back with its storage every acked reading is in the merged answers.

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "tests/integration/cluster_support.hpp"

using namespace pulse;
using namespace pulse::test::cluster;
using namespace std::chrono_literals;
using nlohmann::json;

TEST_CASE("kill -9 of a member under load: survivors keep acking and no acked reading is lost",
          "[cluster]") {
  trio t;
  // Every reading acked across the kill, none waiting 5 s for its ack.
  auto r = sim_across_kill(t);

  // While node-c is down the answer says so; once it is back (same storage)
  // every acked reading is there.
  auto target = "/api/v1/aggregate?metric=voltage&prefix=sim-meter-&group_by=device&fn=count&from=0&to=" +
                std::to_string(test::durable::now_ms() + 3'600'000);
  auto res = try_get(t[0].http_port, target, 20s);
  REQUIRE(res);
  REQUIRE(res->status == 200);
  CHECK(json::parse(res->body)["missing"] == json::array({"node-c"}));
  t[2].start();
  wait_state(t[0], "node-c", "up", 10s);
  res = try_get(t[0].http_port, target, 20s);
  REQUIRE(res);
  REQUIRE(res->status == 200);
  auto j = json::parse(res->body);
  CHECK(j["partial"] == false);
  std::map<std::string, std::uint64_t> stored;
  for (auto& g : j["groups"]) stored[g["device"]] = g["buckets"][0]["count"].get<std::uint64_t>();
  std::uint64_t acked = 0, held = 0;
  for (auto& [device, d] : r["per_device"].items()) {
    INFO(device);
    CHECK(stored[device] >= d["acked"].get<std::uint64_t>());
    acked += d["acked"].get<std::uint64_t>();
    held += stored[device];
  }
  // With one copy per reading, a write the dead node made but could not
  // confirm is written again by the new owner (docs/cluster.md): say how many.
  WARN("acked " << acked << ", stored " << held << " (" << held - acked
                << " stored twice across the kill)");
}
