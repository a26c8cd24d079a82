// Integration: auth.tokens-file on a real node — WebSocket hello tokens,
// HTTP bearer tokens, and what start-up says about auth on and off.

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <fstream>

#include "net/http_client.hpp"
#include "net/ws_client.hpp"
#include "tests/support/process.hpp"

using namespace pulse;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

std::string write_tokens(const test::temp_dir& dir) {
  auto path = dir.path() + "/tokens";
  std::ofstream{path} << "# test tokens\n"
                         "device meter-* dev-tok\n"
                         "reader read-tok\n"
                         "device sim-* sim-tok\n"
                         "reader sim-tok\n";
  return path;
}

net::http_response http(const test::node_process& n, const std::string& method,
                        const std::string& target, const std::string& token,
                        const std::string& body = "") {
  net::http_response res;
  std::string err;
  std::vector<std::pair<std::string, std::string>> headers;
  if (!token.empty()) headers.emplace_back("Authorization", "Bearer " + token);
  INFO(err);
  REQUIRE(net::http_request(n.host, n.port, method, target, body, res, err, 10s,
                            "application/json", headers));
  return res;
}

// Reads until a frame containing `key` (returned) or the close (returns "").
std::string read_for(net::ws_blocking_client& ws, const std::string& key) {
  auto deadline = std::chrono::steady_clock::now() + 5s;
  while (std::chrono::steady_clock::now() < deadline) {
    auto m = ws.read(100ms);  // frames that came before the close are still read
    if (m && m->find(key) != std::string::npos) return *m;
    if (!m && ws.closed()) break;
  }
  return {};
}

// Sends `frames` on a fresh connection; expects `unauthorized` and close 1008.
void expect_refused(const test::node_process& n, const std::vector<std::string>& frames) {
  net::ws_blocking_client ws;
  std::string err;
  REQUIRE(ws.connect(n.host, n.port, err));
  for (auto& f : frames) REQUIRE(ws.send_text(f, err));
  CHECK_FALSE(read_for(ws, "\"unauthorized\"").empty());
  auto deadline = std::chrono::steady_clock::now() + 5s;
  while (!ws.closed() && std::chrono::steady_clock::now() < deadline) ws.read(100ms);
  CHECK(ws.close_code() == 1008);
}

}  // namespace

TEST_CASE("auth on: WebSocket writers need a hello with a device token covering the device",
          "[auth]") {
  test::temp_dir dir;
  auto node = test::start_node(dir.path() + "/db", {"--auth.tokens-file=" + write_tokens(dir)});
  const std::string reading = R"({"device":"meter-1","seq":1,"values":{"v":1}})";
  expect_refused(node, {reading});                                            // no hello
  expect_refused(node, {R"({"hello":{"device":"meter-1"}})"});               // no token
  expect_refused(node, {R"({"hello":{"device":"meter-1","token":"nope"}})"});  // unknown token
  expect_refused(node, {R"({"hello":{"device":"pump-1","token":"dev-tok"}})"});  // not its device
  expect_refused(node, {R"({"hello":{"device":"meter-1","token":"dev-tok"}})",
                        R"({"device":"pump-1","seq":1,"values":{"v":1}})"});  // another device
  expect_refused(node, {R"({"hello":{"device":"meter-1","token":"dev-tok"}})",
                        R"({"subscribe":["meter-*"]})"});  // device tokens may not read
  expect_refused(node, {R"({"hello":{"token":"read-tok"}})", reading});  // readers may not write

  net::ws_blocking_client ws;
  std::string err;
  REQUIRE(ws.connect(node.host, node.port, err));
  REQUIRE(ws.send_text(R"({"hello":{"device":"meter-1","token":"dev-tok"}})", err));
  CHECK_FALSE(read_for(ws, "\"welcome\"").empty());
  REQUIRE(ws.send_text(reading, err));
  CHECK_FALSE(read_for(ws, "\"ack\"").empty());

  net::ws_blocking_client sub;
  REQUIRE(sub.connect(node.host, node.port, err));
  REQUIRE(sub.send_text(R"({"hello":{"token":"read-tok"}})", err));
  CHECK_FALSE(read_for(sub, "\"welcome\"").empty());
  REQUIRE(sub.send_text(R"({"subscribe":["meter-*"]})", err));
  CHECK_FALSE(read_for(sub, "\"snapshot\"").empty());
}

TEST_CASE("auth on: HTTP needs a bearer token, health and metrics stay open", "[auth]") {
  test::temp_dir dir;
  auto node = test::start_node(dir.path() + "/db", {"--auth.tokens-file=" + write_tokens(dir)});
  for (auto token : {"", "nope", "dev-tok"}) {
    auto res = http(node, "GET", "/api/v1/devices", token);
    INFO(token << ": " << res.body);
    CHECK(res.status == 401);
    CHECK(json::parse(res.body)["error"]["code"] == "unauthorized");
  }
  CHECK(http(node, "GET", "/api/v1/devices", "read-tok").status == 200);
  auto bearer_lower = net::http_response{};
  std::string err;
  REQUIRE(net::http_request(node.host, node.port, "GET", "/api/v1/devices", "", bearer_lower, err,
                            10s, "application/json", {{"Authorization", "bearer read-tok"}}));
  CHECK(bearer_lower.status == 200);
  CHECK(http(node, "GET", "/healthz", "").status == 200);
  CHECK(http(node, "GET", "/readyz", "").status == 200);
  CHECK(http(node, "GET", "/metrics", "").status == 200);
  auto page = http(node, "GET", "/", "");  // the dashboard asks for a token itself
  CHECK(page.status == 200);
  CHECK(page.body.find("Reader token") != std::string::npos);

  const std::string body = R"([{"device":"meter-2","seq":1,"values":{"v":2}}])";
  CHECK(http(node, "POST", "/api/v1/readings", "", body).status == 401);
  CHECK(http(node, "POST", "/api/v1/readings", "read-tok", body).status == 401);
  CHECK(http(node, "POST", "/api/v1/readings", "dev-tok",
             R"([{"device":"meter-3","seq":1,"values":{"v":1}},{"device":"pump-1","seq":1,"values":{"v":1}}])")
          .status == 401);  // one device it may not write: nothing stored
  CHECK(http(node, "GET", "/api/v1/devices/meter-3", "read-tok").status == 404);
  CHECK(http(node, "POST", "/api/v1/readings", "dev-tok", body).status == 200);
  CHECK(http(node, "GET", "/api/v1/devices/meter-2", "read-tok").status == 200);
  CHECK(node.proc->out().find("listening on 127.0.0.1:") != std::string::npos);
}

TEST_CASE("start-up: auth off keeps to loopback and says so, a bad tokens file stops it", "[auth]") {
  test::temp_dir dir;
  {
    test::child off(test::node_binary(), {"--net.port=0", "--storage.path=" + dir.path() + "/db"});
    CHECK_FALSE(off.wait_for_line("listening on 127.0.0.1:", 20s).empty());
    CHECK(off.err().find("auth is off") != std::string::npos);
    test::child on(test::node_binary(), {"--net.port=0", "--storage.path=" + dir.path() + "/db2",
                                         "--auth.tokens-file=" + write_tokens(dir)});
    CHECK_FALSE(on.wait_for_line("listening on", 20s).empty());
    CHECK(on.err().find("auth is on: 2 device and 2 reader tokens") != std::string::npos);
  }
  test::child open_to_all(test::node_binary(),
                          {"--net.port=0", "--net.address=0.0.0.0", "--storage.path=" + dir.path() + "/x"});
  CHECK(open_to_all.wait(20s) == 2);
  CHECK(open_to_all.err().find("net.address") != std::string::npos);

  auto bad = dir.path() + "/bad-tokens";
  std::ofstream{bad} << "device meter-* dev-tok\nwriter x\n";
  test::child bad_file(test::node_binary(), {"--net.port=0", "--auth.tokens-file=" + bad,
                                             "--storage.path=" + dir.path() + "/y"});
  CHECK(bad_file.wait(20s) == 2);
  CHECK(bad_file.err().find(bad + ":2") != std::string::npos);
  test::child missing(test::node_binary(), {"--net.port=0", "--auth.tokens-file=" + dir.path() + "/none",
                                            "--storage.path=" + dir.path() + "/z"});
  CHECK(missing.wait(20s) == 2);
}

TEST_CASE("auth on: pulse-sim with --token writes and verifies, without it, it gives up", "[auth]") {
  test::temp_dir dir;
  auto node = test::start_node(dir.path() + "/db", {"--auth.tokens-file=" + write_tokens(dir)});
  auto addr = "--node=127.0.0.1:" + std::to_string(node.port);
  test::child sim(test::sim_binary(), {addr, "--devices=5", "--rate=50", "--duration=1s",
                                       "--token=sim-tok", "--verify", "--quiet"});
  INFO(sim.out() << sim.err());
  CHECK(sim.wait(60s) == 0);
  test::child no_token(test::sim_binary(), {addr, "--devices=2", "--rate=50", "--duration=1s", "--quiet"});
  INFO(no_token.out() << no_token.err());
  CHECK(no_token.wait(60s) == 1);
}
