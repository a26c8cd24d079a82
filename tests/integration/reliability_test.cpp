// Integration: faults injected for real into real pulse-node processes —
// shards crashed under load, restart intensity, SIGTERM under load,
// connection limits, silent and non-reading peers, running out of file
// descriptors. Figures go to stdout so that notes can quote them.

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <signal.h>

#include <fstream>
#include <iostream>
#include <thread>

#include <boost/asio.hpp>

#include "net/http_client.hpp"
#include "tests/support/http.hpp"
#include "actors/routing.hpp"
#include "net/ws_client.hpp"
#include "tests/support/process.hpp"

using namespace pulse;
using namespace std::chrono_literals;
using nlohmann::json;
namespace asio = boost::asio;
using tcp = asio::ip::tcp;

namespace {

using test::http;
using test::metric;

json device(std::uint16_t port, const std::string& id) {
  auto res = http(port, "GET", "/api/v1/devices/" + id);
  INFO(res.body);
  REQUIRE(res.status == 200);
  return json::parse(res.body);
}

// Waits until /readyz answers `status` (bounded).
bool wait_ready(std::uint16_t port, int status, std::chrono::milliseconds timeout = 10s) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (http(port, "GET", "/readyz").status == status) return true;
    std::this_thread::sleep_for(20ms);
  }
  return false;
}

// A WebSocket client on a raw socket: does the handshake and then only what
// the test makes it do (no pongs, no reading unless asked).
struct raw_ws {
  asio::io_context ioc;
  tcp::socket sock{ioc};

  void connect(std::uint16_t port, int rcvbuf = 0) {
    sock.open(tcp::v4());
    if (rcvbuf > 0) sock.set_option(asio::socket_base::receive_buffer_size(rcvbuf));
    sock.connect({asio::ip::make_address("127.0.0.1"), port});
    std::string req =
      "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    asio::write(sock, asio::buffer(req));
    std::string head;
    char c;
    while (head.size() < 4096 && head.find("\r\n\r\n") == std::string::npos) {
      asio::read(sock, asio::buffer(&c, 1));
      head += c;
    }
    REQUIRE(head.rfind("HTTP/1.1 101", 0) == 0);
  }

  // A masked text frame (mask key 0: the payload goes as is).
  void send_text(const std::string& text) {
    std::string f;
    f += static_cast<char>(0x81);
    if (text.size() < 126) {
      f += static_cast<char>(0x80 | text.size());
    } else if (text.size() < 65536) {
      f += static_cast<char>(0x80 | 126);
      f += static_cast<char>((text.size() >> 8) & 0xff);
      f += static_cast<char>(text.size() & 0xff);
    } else {
      f += static_cast<char>(0x80 | 127);
      for (int shift = 56; shift >= 0; shift -= 8)
        f += static_cast<char>((text.size() >> shift) & 0xff);
    }
    f.append(4, '\0');
    f += text;
    asio::write(sock, asio::buffer(f));
  }

  // Reads until the first frame header; returns its opcode, -1 on EOF or timeout.
  int read_opcode(std::chrono::milliseconds timeout) {
    sock.non_blocking(true);
    auto deadline = std::chrono::steady_clock::now() + timeout;
    unsigned char b[2];
    std::size_t got = 0;
    while (std::chrono::steady_clock::now() < deadline) {
      boost::system::error_code ec;
      got += sock.read_some(asio::buffer(b + got, 2 - got), ec);
      if (got == 2) return b[0] & 0x0f;
      if (ec && ec != asio::error::would_block) return -1;
      std::this_thread::sleep_for(5ms);
    }
    return -1;
  }

  // True once the peer closed the TCP connection (EOF or reset), reading and
  // discarding whatever comes first; false if still open after `timeout`.
  bool closed_within(std::chrono::milliseconds timeout) {
    sock.non_blocking(true);
    auto deadline = std::chrono::steady_clock::now() + timeout;
    char buf[4096];
    while (std::chrono::steady_clock::now() < deadline) {
      boost::system::error_code ec;
      sock.read_some(asio::buffer(buf), ec);
      if (ec && ec != asio::error::would_block) return true;
      std::this_thread::sleep_for(10ms);
    }
    return false;
  }
};

std::uint64_t read_acks_until_close(net::ws_blocking_client& ws, std::chrono::milliseconds timeout) {
  std::uint64_t max_ack = 0;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    auto msg = ws.read(100ms);  // frames that came before the close are still read
    if (!msg) {
      if (ws.closed()) break;
      continue;
    }
    auto j = json::parse(*msg, nullptr, false);
    if (j.contains("ack")) max_ack = std::max(max_ack, j["ack"]["seq"].get<std::uint64_t>());
  }
  return max_ack;
}

}  // namespace

TEST_CASE("shards crashed over and over under load lose no acked reading and store none twice",
          "[reliability]") {
  test::temp_dir dir;
  auto node = test::start_node(dir.path() + "/db", {"--debug.fault-injection=true",
                                                    "--supervisor.max-restarts=1000",
                                                    "--storage.shards=2", "--batch.max-delay=20ms"});
  auto report = dir.path() + "/report.json";
  test::child sim(test::sim_binary(),
                  {"--node=127.0.0.1:" + std::to_string(node.port), "--devices=40", "--rate=100",
                   "--batch=5", "--duration=5s", "--verify", "--quiet", "--report=" + report});
  int crashes = 0;
  auto until = std::chrono::steady_clock::now() + 4500ms;
  std::this_thread::sleep_for(300ms);
  while (std::chrono::steady_clock::now() < until) {
    auto res = http(node.port, "POST", "/admin/shards/" + std::to_string(crashes % 2) + "/crash");
    REQUIRE(res.status == 202);
    ++crashes;
    std::this_thread::sleep_for(200ms);
  }
  int rc = sim.wait(90s);
  INFO(sim.out() << sim.err());
  REQUIRE(rc == 0);
  auto j = json::parse(std::ifstream{report});
  CHECK(j["acked"] == j["sent"]);
  CHECK(j["verify"]["mismatches"] == 0);
  auto restarts = metric(node.port, "pulse_shard_restarts_total");
  CHECK(restarts == crashes);
  CHECK(wait_ready(node.port, 200));
  std::cout << "[reliability] shard crashes injected: " << crashes << ", restarts: " << restarts
            << ", readings sent: " << j["sent"] << ", acked: " << j["acked"]
            << ", verify mismatches: " << j["verify"]["mismatches"] << "\n";
}

TEST_CASE("past supervisor.max-restarts the node reports unhealthy, crashing needs fault injection",
          "[reliability]") {
  test::temp_dir dir;
  {
    auto off = test::start_node(dir.path() + "/off");
    CHECK(http(off.port, "POST", "/admin/shards/0/crash").status == 404);
    CHECK(http(off.port, "GET", "/admin/shards/0/crash").status == 405);
    CHECK(metric(off.port, "pulse_shard_restarts_total") == 0);
  }
  auto node = test::start_node(dir.path() + "/db", {"--debug.fault-injection=true",
                                                    "--supervisor.max-restarts=2",
                                                    "--supervisor.window=1min"});
  CHECK(http(node.port, "POST", "/admin/shards/9/crash").status == 404);
  CHECK(http(node.port, "GET", "/admin/shards/0/crash").status == 405);
  CHECK(http(node.port, "POST", "/admin/shards/x/crash").status == 404);
  for (int i = 0; i < 2; ++i) {
    REQUIRE(http(node.port, "POST", "/admin/shards/0/crash").status == 202);
    auto deadline = std::chrono::steady_clock::now() + 10s;
    while (metric(node.port, "pulse_shard_restarts_total") < i + 1 &&
           std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(20ms);
    REQUIRE(wait_ready(node.port, 200));
  }
  REQUIRE(http(node.port, "POST", "/admin/shards/0/crash").status == 202);
  CHECK(wait_ready(node.port, 503));
  CHECK(http(node.port, "GET", "/healthz").status == 200);  // alive, not ready
  CHECK(metric(node.port, "pulse_shard_restarts_total") == 2);
  // and it still stops in order
  CHECK(node.proc->stop(SIGTERM, 30s) == 0);
}

TEST_CASE("a shard left down past supervisor.max-restarts refuses its readings instead of leaving "
          "them unanswered", "[reliability]") {
  test::temp_dir dir;
  // A long batch.max-delay keeps the first reading in shard 0's inbox, unflushed,
  // when the shard is crashed; max-restarts=0 leaves it down at once.
  auto node = test::start_node(dir.path() + "/db", {"--debug.fault-injection=true",
                                                    "--supervisor.max-restarts=0",
                                                    "--storage.shards=2",
                                                    "--batch.max-delay=3s"});
  std::string down, up;  // devices of shard 0 and of shard 1
  for (int i = 0; down.empty() || up.empty(); ++i) {
    auto id = "dn-" + std::to_string(i);
    (shard_of(id, 2) == 0 ? down : up) = id;
  }
  auto reading = [](const std::string& device, int seq) {
    return R"({"device":")" + device + R"(","seq":)" + std::to_string(seq) + R"(,"values":{"v":1}})";
  };
  // Reads frames until the close (bounded); returns the error frames.
  // Frames that came before the close are still read (the client may have
  // taken the error and the close frame before this loop starts).
  auto errors_until_close = [](net::ws_blocking_client& ws) {
    std::vector<json> errors;
    auto deadline = std::chrono::steady_clock::now() + 2500ms;
    while (std::chrono::steady_clock::now() < deadline) {
      auto msg = ws.read(50ms);
      if (!msg) {
        if (ws.closed()) break;
        continue;
      }
      auto j = json::parse(*msg);
      if (j.contains("error")) errors.push_back(j["error"]);
    }
    return errors;
  };
  std::string err;
  net::ws_blocking_client waiting;
  REQUIRE(waiting.connect("127.0.0.1", node.port, err));
  REQUIRE(waiting.send_text(reading(down, 7), err));
  std::this_thread::sleep_for(200ms);  // in shard 0's inbox, its flush 3 s away
  REQUIRE(http(node.port, "POST", "/admin/shards/0/crash").status == 202);
  // The reading waiting at the dead shard is refused with its seq and 1013,
  // well before the flush it would never get.
  auto errs = errors_until_close(waiting);
  REQUIRE(errs.size() == 1);
  CHECK(errs[0]["code"] == "overloaded");
  CHECK(errs[0]["seq"] == 7);
  CHECK(waiting.close_code() == 1013);
  CHECK(wait_ready(node.port, 503));

  // New readings for the dead shard are refused at once ...
  net::ws_blocking_client late;
  REQUIRE(late.connect("127.0.0.1", node.port, err));
  REQUIRE(late.send_text(reading(down, 8), err));
  errs = errors_until_close(late);
  REQUIRE(errs.size() == 1);
  CHECK(errs[0]["code"] == "overloaded");
  CHECK(errs[0]["seq"] == 8);
  CHECK(late.close_code() == 1013);
  auto post = [&](const std::string& device) {
    net::http_response res;
    REQUIRE(net::http_request("127.0.0.1", node.port, "POST", "/api/v1/readings",
                              reading(device, 9), res, err));
    return res;
  };
  auto refused = post(down);
  CHECK(refused.status == 503);
  CHECK(json::parse(refused.body)["error"]["code"] == "overloaded");
  // ... and so is a hello for one of its devices.
  net::ws_blocking_client hello;
  REQUIRE(hello.connect("127.0.0.1", node.port, err));
  REQUIRE(hello.send_text(R"({"hello":{"device":")" + down + R"("}})", err));
  auto answer = hello.read(2s);
  REQUIRE(answer);
  CHECK(json::parse(*answer)["error"]["code"] == "overloaded");

  // The other shard keeps storing and acking.
  CHECK(post(up).status == 200);
  net::ws_blocking_client alive;
  REQUIRE(alive.connect("127.0.0.1", node.port, err));
  REQUIRE(alive.send_text(reading(up, 10), err));
  auto ack = alive.read(5s);
  REQUIRE(ack);
  CHECK(json::parse(*ack)["ack"]["seq"] == 10);
  CHECK(node.proc->stop(SIGTERM, 30s) == 0);
}

TEST_CASE("SIGTERM under load: acks go out before the 1001 close, exit 0, acked readings stored",
          "[reliability]") {
  test::temp_dir dir;
  auto storage = dir.path() + "/db";
  std::uint64_t max_ack = 0;
  constexpr int sent = 3000;
  {
    auto node = test::start_node(storage, {"--batch.max-delay=50ms"});
    net::ws_blocking_client ws;
    std::string err;
    REQUIRE(ws.connect("127.0.0.1", node.port, err));
    for (int seq = 1; seq <= sent; ++seq)
      REQUIRE(ws.send_text(R"({"device":"term-1","seq":)" + std::to_string(seq) +
                             R"(,"values":{"v":)" + std::to_string(seq) + "}}",
                           err));
    REQUIRE(::kill(node.proc->pid(), SIGTERM) == 0);
    max_ack = read_acks_until_close(ws, 30s);
    CHECK(ws.close_code() == 1001);
    CHECK(node.proc->wait(30s) == 0);
    std::cout << "[reliability] SIGTERM after " << sent << " readings sent: highest ack " << max_ack
              << ", close code " << ws.close_code() << "\n";
  }
  auto node = test::start_node(storage);
  auto d = device(node.port, "term-1");
  // Everything acked is there; whatever was read before the stop was flushed
  // and acked, so nothing is stored that the client was not told about.
  CHECK(d["last_seq"].get<std::uint64_t>() == max_ack);
  auto agg = json::parse(
    http(node.port, "GET", "/api/v1/devices/term-1/aggregate?metric=v&fn=count,sum").body);
  REQUIRE(agg["buckets"].size() == 1);
  CHECK(agg["buckets"][0]["count"] == max_ack);
  CHECK(agg["buckets"][0]["sum"].get<double>() == static_cast<double>(max_ack * (max_ack + 1) / 2));
}

TEST_CASE("net.max-connections: the next WebSocket is closed with 1013", "[reliability]") {
  test::temp_dir dir;
  auto node = test::start_node(dir.path() + "/db", {"--net.max-connections=2"});
  net::ws_blocking_client a, b, c;
  std::string err;
  REQUIRE(a.connect("127.0.0.1", node.port, err));
  REQUIRE(b.connect("127.0.0.1", node.port, err));
  std::this_thread::sleep_for(100ms);  // both counted
  REQUIRE(c.connect("127.0.0.1", node.port, err));
  auto deadline = std::chrono::steady_clock::now() + 5s;
  while (!c.closed() && std::chrono::steady_clock::now() < deadline) c.read(100ms);
  CHECK(c.close_code() == 1013);
  CHECK(metric(node.port, "pulse_connections_refused_total") == 1);
  // the two inside still work
  REQUIRE(a.send_text(R"({"device":"lim-1","seq":1,"values":{"v":1}})", err));
  bool acked = false;
  deadline = std::chrono::steady_clock::now() + 5s;
  while (!acked && std::chrono::steady_clock::now() < deadline)
    if (auto m = a.read(100ms)) acked = m->find("\"ack\"") != std::string::npos;
  CHECK(acked);
}

TEST_CASE("the node pings, closes silent peers after net.idle-timeout, keeps answering ones",
          "[reliability]") {
  test::temp_dir dir;
  auto node = test::start_node(dir.path() + "/db",
                               {"--net.ping-interval=200ms", "--net.idle-timeout=1s"});
  raw_ws silent;
  silent.connect(node.port);
  CHECK(silent.read_opcode(2s) == 0x9);  // a ping
  net::ws_blocking_client live;
  std::string err;
  REQUIRE(live.connect("127.0.0.1", node.port, err));
  // Keep the live client's I/O running (it pongs only while reading) while
  // waiting for the silent one to be dropped.
  auto t0 = std::chrono::steady_clock::now();
  bool silent_closed = false;
  while (!silent_closed && std::chrono::steady_clock::now() - t0 < 5s) {
    live.read(20ms);
    silent_closed = silent.closed_within(20ms);
  }
  CHECK(silent_closed);  // never answered a ping
  auto silent_for = std::chrono::steady_clock::now() - t0;
  auto until = std::chrono::steady_clock::now() + 1500ms;
  while (std::chrono::steady_clock::now() < until) live.read(50ms);
  CHECK_FALSE(live.closed());
  std::cout << "[reliability] silent peer closed after "
            << std::chrono::duration_cast<std::chrono::milliseconds>(silent_for).count()
            << " ms more (net.idle-timeout=1s)\n";
}

namespace {

// A client that never reads sends frames of 1000 bad readings, so the node
// owes it 1000 error frames (~90 KB) per frame, until the node cuts it off or
// `counter` (a /metrics counter) moves. `pause` paces the frames. Returns how
// many frames went out.
int flood_without_reading(std::uint16_t port, const std::string& counter,
                          std::chrono::milliseconds pause) {
  raw_ws reader_less;
  reader_less.connect(port, 4096);
  std::string f = "[";
  for (int i = 1; i <= 1000; ++i) {
    if (i > 1) f += ',';
    f += R"({"device":"slow-1","seq":)" + std::to_string(i) + R"(,"values":{"v":"x"}})";
  }
  f += "]";
  int frames = 0;
  for (; frames < 400; ++frames) {
    try {
      reader_less.send_text(f);
    } catch (const std::exception&) {
      break;  // the node closed the connection
    }
    std::this_thread::sleep_for(pause);
    if (frames % 10 == 0 && metric(port, counter) >= 1) break;
  }
  auto deadline = std::chrono::steady_clock::now() + 5s;
  while (metric(port, counter) < 1 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(50ms);
  return frames;
}

}  // namespace

TEST_CASE("a peer that stops reading is cut off after net.write-timeout", "[reliability]") {
  test::temp_dir dir;
  auto node = test::start_node(dir.path() + "/db", {"--net.write-timeout=1s"});
  // Paced so that the socket buffers fill well before the write queue's byte
  // limit (16 MiB) would be reached.
  int frames = flood_without_reading(node.port, "pulse_write_timeouts_total", 20ms);
  CHECK(metric(node.port, "pulse_write_timeouts_total") == 1);
  CHECK(metric(node.port, "pulse_write_queue_full_total") == 0);
  CHECK(http(node.port, "GET", "/healthz").status == 200);
  CHECK(frames < 400);
  std::cout << "[reliability] non-reading peer cut off by net.write-timeout after " << frames
            << " frames of 1000 bad readings\n";
}

TEST_CASE("out of file descriptors: accept fails, the node survives and accepts again",
          "[reliability]") {
  test::temp_dir dir;
  // A low descriptor limit for this node only (RocksDB and the node need ~40).
  test::child proc("/bin/sh", {"-c", "ulimit -n 96 && exec " + test::node_binary() +
                                       " --net.port=0 --log.level=warn --storage.path=" +
                                       dir.path() + "/db"});
  auto line = proc.wait_for_line("listening on", 20s);
  REQUIRE_FALSE(line.empty());
  auto port = static_cast<std::uint16_t>(std::stoi(line.substr(line.rfind(':') + 1)));
  asio::io_context ioc;
  std::vector<std::unique_ptr<tcp::socket>> conns;
  for (int i = 0; i < 150; ++i) {
    auto s = std::make_unique<tcp::socket>(ioc);
    boost::system::error_code ec;
    s->connect({asio::ip::make_address("127.0.0.1"), port}, ec);  // the backlog takes them
    if (!ec) conns.push_back(std::move(s));
  }
  std::this_thread::sleep_for(500ms);  // the node accepts until EMFILE
  REQUIRE(proc.running());
  conns.clear();  // the node sees EOF on its sockets and frees them
  std::this_thread::sleep_for(500ms);
  CHECK(metric(port, "pulse_accept_failures_total") > 0);
  net::ws_blocking_client ws;
  std::string err;
  REQUIRE(ws.connect("127.0.0.1", port, err));
  REQUIRE(ws.send_text(R"({"device":"fd-1","seq":1,"values":{"v":1}})", err));
  bool acked = false;
  auto deadline = std::chrono::steady_clock::now() + 5s;
  while (!acked && std::chrono::steady_clock::now() < deadline)
    if (auto m = ws.read(100ms)) acked = m->find("\"ack\"") != std::string::npos;
  CHECK(acked);
  CHECK(proc.err().find("accept failed") != std::string::npos);
  std::cout << "[reliability] EMFILE: accept failures counted "
            << metric(port, "pulse_accept_failures_total") << ", node still serving\n";
}

TEST_CASE("a frame that would put a shard past batch.max-pending is refused with its seq and 1013",
          "[reliability]") {
  test::temp_dir dir;
  // One shard that flushes only after 2 s: what is sent stays pending.
  auto node = test::start_node(dir.path() + "/db", {"--storage.shards=1", "--batch.max-readings=1000",
                                                    "--batch.max-pending=1000", "--batch.max-delay=2s"});
  auto batch = [](const std::string& device, int first, int n) {
    std::string f = R"({"device":")" + device + R"(","readings":[)";
    for (int i = 0; i < n; ++i) {
      if (i) f += ',';
      f += R"({"seq":)" + std::to_string(first + i) + R"(,"values":{"v":1}})";
    }
    return f + "]}";
  };
  std::string err;
  net::ws_blocking_client a, b;
  REQUIRE(a.connect("127.0.0.1", node.port, err));
  REQUIRE(b.connect("127.0.0.1", node.port, err));
  REQUIRE(a.send_text(batch("busy-a", 1, 600), err));
  std::this_thread::sleep_for(200ms);  // a's 600 are pending at the shard
  REQUIRE(b.send_text(batch("busy-b", 1, 600), err));
  json refused;
  auto deadline = std::chrono::steady_clock::now() + 5s;
  // Read until closed and drained: the error and the close may arrive together.
  while (std::chrono::steady_clock::now() < deadline) {
    auto m = b.read(100ms);
    if (!m && b.closed()) break;
    if (!m) continue;
    auto j = json::parse(*m);
    if (j.contains("error")) refused = j;
  }
  INFO(refused.dump());
  REQUIRE(refused.contains("error"));
  CHECK(refused["error"]["code"] == "overloaded");
  CHECK(refused["error"]["seq"] == 1);
  CHECK(b.close_code() == 1013);
  CHECK(metric(node.port, "pulse_connections_shed_total") == 1);
  // a's readings are acked after the flush; b resumes from last_seq and gets in
  CHECK(read_acks_until_close(a, 4s) == 600);
  net::ws_blocking_client b2;
  REQUIRE(b2.connect("127.0.0.1", node.port, err));
  REQUIRE(b2.send_text(R"({"hello":{"device":"busy-b"}})", err));
  std::uint64_t last_seq = 99;
  deadline = std::chrono::steady_clock::now() + 5s;
  while (last_seq == 99 && std::chrono::steady_clock::now() < deadline)
    if (auto m = b2.read(100ms); m && m->find("welcome") != std::string::npos)
      last_seq = json::parse(*m)["welcome"]["last_seq"].get<std::uint64_t>();
  CHECK(last_seq == 0);  // nothing of the refused frame was stored
  REQUIRE(b2.send_text(batch("busy-b", 1, 600), err));
  CHECK(read_acks_until_close(b2, 4s) == 600);
  // A frame bigger than batch.max-pending still gets into an idle shard.
  net::ws_blocking_client c;
  REQUIRE(c.connect("127.0.0.1", node.port, err));
  REQUIRE(c.send_text(batch("big-c", 1, 1500), err));
  CHECK(read_acks_until_close(c, 4s) == 1500);
  CHECK(metric(node.port, "pulse_connections_shed_total") == 1);
}

TEST_CASE("a peer that reads too slowly is closed with 1013 past net.max-write-queue-bytes",
          "[reliability]") {
  test::temp_dir dir;
  auto node = test::start_node(dir.path() + "/db", {"--net.write-timeout=60s",
                                                    "--net.max-write-queue-bytes=65536"});
  flood_without_reading(node.port, "pulse_write_queue_full_total", 0ms);
  CHECK(metric(node.port, "pulse_write_queue_full_total") == 1);
  CHECK(metric(node.port, "pulse_write_timeouts_total") == 0);
  CHECK(http(node.port, "GET", "/healthz").status == 200);
}
