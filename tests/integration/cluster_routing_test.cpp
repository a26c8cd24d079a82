// Integration: owner routing in a three-node cluster (docs/cluster.md). A
// reading accepted on any node is written by its owner's shard (rendezvous
// over the live members x shards), acked only after that write, stored once;
// the welcome's last_seq is the same whichever node a device says hello to;
// a subscriber on any node gets the live updates of every owner.

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <set>

#include "actors/routing.hpp"
#include "net/ws_client.hpp"
#include "tests/integration/cluster_support.hpp"
#include "tests/support/http.hpp"
#include "tests/support/ws_helpers.hpp"

using namespace pulse;
using namespace pulse::test::cluster;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

std::uint64_t welcome_last_seq(const member& m, const std::string& device) {
  net::ws_blocking_client ws;
  test::connect(ws, as_process(m));
  std::string err;
  REQUIRE(ws.send_text(R"({"hello":{"device":")" + device + R"("}})", err));
  auto w = test::read_until(ws, "welcome")["welcome"];
  CHECK(w["node"] == m.name);
  return w["last_seq"].get<std::uint64_t>();
}

}  // namespace

TEST_CASE("readings sent to any node are stored once by their owner and acked after", "[cluster]") {
  trio t;
  constexpr int devices = 24;
  constexpr int readings = 5;
  // The owners every node computes (2 shards each, the default).
  std::vector<route_member> members;
  for (auto& n : t.nodes) members.push_back({device_hash(n.name), 2});
  std::set<std::size_t> owners;
  int forwarded = 0;
  for (int d = 0; d < devices; ++d) {
    auto device = "route-" + std::to_string(d);
    auto& entry = t[static_cast<std::size_t>(d % 3)];
    net::ws_blocking_client ws;
    test::connect(ws, as_process(entry));
    std::string err;
    REQUIRE(ws.send_text(R"({"hello":{"device":")" + device + R"("}})", err));
    CHECK(test::read_until(ws, "welcome")["welcome"]["last_seq"] == 0);
    for (int s = 1; s <= readings; ++s)
      REQUIRE(ws.send_text(R"({"device":")" + device + R"(","seq":)" + std::to_string(s) +
                             R"(,"ts":1731801600000,"values":{"v":)" + std::to_string(s) + "}}",
                           err));
    std::uint64_t acked = 0;
    while (acked < readings) acked = test::read_until(ws, "ack")["ack"]["seq"].get<std::uint64_t>();
    auto owner = owner_of(device, members).member;
    owners.insert(owner);
    if (&t[owner] != &entry) ++forwarded;
    // Acked means durable on the owner, and only there.
    for (std::size_t i = 0; i < 3; ++i) {
      INFO(device << " entered at " << entry.name << ", owner " << t[owner].name << ", asking "
                  << t[i].name);
      CHECK(stored_here(t[i], device) == (i == owner ? readings : 0));
    }
  }
  CHECK(owners.size() == 3);  // the devices spread over every member
  CHECK(forwarded >= devices / 3);
  // The welcome and the device record say the same on every node, owner or not.
  for (int d = 0; d < devices; d += 5) {
    auto device = "route-" + std::to_string(d);
    for (auto& n : t.nodes) {
      CHECK(welcome_last_seq(n, device) == readings);
      auto res = try_get(n.http_port, "/api/v1/devices/" + device);
      REQUIRE(res);
      REQUIRE(res->status == 200);
      auto rec = json::parse(res->body);
      CHECK(rec["last_seq"] == readings);
      CHECK(rec["metrics"] == json::array({"v"}));
      CHECK(rec["latest"]["values"]["v"] == readings);
      CHECK(rec["partial"] == false);
    }
  }
}

TEST_CASE("a subscriber on one node gets updates of devices sent to and owned by other nodes",
          "[cluster]") {
  trio t;
  std::vector<route_member> members;
  for (auto& n : t.nodes) members.push_back({device_hash(n.name), 2});
  // Devices owned by every member, all sent to node-b.
  std::set<std::string> want;
  std::set<std::size_t> owners;
  for (int d = 0; want.size() < 9 && d < 1000; ++d) {
    auto device = "live-" + std::to_string(d);
    auto o = owner_of(device, members).member;
    if (std::count_if(want.begin(), want.end(), [&](const std::string& w) {
          return owner_of(w, members).member == o;
        }) >= 3)
      continue;
    want.insert(device);
    owners.insert(o);
  }
  REQUIRE(owners.size() == 3);
  net::ws_blocking_client sub;
  test::connect(sub, as_process(t[0]));
  std::string err;
  REQUIRE(sub.send_text(R"({"subscribe":["live-*"]})", err));
  test::read_until(sub, "snapshot");
  net::ws_blocking_client writer;
  test::connect(writer, as_process(t[1]));
  // Members learn of node-a's subscriber with the next heartbeats: send until
  // every device's update has arrived (bounded).
  std::set<std::string> seen;
  auto deadline = std::chrono::steady_clock::now() + 15s;
  std::uint64_t seq = 0;
  while (seen.size() < want.size() && std::chrono::steady_clock::now() < deadline) {
    ++seq;
    for (auto& device : want)
      REQUIRE(writer.send_text(R"({"device":")" + device + R"(","seq":)" + std::to_string(seq) +
                                 R"(,"values":{"v":)" + std::to_string(seq) + "}}",
                               err));
    auto until = std::chrono::steady_clock::now() + 300ms;
    while (std::chrono::steady_clock::now() < until) {
      auto msg = sub.read(50ms);
      if (!msg) continue;
      auto j = json::parse(*msg, nullptr, false);
      if (j.is_discarded() || !j.contains("update")) continue;
      for (auto& [device, v] : j["update"].items()) {
        CHECK(v.contains("v"));
        seen.insert(device);
      }
    }
  }
  CHECK(seen == want);
}

TEST_CASE("forwarded readings wait at their sender while the owner's shard is over batch.max-pending",
          "[cluster]") {
  // Shards hold what they take for 1.5 s (or until 20 readings), and take
  // 20 readings at most unless idle.
  trio t{{"--batch.max-pending=20", "--batch.max-readings=20", "--batch.max-delay=1500ms"}};
  std::vector<route_member> members;
  for (auto& n : t.nodes) members.push_back({device_hash(n.name), 2});
  // Two devices of the same shard of node-b.
  std::string x, y;
  for (int d = 0; d < 10000 && y.empty(); ++d) {
    auto device = "credit-" + std::to_string(d);
    auto o = owner_of(device, members);
    if (o.member != 1 || o.shard != 0) continue;
    if (x.empty()) x = device;
    else y = device;
  }
  REQUIRE_FALSE(y.empty());
  auto frame = [](const std::string& device, int n) {
    std::string f = "[";
    for (int s = 1; s <= n; ++s)
      f += std::string(s > 1 ? "," : "") + R"({"device":")" + device + R"(","seq":)" +
           std::to_string(s) + R"(,"ts":1731801600000,"values":{"v":1}})";
    return f + "]";
  };
  std::string err;
  // 19 readings of x straight to node-b: they wait there for the flush.
  net::ws_blocking_client at_b;
  test::connect(at_b, as_process(t[1]));
  REQUIRE(at_b.send_text(frame(x, 19), err));
  // Taken in at node-b before y is sent (else y could get there first, and
  // x would be the one refused).
  auto t0 = std::chrono::steady_clock::now();
  while (test::metric(t[1].http_port, "pulse_readings_in_total") < 19 &&
         std::chrono::steady_clock::now() - t0 < 5s)
    std::this_thread::sleep_for(5ms);
  // 5 of y through node-a: node-b's shard is over the limit until x's
  // readings are flushed, so node-b refuses the forwarded write and node-a
  // holds it and sends it again until there is room.
  net::ws_blocking_client at_a;
  test::connect(at_a, as_process(t[0]));
  REQUIRE(at_a.send_text(frame(y, 5), err));
  // Every reading acked (bounded), with nothing else said on the way.
  auto acked_up_to = [](net::ws_blocking_client& ws, std::uint64_t n) {
    std::uint64_t acked = 0;
    std::string seen;
    auto deadline = std::chrono::steady_clock::now() + 15s;
    while (acked < n && std::chrono::steady_clock::now() < deadline && !ws.closed()) {
      auto msg = ws.read(100ms);
      if (!msg) continue;
      seen += *msg + "\n";
      auto j = json::parse(*msg, nullptr, false);
      if (j.contains("ack")) acked = j["ack"]["seq"].get<std::uint64_t>();
    }
    INFO(seen << (ws.closed() ? "closed " + std::to_string(ws.close_code()) : ""));
    CHECK(acked == n);
  };
  acked_up_to(at_a, 5);
  acked_up_to(at_b, 19);
  CHECK(test::metric(t[1].http_port, "pulse_cluster_writes_refused_total") >= 1);
  CHECK(test::metric(t[0].http_port, "pulse_cluster_writes_refused_total") == 0);
  CHECK(stored_here(t[1], x) == 19);
  CHECK(stored_here(t[1], y) == 5);
}
