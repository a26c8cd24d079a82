// Integration: crash durability and resume. A pulse-sim run keeps going while
// its node is stopped (SIGTERM) or killed (SIGKILL) and restarted on the same
// storage and port; the simulator must reconnect, resume from the welcome's
// last_seq, and the node must end up holding every acked reading exactly once,
// with rollups that agree with the raw readings.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <thread>

#include "net/http_client.hpp"
#include "sim/sim.hpp"
#include "tests/integration/durable_support.hpp"
#include "tests/support/process.hpp"

using namespace pulse;
using namespace std::chrono_literals;
using nlohmann::json;

using namespace pulse::test::durable;


TEST_CASE("pulse-sim reconnects and resumes when its node stops and comes back",
          "[integration][durability]") {
  auto sig = GENERATE(SIGTERM, SIGKILL);
  test::temp_dir dir;
  restartable_node node;
  node.storage = dir.path() + "/db";
  node.port = free_port();
  node.start();
  auto report = dir.path() + "/report.json";
  test::child sim(test::sim_binary(), sim_args(node.port, report, "100", "5s"));

  wait_for_progress(node.port, 50, 15s);
  auto rc = node.stop(sig);
  CHECK(rc == (sig == SIGTERM ? 0 : 128 + SIGKILL));
  std::this_thread::sleep_for(1s);
  REQUIRE(sim.running());  // still trying to get back, not given up
  node.start();

  int sim_rc = sim.wait(60s);
  INFO(sim.out() << sim.err());
  REQUIRE(sim_rc == 0);
  auto r = read_report(report);
  check_run_report(r);
  // Every device was connected when the node went away, so each reconnected.
  CHECK(r["reconnects"].get<std::uint64_t>() >= sim_devices);
  if (sig == SIGTERM) CHECK(r["closes"].value("1001", 0) > 0);  // the node said it is shutting down
  for (auto& [device, d] : r["per_device"].items())
    CHECK(stored_last_seq(node.port, device) == d["last_seq"].get<std::uint64_t>());
  std::cout << "resume after " << (sig == SIGTERM ? "SIGTERM" : "SIGKILL") << ": acked "
            << r["acked"] << " of " << r["sent"] << ", reconnects " << r["reconnects"]
            << ", resent " << r["resent"] << ", found stored on resume " << r["resumed"]
            << ", verify mismatches " << r["verify"]["mismatches"] << "\n";
}

TEST_CASE("kill -9 loop: every acked reading stored once, last_seq and rollups agree",
          "[integration][durability]") {
  constexpr int kills = 3;
  test::temp_dir dir;
  restartable_node node;
  node.storage = dir.path() + "/db";
  node.port = free_port();
  node.start();
  auto report = dir.path() + "/report.json";
  auto seed = std::random_device{}();
  std::mt19937 rng{seed};
  INFO("kill timing seed " << seed);
  test::child sim(test::sim_binary(), sim_args(node.port, report, "250", "13s"));

  int survived = 0;
  std::uint64_t progress = 0;
  for (int k = 0; k < kills; ++k) {
    // Kill only after the node made progress since it came back, at a
    // random-ish point, so kills land mid-flush as often as between flushes.
    wait_for_progress(node.port, progress, 15s);
    std::this_thread::sleep_for(
        std::chrono::milliseconds(std::uniform_int_distribution<int>(800, 2200)(rng)));
    REQUIRE(sim.running());
    progress = stored_last_seq(node.port, "sim-meter-0");
    REQUIRE(node.stop(SIGKILL) == 128 + SIGKILL);
    std::this_thread::sleep_for(
        std::chrono::milliseconds(std::uniform_int_distribution<int>(300, 1200)(rng)));
    node.start();
    ++survived;
  }

  int sim_rc = sim.wait(60s);
  INFO(sim.out() << sim.err());
  REQUIRE(sim_rc == 0);
  auto r = read_report(report);
  check_run_report(r);
  CHECK(r["reconnects"].get<std::uint64_t>() >= static_cast<std::uint64_t>(kills));

  // The node's own view, device by device: last_seq as the simulator saw it
  // confirmed, the raw readings exactly the acked ones, and the hour rollups
  // equal to the raw readings over a window of whole hours.
  auto from = r["started"].get<std::int64_t>() / hour_ms * hour_ms;
  auto to = (now_ms() / hour_ms + 1) * hour_ms;
  std::uint64_t acked = 0, stored = 0, lost = 0, duplicates = 0, rollup_mismatches = 0;
  for (auto& [device, d] : r["per_device"].items()) {
    INFO(device);
    auto want = d["acked"].get<std::uint64_t>();
    auto last = d["last_seq"].get<std::uint64_t>();
    auto raw = read_raw(node.port, device, from, to);
    auto [count, sum] = rollup_voltage(node.port, device, from, to);
    acked += want;
    stored += raw.readings;
    duplicates += raw.readings - raw.distinct;
    lost += want > raw.distinct ? want - raw.distinct : 0;
    CHECK(stored_last_seq(node.port, device) == last);
    CHECK(raw.max_seq == last);
    CHECK(raw.readings == want);
    CHECK(raw.distinct == raw.readings);
    bool rollup_ok = count == raw.readings &&
                     std::abs(sum - raw.voltage.value()) <= 1e-9 * std::max(1.0, std::abs(sum));
    CHECK(rollup_ok);
    if (!rollup_ok) ++rollup_mismatches;
  }
  std::cout << "kill -9 loop (seed " << seed << "): kills survived " << survived
            << ", readings acked " << acked << ", stored " << stored << ", lost " << lost
            << ", duplicates " << duplicates << ", reconnects " << r["reconnects"] << ", resent "
            << r["resent"] << ", found stored on resume " << r["resumed"]
            << ", rollup/raw mismatches " << rollup_mismatches << "\n";
  CHECK(survived == kills);
  CHECK(lost == 0);
  CHECK(duplicates == 0);
  CHECK(acked == r["acked"].get<std::uint64_t>());
}

TEST_CASE("readings refused as overloaded (1013) are resent after the reconnect, none lost",
          "[integration][durability]") {
  test::temp_dir dir;
  restartable_node node;
  node.storage = dir.path() + "/db";
  node.port = free_port();
  // One shard that takes little, and frames of 200 readings: once a few
  // writers have a frame in flight the shard is full, and every ack lets all
  // 20 devices (rate 0) send again at once, so whatever the speed of the node
  // and the simulator (ASan builds included), frames are refused and
  // connections closed.
  node.extra = {"--storage.shards=1", "--batch.max-readings=1000", "--batch.max-pending=1000"};
  node.start();
  auto report = dir.path() + "/report.json";
  test::child sim(test::sim_binary(), sim_args(node.port, report, "0", "2s", "200", "1000"));
  int sim_rc = sim.wait(60s);
  INFO(sim.out() << sim.err());
  REQUIRE(sim_rc == 0);
  auto r = read_report(report);
  check_run_report(r);
  auto overloaded = r["errors"].value("overloaded", std::uint64_t{0});
  CHECK(overloaded > 0);  // else this test tested nothing
  CHECK(r["reconnects"].get<std::uint64_t>() > 0);
  CHECK(r["resent"].get<std::uint64_t>() > 0);
  for (auto& [device, d] : r["per_device"].items())
    CHECK(stored_last_seq(node.port, device) == d["last_seq"].get<std::uint64_t>());
  std::cout << "overload: " << overloaded << " frames refused, reconnects " << r["reconnects"]
            << ", closes " << r["closes"].dump() << ", readings acked " << r["acked"] << " of "
            << r["sent"] << ", resent " << r["resent"] << ", found stored on resume "
            << r["resumed"] << ", rejected for good " << r["rejected"] << ", verify mismatches "
            << r["verify"]["mismatches"] << "\n";
}

TEST_CASE("replay of OCPP frames (no seq) survives kill -9 without duplicates",
          "[integration][durability]") {
  // OCPP frames carry no seq: the node numbers them, so only the welcome's
  // last_seq tells a reconnected device whether its frame in flight was
  // stored. One reading per frame: a frame stored twice shows as last_seq
  // above the frame count, one lost as below.
  constexpr int devices = 10, frames = 400;
  test::temp_dir dir;
  auto file = dir.path() + "/ocpp.ndjson";
  {
    std::ofstream out{file};
    for (int f = 0; f < frames; ++f)
      for (int d = 0; d < devices; ++d)
        out << R"({"charge_point_id":"cp-)" << d
            << R"(","payload":{"connectorId":1,"meterValue":[{"timestamp":"2024-05-01T10:)"
            << (f / 60 < 10 ? "0" : "") << f / 60 << ':' << (f % 60 < 10 ? "0" : "") << f % 60
            << R"(Z","sampledValue":[{"value":")" << 1000 + f * 7 + d
            << R"(.25","measurand":"Energy.Active.Import.Register","unit":"Wh"}]}]}})"
            << "\n";
  }
  restartable_node node;
  node.storage = dir.path() + "/db";
  node.port = free_port();
  node.start();
  auto report = dir.path() + "/report.json";
  test::child sim(test::sim_binary(),
                  {"replay", file, "--node=127.0.0.1:" + std::to_string(node.port),
                   "--reconnect-min=50ms", "--reconnect-max=1s", "--reconnect-attempts=40",
                   "--verify", "--quiet", "--report=" + report});
  wait_for_progress(node.port, 40, 20s, "cp-0");
  REQUIRE(sim.running());
  REQUIRE(node.stop(SIGKILL) == 128 + SIGKILL);
  std::this_thread::sleep_for(700ms);
  node.start();
  int sim_rc = sim.wait(60s);
  INFO(sim.out() << sim.err());
  REQUIRE(sim_rc == 0);  // every reading acked, --verify exact (count and sum)
  auto r = read_report(report);
  INFO(r.dump(2).substr(0, 3000));
  CHECK(r["acked"] == devices * frames);
  CHECK(r["sent"] == devices * frames);
  CHECK(r["verify"]["mismatches"] == 0);
  CHECK(r["reconnects"].get<std::uint64_t>() > 0);
  REQUIRE(r["per_device"].size() == devices);
  for (auto& [device, d] : r["per_device"].items()) {
    INFO(device);
    CHECK(d["last_seq"] == frames);
    CHECK(stored_last_seq(node.port, device) == frames);
  }
  std::cout << "replay kill -9: readings acked " << r["acked"] << " of " << devices * frames
            << ", reconnects " << r["reconnects"] << ", resent " << r["resent"]
            << ", found stored on resume " << r["resumed"] << "\n";
}
