// Integration: InfluxDB line protocol over HTTP (issue 11, point 5) against a
// real pulse-node: Telegraf-shaped bodies to /write and /api/v2/write, plain
// and gzip, stored as documented; bad lines refused whole with their number;
// bad gzip, encodings, precisions and tokens refused.

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <fstream>
#include <string>
#include <vector>

#include "net/http_client.hpp"
#include "tests/support/gzip.hpp"
#include "tests/support/http_helpers.hpp"
#include "tests/support/process.hpp"

using namespace pulse;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

using test::header_list;

// Line protocol is text, as Telegraf labels it.
net::http_response send(const test::node_process& n, const std::string& method,
                        const std::string& target, const std::string& body = "",
                        const header_list& headers = {}) {
  return test::http_send(n, method, target, body, headers, "text/plain; charset=utf-8");
}

std::int64_t now_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

// count, sum of one metric of one device over everything stored.
std::pair<std::uint64_t, double> stored(const test::node_process& n, const std::string& device,
                                        const std::string& metric, const header_list& h = {}) {
  auto res = send(n, "GET", "/api/v1/devices/" + device + "/aggregate?metric=" + metric +
                              "&fn=count,sum&from=0&to=" + std::to_string(now_ms() + 86'400'000),
                  "", h);
  INFO(res.body);
  REQUIRE(res.status == 200);
  auto j = json::parse(res.body);
  if (j["buckets"].empty()) return {0, 0};
  return {j["buckets"][0]["count"].get<std::uint64_t>(), j["buckets"][0]["sum"].get<double>()};
}

// What Telegraf's influxdb output writes for a few common inputs, 10 s apart.
std::string telegraf_body(std::int64_t t_ns, int rounds) {
  std::string b;
  for (int i = 0; i < rounds; ++i) {
    auto ts = std::to_string(t_ns + i * 10'000'000'000LL);
    b += "cpu,cpu=cpu-total,host=edge-01 usage_idle=" + std::to_string(90 + i) +
         ",usage_user=1.5,usage_system=0.5 " + ts + "\n";
    b += "mem,host=edge-01 used=" + std::to_string(1000 + i) +
         "i,available_percent=42.5,total=8000000000u " + ts + "\n";
    b += "disk,device=sda1,fstype=ext4,host=edge-01,mode=rw,path=/ used_percent=12.5,inodes_free=100i " + ts + "\n";
    b += "system,host=edge-01 uptime=" + std::to_string(3600 + i) + "i,uptime_format=\" 1:00\",n_cpus=2i " + ts + "\n";
  }
  return b;
}

}  // namespace

TEST_CASE("Telegraf bodies over /write and /api/v2/write, plain and gzip, are stored",
          "[integration][line_protocol]") {
  test::temp_dir dir;
  auto node = test::start_node(dir.path() + "/db");
  const std::int64_t t0_ns = (now_ms() - 3'600'000) * 1'000'000;

  auto res = send(node, "POST", "/write?db=telegraf&rp=autogen&precision=ns", telegraf_body(t0_ns, 5));
  INFO(res.body);
  CHECK(res.status == 204);
  CHECK(res.body.empty());
  // Stored at once, as the documented mapping says.
  CHECK(stored(node, "cpu:cpu-total:edge-01", "usage_idle") == std::pair<std::uint64_t, double>{5, 90 + 91 + 92 + 93 + 94});
  CHECK(stored(node, "mem:edge-01", "used") == std::pair<std::uint64_t, double>{5, 1000 + 1001 + 1002 + 1003 + 1004});
  CHECK(stored(node, "mem:edge-01", "total").second == 5 * 8e9);
  CHECK(stored(node, "disk:sda1:ext4:edge-01:rw:_", "used_percent").first == 5);
  CHECK(stored(node, "system:edge-01", "uptime").first == 5);
  CHECK(stored(node, "system:edge-01", "uptime_format").first == 0);  // strings skipped
  auto rows = json::parse(send(node, "GET", "/api/v1/devices/cpu:cpu-total:edge-01/readings?from=0&limit=1").body);
  CHECK(rows["readings"][0]["ts"] == t0_ns / 1'000'000);
  CHECK(rows["readings"][0]["seq"] == 1);  // server-assigned

  // The v2 path with gzip (Telegraf's default) and precision=s.
  const std::int64_t t1_s = now_ms() / 1000 - 600;
  std::string body;
  for (int i = 0; i < 1000; ++i)
    body += "sensor,room=lab temp=" + std::to_string(20 + i % 5) + ".5 " + std::to_string(t1_s + i % 300) + "\n";
  res = send(node, "POST", "/api/v2/write?org=o&bucket=b&precision=s", test::gzip(body),
             {{"Content-Encoding", "gzip"}});
  INFO(res.body);
  CHECK(res.status == 204);
  auto [count, sum] = stored(node, "sensor:lab", "temp");
  CHECK(count == 1000);
  CHECK(sum == Approx(1000 * 22.5));
}

TEST_CASE("line protocol refusals: bad lines whole, gzip, encodings, precision, tokens",
          "[integration][line_protocol]") {
  test::temp_dir dir;
  std::ofstream(dir.path() + "/tokens")
    << "[device]\ntg-tok = \"cpu:*\"\n[reader]\nread-tok = \"\"\n";
  auto node = test::start_node(dir.path() + "/db", {"--auth.tokens-file=" + dir.path() + "/tokens",
                                                    "--net.max-body-bytes=1048576"});
  const header_list tok{{"Authorization", "Token tg-tok"}};
  const header_list reader{{"Authorization", "Bearer read-tok"}};
  auto ts = std::to_string(now_ms() * 1'000'000);

  SECTION("a bad line refuses the whole body, naming the line") {
    auto res = send(node, "POST", "/write?db=x",
                    "cpu,host=a v=1 " + ts + "\n\ncpu,host=a v=x " + ts + "\ncpu,host=a v=3\n", tok);
    INFO(res.body);
    CHECK(res.status == 400);
    auto j = json::parse(res.body);
    CHECK(j["error"]["code"] == "invalid_reading");
    CHECK(j["error"]["message"].get<std::string>().find("line 3: field 'v'") != std::string::npos);
    CHECK(send(node, "GET", "/api/v1/devices/cpu:a", "", reader).status == 404);  // nothing stored
    // Seconds at the default ns precision.
    res = send(node, "POST", "/write", "cpu,host=a v=1 1731801600\n", tok);
    CHECK(res.status == 400);
    CHECK(res.body.find("before 1973") != std::string::npos);
  }
  SECTION("parameters") {
    for (auto t : {"/write?precision=d", "/write?precision=x", "/api/v2/write?precision=n",
                   "/api/v2/write?db=x", "/write?bucket=b", "/write?precision=%zz"}) {
      auto res = send(node, "POST", t, "cpu,host=a v=1\n", tok);
      INFO(t << " -> " << res.body);
      CHECK(res.status == 400);
      CHECK(json::parse(res.body)["error"]["code"] == "bad_request");
    }
    CHECK(send(node, "POST", "/write?precision=s&db=x&u=user&p=pw&consistency=one", "cpu,host=a v=1\n", tok).status == 204);
    CHECK(send(node, "GET", "/write", "", reader).status == 405);
    CHECK(send(node, "GET", "/api/v2/write", "", reader).status == 405);
  }
  SECTION("gzip: corrupt, unsupported encodings, and a bomb past net.max-body-bytes") {
    auto gz = test::gzip("cpu,host=a v=1\n");
    auto res = send(node, "POST", "/write", gz.substr(0, gz.size() - 4), {{"Authorization", "Token tg-tok"}, {"Content-Encoding", "gzip"}});
    CHECK(res.status == 400);
    CHECK(res.body.find("gzip") != std::string::npos);
    res = send(node, "POST", "/write", "cpu,host=a v=1\n", {{"Authorization", "Token tg-tok"}, {"Content-Encoding", "br"}});
    CHECK(res.status == 415);
    std::string big;
    while (big.size() < (2u << 20)) big += "cpu,host=a v=1\n";
    res = send(node, "POST", "/write", test::gzip(big), {{"Authorization", "Token tg-tok"}, {"Content-Encoding", "gzip"}});
    CHECK(res.status == 413);
    CHECK(json::parse(res.body)["error"]["code"] == "too_large");
    // The node is fine afterwards.
    res = send(node, "POST", "/write", test::gzip("cpu,host=a v=2\n"), {{"Authorization", "Token tg-tok"}, {"Content-Encoding", "gzip"}});
    CHECK(res.status == 204);
  }
  SECTION("tokens") {
    CHECK(send(node, "POST", "/write", "cpu,host=a v=1\n").status == 401);
    CHECK(send(node, "POST", "/write", "cpu,host=a v=1\n", reader).status == 401);
    CHECK(send(node, "POST", "/write", "cpu,host=a v=1\n", {{"Authorization", "Token nope"}}).status == 401);
    // The token covers cpu:*, not mem:*: nothing of the body is stored.
    auto res = send(node, "POST", "/api/v2/write", "cpu,host=b v=1\nmem,host=b v=1\n", tok);
    CHECK(res.status == 401);
    CHECK(send(node, "GET", "/api/v1/devices/cpu:b", "", reader).status == 404);
    CHECK(send(node, "POST", "/api/v2/write", "cpu,host=b v=1\n", {{"Authorization", "Bearer tg-tok"}}).status == 204);
    CHECK(stored(node, "cpu:b", "v", reader).first == 1);
  }
}
