// Integration: cluster.replicas=2 on three real nodes (docs/cluster.md).
// A reading is acked only once it is stored on both of its device's
// replicas; answers count it once on every node; a subscriber's snapshot
// holds every device and it gets each update once; and with one member killed under load the survivors keep
// acking, pulse-sim --verify finds every acked reading, and the answers stay
// complete ("partial":false) while it is down and after it is back.

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <set>

#include "actors/routing.hpp"
#include "net/ws_client.hpp"
#include "tests/integration/cluster_support.hpp"
#include "tests/support/ws_helpers.hpp"

using namespace pulse;
using namespace pulse::test::cluster;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

json get_json(const member& m, const std::string& target) {
  auto res = try_get(m.http_port, target, 20s);
  REQUIRE(res);
  INFO(target << " on " << m.name << ": " << res->body.substr(0, 500));
  REQUIRE(res->status == 200);
  return json::parse(res->body);
}

const std::vector<std::string> two_replicas = {"--cluster.replicas=2"};

}  // namespace

TEST_CASE("cluster.replicas=2: each reading on two members before its ack, counted once, pushed once",
          "[cluster]") {
  trio t{two_replicas};
  constexpr int devices = 12;
  constexpr int readings = 4;
  std::vector<route_member> members;
  for (auto& n : t.nodes) members.push_back({device_hash(n.name), 2});
  std::vector<std::size_t> holders;
  for (int d = 0; d < devices; ++d) {
    auto device = "rep-" + std::to_string(d);
    auto& entry = t[static_cast<std::size_t>(d % 3)];
    net::ws_blocking_client ws;
    test::connect(ws, as_process(entry));
    std::string err;
    for (int s = 1; s <= readings; ++s)
      REQUIRE(ws.send_text(R"({"device":")" + device + R"(","seq":)" + std::to_string(s) +
                             R"(,"ts":1731801600000,"values":{"v":)" + std::to_string(s) + "}}",
                           err));
    std::uint64_t acked = 0;
    while (acked < readings) acked = test::read_until(ws, "ack")["ack"]["seq"].get<std::uint64_t>();
    // Acked means durable on both replicas (the two members of highest
    // rendezvous weight), and on no other member.
    replicas_of(device, members, 2, holders);
    REQUIRE(holders.size() == 2);
    for (std::size_t i = 0; i < 3; ++i) {
      bool holder = std::find(holders.begin(), holders.end(), i) != holders.end();
      INFO(device << " entered at " << entry.name << ", asking " << t[i].name);
      CHECK(stored_here(t[i], device) == (holder ? readings : 0));
    }
  }
  // Every node answers with each reading once, not once per replica.
  for (auto& n : t.nodes) {
    auto fleet = get_json(n, "/api/v1/aggregate?metric=v&prefix=rep-&from=1731801600000&to=1731801600001&fn=count,sum");
    CHECK(fleet["partial"] == false);
    REQUIRE(fleet["buckets"].size() == 1);
    CHECK(fleet["buckets"][0]["count"] == devices * readings);
    CHECK(fleet["buckets"][0]["sum"] == devices * (1 + 2 + 3 + 4));
    auto grouped = get_json(n, "/api/v1/aggregate?metric=v&prefix=rep-&group_by=device&from=1731801600000&to=1731801600001&fn=count");
    REQUIRE(grouped["groups"].size() == devices);
    for (auto& g : grouped["groups"]) CHECK(g["buckets"][0]["count"] == readings);
    auto one = get_json(n, "/api/v1/devices/rep-3/aggregate?metric=v&from=1731801600000&to=1731801600001");
    CHECK(one["buckets"][0]["count"] == readings);
    CHECK(one["buckets"][0]["max"] == 4);
    // Raw readings: each once, in order, paged across the members by cursor.
    std::vector<std::uint64_t> seqs;
    std::string cursor;
    for (int page = 0; page < 4; ++page) {
      auto r = get_json(n, "/api/v1/devices/rep-3/readings?from=1731801600000&to=1731801600001&limit=3" +
                             (cursor.empty() ? std::string() : "&cursor=" + cursor));
      CHECK(r["partial"] == false);
      for (auto& x : r["readings"]) {
        seqs.push_back(x["seq"].get<std::uint64_t>());
        CHECK(x["values"]["v"] == x["seq"]);
      }
      if (r["next_cursor"].is_null()) break;
      cursor = r["next_cursor"].get<std::string>();
    }
    CHECK(seqs == std::vector<std::uint64_t>{1, 2, 3, 4});
  }
  {
    auto res = try_get(t[1].http_port, "/api/v1/devices/no-such-device/readings");
    REQUIRE(res);
    CHECK(res->status == 404);
  }

  // A subscriber on node-a gets each update once, although two members
  // store (and flush) every reading.
  net::ws_blocking_client sub;
  test::connect(sub, as_process(t[0]));
  std::string err;
  REQUIRE(sub.send_text(R"({"subscribe":["rep-*"]})", err));
  // The snapshot holds every device, wherever its replicas are, with its
  // latest values.
  auto snap = test::read_until(sub, "snapshot")["snapshot"];
  CHECK(snap.size() == devices);
  for (auto& [device, v] : snap.items()) {
    INFO(device);
    CHECK(v["v"] == readings);
  }
  {
    net::ws_blocking_client exact;
    test::connect(exact, as_process(t[2]));
    REQUIRE(exact.send_text(R"({"subscribe":["rep-1","rep-2","no-such-device"]})", err));
    auto s = test::read_until(exact, "snapshot")["snapshot"];
    CHECK(s.size() == 2);
    CHECK(s["rep-1"]["v"] == readings);
    CHECK(s["rep-2"]["v"] == readings);
  }
  net::ws_blocking_client writer;
  test::connect(writer, as_process(t[1]));
  // Members learn of the subscriber with their next heartbeats: send every
  // device a reading until each has had an update (bounded), then one more
  // reading each (v=100) and count their updates.
  std::map<std::string, int> updates;  // device -> updates with v == 100
  std::set<std::string> seen;
  auto read_updates = [&](std::chrono::milliseconds span) {
    auto until = std::chrono::steady_clock::now() + span;
    while (std::chrono::steady_clock::now() < until) {
      auto msg = sub.read(50ms);
      if (!msg) continue;
      auto j = json::parse(*msg, nullptr, false);
      if (j.is_discarded() || !j.contains("update")) continue;
      for (auto& [device, v] : j["update"].items()) {
        seen.insert(device);
        if (v.value("v", 0.0) == 100) ++updates[device];
      }
    }
  };
  auto send_all = [&](int seq, int v) {
    for (int d = 0; d < devices; ++d)
      REQUIRE(writer.send_text(R"({"device":"rep-)" + std::to_string(d) + R"(","seq":)" +
                                 std::to_string(seq) + R"(,"values":{"v":)" + std::to_string(v) +
                                 "}}",
                               err));
  };
  for (int s = readings + 1; s < readings + 40 && seen.size() < devices; ++s) {
    send_all(s, 1);
    read_updates(300ms);
  }
  REQUIRE(seen.size() == devices);
  read_updates(300ms);
  send_all(100, 100);
  read_updates(1500ms);
  CHECK(updates.size() == devices);
  for (auto& [device, n] : updates) {
    INFO(device);
    CHECK(n == 1);
  }
}

TEST_CASE("cluster.replicas=2: kill -9 of a member under load loses no acked reading and answers stay complete",
          "[cluster]") {
  trio t{two_replicas};
  // Every reading acked across the kill, none waiting 5 s; --verify asks
  // node-a for every device's count and sum while node-c is still down: a
  // device one of whose replicas was node-c is answered from the other.
  auto r = sim_across_kill(t, {"--verify"});
  CHECK(r["verify"]["mismatches"] == 0);
  CHECK(r["verify"]["checked"].get<std::uint64_t>() > 0);

  auto target = "/api/v1/aggregate?metric=voltage&prefix=sim-meter-&group_by=device&fn=count&from=0&to=" +
                std::to_string(test::durable::now_ms() + 3'600'000);
  auto exact = [&](const json& j) {
    CHECK(j["partial"] == false);
    CHECK_FALSE(j.contains("missing"));
    std::map<std::string, std::uint64_t> stored;
    for (auto& g : j["groups"]) stored[g["device"]] = g["buckets"][0]["count"].get<std::uint64_t>();
    for (auto& [device, d] : r["per_device"].items()) {
      INFO(device);
      CHECK(stored[device] == d["acked"].get<std::uint64_t>());
    }
  };
  // Down: complete, from the surviving replicas.
  for (auto i : {0, 1}) exact(get_json(t[i], target));
  // Back (same storage, missing what was written while it was down): still
  // exact, on every node.
  t[2].start();
  wait_state(t[0], "node-c", "up", 10s);
  wait_state(t[2], "node-a", "up", 10s);
  wait_state(t[2], "node-b", "up", 10s);
  for (auto i : {0, 1, 2}) exact(get_json(t[i], target));
}
