// Integration: a node whose device cache (storage.device-cache-bytes) holds
// far fewer devices than write to it: states are evicted and read back, and
// last_seq, dedupe and aggregates stay exact; /metrics shows the cache.

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <string>
#include <thread>

#include "tests/support/http.hpp"
#include "tests/support/process.hpp"

using namespace pulse;
using namespace std::chrono_literals;
using nlohmann::json;
using test::http;

namespace {

constexpr std::int64_t t0 = 1767225600000;  // 2026-01-01T00:00:00Z, an hour boundary

std::string reading(int d, int seq, double v) {
  return R"({"device":"dc-)" + std::to_string(d) + R"(","seq":)" + std::to_string(seq) +
         R"(,"ts":)" + std::to_string(t0 + seq * 60'000 + d) + R"(,"values":{"v":)" +
         std::to_string(v) + "}}";
}

}  // namespace

TEST_CASE("device cache: 3,000 devices through a 64 KiB cache keep exact last_seq, dedupe and "
          "aggregates", "[integration][cardinality]") {
  test::temp_dir dir;
  auto node = test::start_node(dir.path() + "/db", {"--storage.device-cache-bytes=65536",
                                                    "--storage.head-max-age=20ms",
                                                    "--storage.shards=2"});
  constexpr int devices = 3000, rounds = 4;
  for (int round = 1; round <= rounds; ++round) {
    std::string body = "[";
    for (int d = 0; d < devices; ++d) {
      if (d) body += ',';
      // The previous round's reading again (a duplicate: acked, not stored) ...
      if (round > 1) body += reading(d, round - 1, 1000.0) + ',';
      body += reading(d, round, round);  // ... and this round's
    }
    body += ']';
    auto res = http(node.port, "POST", "/api/v1/readings", body);
    INFO(res.body.substr(0, 300));
    REQUIRE(res.status == 200);
    std::this_thread::sleep_for(100ms);  // past head-max-age: checkpointed, cache swept
  }
  CHECK(test::metric(node.port, "pulse_device_cache_evictions_total") > devices);
  CHECK(test::metric(node.port, "pulse_device_cache_bytes") <= 65536);
  CHECK(test::metric(node.port, "pulse_device_cache_devices") < devices);

  for (int d : {0, 1, 1234, 2999}) {
    auto id = "dc-" + std::to_string(d);
    auto rec = json::parse(http(node.port, "GET", "/api/v1/devices/" + id).body);
    CHECK(rec["last_seq"] == rounds);
    auto agg = json::parse(http(node.port, "GET",
                                "/api/v1/devices/" + id + "/aggregate?metric=v&fn=count,sum,max&from=" +
                                  std::to_string(t0) + "&to=" + std::to_string(t0 + 3'600'000))
                             .body);
    REQUIRE(agg["buckets"].size() == 1);
    CHECK(agg["buckets"][0]["count"] == rounds);
    CHECK(agg["buckets"][0]["sum"] == rounds * (rounds + 1) / 2);
    CHECK(agg["buckets"][0]["max"] == rounds);  // no duplicate (1000) stored
  }
  // A reading without seq continues from the stored last_seq of an evicted device.
  auto res = http(node.port, "POST", "/api/v1/readings",
                  R"({"device":"dc-5","ts":)" + std::to_string(t0 + 3'000'000) + R"(,"values":{"v":1}})");
  REQUIRE(res.status == 200);
  CHECK(json::parse(res.body)["acks"][0]["seq"] == rounds + 1);
  // The fleet sees every device once per round.
  auto fleet = json::parse(http(node.port, "GET", "/api/v1/aggregate?metric=v&fn=count&prefix=dc-&from=" +
                                  std::to_string(t0) + "&to=" + std::to_string(t0 + 3'600'000))
                             .body);
  REQUIRE(fleet["buckets"].size() == 1);
  CHECK(fleet["buckets"][0]["count"] == devices * rounds + 1);
}
