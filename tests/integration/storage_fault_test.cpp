// Integration: storage faults. A node whose disk refuses writes (injected EIO
// or ENOSPC through RocksDB's file system, or a real full tmpfs) stays up,
// refuses writes explicitly (storage_unavailable + 1013, HTTP 503 +
// Retry-After, /readyz 503 with the reason) while queries go on, takes writes
// again by itself once the disk does, and loses no acked reading. Damaged
// stores at start-up stop the node with exit 2 and a message naming the file.

#include <sys/mount.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <thread>

#include "net/http_client.hpp"
#include "net/ws_client.hpp"
#include "tests/integration/durable_support.hpp"
#include "tests/support/http.hpp"
#include "tests/support/process.hpp"
#include "tests/support/ws_helpers.hpp"

using namespace pulse;
using namespace pulse::test::durable;
using namespace std::chrono_literals;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

using test::http;

// Polls /readyz until its status is `want` (bounded); returns its last body.
std::string wait_ready(std::uint16_t port, int want, std::chrono::milliseconds timeout,
                       std::chrono::milliseconds* took = nullptr) {
  auto t0 = std::chrono::steady_clock::now();
  auto deadline = t0 + timeout;
  for (;;) {
    auto res = http(port, "GET", "/readyz");
    if (res.status == want) {
      if (took)
        *took = std::chrono::duration_cast<std::chrono::milliseconds>(
          std::chrono::steady_clock::now() - t0);
      return res.body;
    }
    INFO("/readyz still " << res.status << " " << res.body);
    REQUIRE(std::chrono::steady_clock::now() < deadline);
    std::this_thread::sleep_for(50ms);
  }
}

// `name` in a /metrics text, -1 when absent.
double metric(const std::string& text, const std::string& name) {
  return test::find_metric(text, name).value_or(-1);
}

// While storage refuses writes: health 200, queries answer, a POST gets 503
// storage_unavailable with Retry-After, the metrics say so.
void check_refusing(std::uint16_t port, const std::string& kind) {
  CHECK(http(port, "GET", "/healthz").status == 200);
  CHECK(http(port, "GET", "/api/v1/devices?limit=5").status == 200);
  CHECK(http(port, "GET", "/api/v1/devices/sim-meter-0").status == 200);
  std::string body = R"([{"device":"refused-1","ts":1700000000000,"seq":1,"values":{"v":1}}])";
  auto res = http(port, "POST", "/api/v1/readings", body);
  INFO(res.body);
  CHECK(res.status == 503);
  CHECK(res.header("Retry-After") == "5");
  CHECK(res.body.find("\"storage_unavailable\"") != std::string::npos);
  auto m = http(port, "GET", "/metrics").body;
  CHECK(metric(m, "pulse_storage_writable") == 0);
  CHECK(metric(m, "pulse_storage_errors_total{kind=\"" + kind + "\"}") >= 1);
  // A hello still gets the device's true last_seq (never 0 for a stored device).
  net::ws_blocking_client ws;
  std::string err;
  REQUIRE(ws.connect("127.0.0.1", port, err));
  REQUIRE(ws.send_text(R"({"hello":{"device":"sim-meter-0"}})", err));
  auto stored = stored_last_seq(port, "sim-meter-0");
  CHECK(stored > 0);
  CHECK(test::read_until(ws, "welcome")["welcome"]["last_seq"].get<std::uint64_t>() >= stored);
}

// After the run: the simulator got every reading acked (after refusals and
// resends), the node holds each device's last_seq, and so does a restart.
void check_nothing_lost(restartable_node& node, const json& r) {
  check_run_report(r);
  CHECK(r["errors"].value("storage_unavailable", std::uint64_t{0}) > 0);
  CHECK(r["closes"].value("1013", std::uint64_t{0}) > 0);
  for (auto& [device, d] : r["per_device"].items())
    CHECK(stored_last_seq(node.port, device) == d["last_seq"].get<std::uint64_t>());
  CHECK(node.stop(SIGTERM) == 0);
  node.start();
  for (auto& [device, d] : r["per_device"].items())
    CHECK(stored_last_seq(node.port, device) == d["last_seq"].get<std::uint64_t>());
}

// A tmpfs of `mib` MiB mounted for the test (root only), unmounted after.
struct tmpfs_mount {
  std::string path;
  bool mounted = false;
  std::string why_not;
  tmpfs_mount(const std::string& dir, int mib) : path(dir) {
    if (geteuid() != 0) {
      why_not = "not running as root (mounting a tmpfs needs it)";
      return;
    }
    fs::create_directories(path);
    auto opts = "size=" + std::to_string(mib) + "m";
    if (mount("tmpfs", path.c_str(), "tmpfs", 0, opts.c_str()) != 0) {
      why_not = std::string("mount failed: ") + std::strerror(errno);
      return;
    }
    mounted = true;
  }
  ~tmpfs_mount() {
    if (mounted) umount2(path.c_str(), MNT_DETACH);
  }
};

// Prints the node's stderr when the test fails past it (a REQUIRE throws).
struct node_log_on_failure {
  restartable_node& node;
  ~node_log_on_failure() {
    if (std::uncaught_exceptions() > 0 && node.proc)
      std::cerr << "pulse-node stderr:\n" << node.proc->err() << "\n";
  }
};

void fill(const std::string& file, std::size_t mib) {
  std::ofstream out(file, std::ios::binary);
  std::string block(1 << 20, '\0');
  for (std::size_t i = 0; i < mib; ++i) out.write(block.data(), static_cast<std::streamsize>(block.size()));
  REQUIRE(out.good());
}

}  // namespace

TEST_CASE("injected I/O faults refuse writes explicitly, the node recovers by itself, nothing lost",
          "[integration][storage]") {
  struct fault_case {
    const char* mode;
    const char* kind;  // pulse_storage_errors_total{kind}
    bool sync;
  };
  auto c = GENERATE(fault_case{"eio-write", "io_error", false},
                    fault_case{"no-space", "no_space", false},
                    fault_case{"eio-sync", "io_error", true});
  INFO(c.mode);
  test::temp_dir dir;
  restartable_node node;
  node.storage = dir.path() + "/db";
  node.port = free_port();
  node.extra = {"--debug.fault-injection=true",
                std::string("--storage.sync=") + (c.sync ? "true" : "false")};
  node.start();
  auto report = dir.path() + "/report.json";
  test::child sim(test::sim_binary(), sim_args(node.port, report, "100", "6s", "5", "50"));
  wait_for_progress(node.port, 20, 20s);

  CHECK(http(node.port, "POST", std::string("/admin/storage/fault?mode=") + c.mode).status == 200);
  auto why = wait_ready(node.port, 503, 20s);
  CHECK(why.find("storage refuses writes") != std::string::npos);
  check_refusing(node.port, c.kind);
  std::this_thread::sleep_for(1s);  // clients keep reconnecting and being refused

  CHECK(http(node.port, "POST", "/admin/storage/fault?mode=off").status == 200);
  std::chrono::milliseconds resumed{0};
  wait_ready(node.port, 200, 15s, &resumed);
  auto m = http(node.port, "GET", "/metrics").body;
  CHECK(metric(m, "pulse_storage_writable") == 1);
  CHECK(metric(m, "pulse_storage_recoveries_total") >= 1);
  CHECK(metric(m, "pulse_shard_restarts_total") == 0);  // a disk fault is not a shard failure

  int sim_rc = sim.wait(90s);
  INFO(sim.out() << sim.err());
  REQUIRE(sim_rc == 0);
  auto r = read_report(report);
  std::cout << "storage fault " << c.mode << (c.sync ? " (sync)" : "") << ": writes again "
            << resumed.count() << " ms after the fault cleared; refusals "
            << r["errors"].value("storage_unavailable", 0) << ", reconnects " << r["reconnects"]
            << ", readings acked " << r["acked"] << " of " << r["sent"] << ", resent "
            << r["resent"] << ", verify mismatches " << r["verify"]["mismatches"] << "\n";
  check_nothing_lost(node, r);
}

TEST_CASE("a full disk (tmpfs) refuses writes, the node stays up and takes writes again once space is back",
          "[integration][storage]") {
  test::temp_dir dir;
  // A big disk nearly full: after the filler goes there is room for the
  // rest of the run (the WAL grows by tens of MiB per second here).
  tmpfs_mount disk(dir.path() + "/disk", 640);
  if (!disk.mounted) {
    WARN("skipped: " << disk.why_not);
    return;
  }
  auto filler = disk.path + "/filler";
  fill(filler, 628);  // ~12 MiB left for the node
  restartable_node node;
  node.storage = disk.path + "/db";
  node.port = free_port();
  node.extra = {"--storage.min-free-bytes=" + std::to_string(4 << 20)};
  node.start();
  node_log_on_failure log{node};
  auto report = dir.path() + "/report.json";
  // As fast as the node takes them, frames of 100: the WAL fills the disk
  // within seconds (ASan builds included), well before the run ends.
  test::child sim(test::sim_binary(), sim_args(node.port, report, "0", "12s", "100", "1000"));
  auto why = wait_ready(node.port, 503, 12s);
  INFO(why);
  CHECK(why.find("storage refuses writes") != std::string::npos);
  auto m = http(node.port, "GET", "/metrics").body;
  CHECK(metric(m, "pulse_storage_errors_total{kind=\"no_space\"}") +
          metric(m, "pulse_storage_errors_total{kind=\"low_space\"}") >= 1);
  CHECK(http(node.port, "GET", "/healthz").status == 200);
  CHECK(http(node.port, "GET", "/api/v1/devices?limit=5").status == 200);
  std::this_thread::sleep_for(1s);
  REQUIRE(sim.running());

  fs::remove(filler);
  std::chrono::milliseconds resumed{0};
  wait_ready(node.port, 200, 15s, &resumed);
  int sim_rc = sim.wait(120s);
  INFO(sim.out() << sim.err());
  REQUIRE(sim_rc == 0);
  auto r = read_report(report);
  std::cout << "full disk: writes again " << resumed.count()
            << " ms after space came back; refusals " << r["errors"].value("storage_unavailable", 0)
            << ", readings acked " << r["acked"] << " of " << r["sent"] << ", resent "
            << r["resent"] << ", verify mismatches " << r["verify"]["mismatches"] << "\n";
  check_nothing_lost(node, r);
  node.stop(SIGTERM);
}

TEST_CASE("start-up: a damaged store stops the node with exit 2 naming the file, a torn WAL tail is replayed",
          "[integration][storage]") {
  test::temp_dir dir;
  auto db = dir.path() + "/db";
  auto run = [&](std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"--net.port=0", "--storage.path=" + db, "--log.level=warn"};
    args.insert(args.end(), extra.begin(), extra.end());
    return std::make_unique<test::child>(test::node_binary(), args);
  };
  auto post = [&](std::uint16_t port, int seq) {
    auto body = R"([{"device":"d-1","ts":)" + std::to_string(1700000000000 + seq) +
                R"(,"seq":)" + std::to_string(seq) + R"(,"values":{"v":1}}])";
    CHECK(http(port, "POST", "/api/v1/readings", body).status == 200);
  };
  auto port_of = [](test::child& c) {
    auto line = c.wait_for_line("listening on", 20s);
    REQUIRE_FALSE(line.empty());
    return static_cast<std::uint16_t>(std::stoi(line.substr(line.rfind(':') + 1)));
  };
  auto newest = [&](const std::string& ext) {
    std::string best;
    for (auto& e : fs::directory_iterator(db))
      if (e.path().extension() == ext && e.path().string() > best) best = e.path().string();
    return best;
  };

  SECTION("a WAL torn at its tail (power loss) is replayed up to the tear; every acked reading is there") {
    auto n = run({"--storage.sync=true"});
    auto port = port_of(*n);
    for (int seq = 1; seq <= 50; ++seq) post(port, seq);
    n->stop(SIGKILL, 10s);
    auto wal = newest(".log");
    REQUIRE_FALSE(wal.empty());
    {
      std::ofstream out(wal, std::ios::binary | std::ios::app);
      out << std::string(100, '\x5a');  // half a record: what a crash mid-append leaves
    }
    SECTION("absolute-consistency refuses it") {
      auto strict = run({"--storage.wal-recovery=absolute-consistency"});
      CHECK(strict->wait(20s) == 2);
      INFO(strict->err());
      CHECK(strict->err().find("Repair") != std::string::npos);
    }
    auto again = run();
    auto p2 = port_of(*again);
    CHECK(stored_last_seq(p2, "d-1") == 50);
    again->stop(SIGTERM, 20s);
  }

  SECTION("a missing CURRENT stops the node instead of starting an empty store") {
    auto n = run();
    post(port_of(*n), 1);
    CHECK(n->stop(SIGTERM, 20s) == 0);
    fs::remove(db + "/CURRENT");
    auto broken = run();
    CHECK(broken->wait(20s) == 2);
    INFO(broken->err());
    CHECK(broken->err().find("CURRENT is missing") != std::string::npos);
    CHECK(broken->err().find("ldb") != std::string::npos);
    CHECK_FALSE(fs::exists(db + "/CURRENT"));  // nothing created over the old files
  }

  SECTION("a truncated SST file stops the node with a message naming it") {
    auto n = run();
    post(port_of(*n), 1);
    CHECK(n->stop(SIGTERM, 20s) == 0);
    n = run();  // the reopen writes the WAL out as SST files
    port_of(*n);
    CHECK(n->stop(SIGTERM, 20s) == 0);
    auto sst = newest(".sst");
    REQUIRE_FALSE(sst.empty());
    fs::resize_file(sst, 100);
    auto broken = run();
    CHECK(broken->wait(20s) == 2);
    INFO(broken->err());
    CHECK(broken->err().find(fs::path(sst).filename().string()) != std::string::npos);
    CHECK(broken->err().find("Repair") != std::string::npos);
  }
}
