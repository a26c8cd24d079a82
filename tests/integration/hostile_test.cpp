// Integration: hostile input against a real pulse-node on loopback. Every bad
// input gets the answer docs/protocol.md and docs/api.md document (error code, close code, HTTP
// status with the JSON error shape), and after each one the node still takes
// a good reading end to end (write, RocksDB, ack) on another connection.
// Bytes that no well-behaved client library would send go over a plain TCP
// socket (raw_conn).

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <boost/asio.hpp>

#include <chrono>
#include <cstdio>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "net/http_client.hpp"
#include "net/ws_client.hpp"
#include "tests/support/process.hpp"
#include "tests/support/ws_helpers.hpp"

using namespace pulse;
using namespace std::chrono_literals;
using test::connect;
using test::read_until;
using nlohmann::json;
namespace asio = boost::asio;
using tcp = asio::ip::tcp;

namespace {

// Limits the hostile node runs with: small enough that over-limit inputs are
// cheap to send, large enough for the 100,001-reading frames below.
constexpr std::size_t max_frame_bytes = 512 * 1024;
constexpr std::size_t max_body_bytes = 1 << 20;

// Bad inputs tried in this process; said once at exit (ctest runs each test
// case in a process of its own, and sections rerun a test case).
std::size_t bad_inputs = 0;
struct bad_input_report {
  ~bad_input_report() {
    if (bad_inputs > 0) std::printf("hostile: %zu bad inputs tried\n", bad_inputs);
  }
} report_at_exit;

// Short, so that the slow-loris test is quick; the default is 10 s.
constexpr auto http_timeout = 2s;

test::node_process start_hostile_node(const test::temp_dir& dir) {
  return test::start_node(dir.path() + "/db",
                          {"--net.max-frame-bytes=" + std::to_string(max_frame_bytes),
                           "--net.max-body-bytes=" + std::to_string(max_body_bytes),
                           "--net.http-timeout=" + std::to_string(http_timeout.count()) + "s"});
}

// --- a plain TCP connection ----------------------------------------------------

// Sends and receives raw bytes. Every call is bounded: operations run on a
// private io_context for at most their timeout, then are cancelled.
class raw_conn {
 public:
  bool connect(std::uint16_t port) {
    boost::system::error_code ec;
    run([&](auto done) {
      sock_.async_connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port),
                          [&ec, done](boost::system::error_code e) {
                            ec = e;
                            done();
                          });
    }, 5s);
    return !ec && sock_.is_open();
  }

  // Writes everything; false if the peer is gone (or the write timed out).
  bool write(const std::string& bytes, std::chrono::milliseconds timeout = 5s) {
    boost::system::error_code ec = asio::error::timed_out;
    run([&](auto done) {
      asio::async_write(sock_, asio::buffer(bytes),
                        [&ec, done](boost::system::error_code e, std::size_t) {
                          ec = e;
                          done();
                        });
    }, timeout);
    return !ec;
  }

  // Reads until the peer closes or `timeout` passes; returns all received so far.
  const std::string& read_until_close(std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!eof_ && std::chrono::steady_clock::now() < deadline) read_some(deadline);
    return received_;
  }

  // Reads until `needle` has arrived, the peer closes or `timeout` passes.
  bool read_until(const std::string& needle, std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (received_.find(needle) == std::string::npos && !eof_ &&
           std::chrono::steady_clock::now() < deadline)
      read_some(deadline);
    return received_.find(needle) != std::string::npos;
  }

  // Whether the peer has closed, checked without waiting more than `wait`.
  bool peer_closed(std::chrono::milliseconds wait = 0ms) {
    if (!eof_) read_some(std::chrono::steady_clock::now() + wait);
    return eof_;
  }

  std::string& received() { return received_; }

 private:
  template <class Start>
  void run(Start start, std::chrono::milliseconds timeout) {
    bool finished = false;
    start([&finished] { finished = true; });
    ioc_.restart();
    ioc_.run_for(timeout);
    if (!finished) {
      // Handlers reference this frame's locals: let the cancelled one run.
      boost::system::error_code ignored;
      sock_.cancel(ignored);
      ioc_.restart();
      while (!finished && ioc_.run_one_for(1s) > 0) {
      }
    }
  }

  void read_some(std::chrono::steady_clock::time_point deadline) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left < 1ms) left = 1ms;  // one poll even when the deadline has passed
    char buf[16384];
    run([&](auto done) {
      sock_.async_read_some(asio::buffer(buf), [&, done](boost::system::error_code e, std::size_t n) {
        received_.append(buf, n);
        if (e && e != asio::error::operation_aborted) eof_ = true;  // EOF or reset
        done();
      });
    }, left);
  }

  asio::io_context ioc_;
  tcp::socket sock_{ioc_};
  std::string received_;
  bool eof_ = false;
};

// --- WebSocket helpers --------------------------------------------------------

// The node still works end to end: a fresh connection, one good reading, and
// its ack, which the node sends only once RocksDB has it.
void check_alive(const test::node_process& n) {
  static std::uint64_t seq = 0;
  ++seq;
  INFO("the node still stores and acks a good reading");
  net::ws_blocking_client ws;
  std::string error;
  if (!ws.connect(n.host, n.port, error)) {
    bool running = n.proc->running();
    FAIL("cannot connect: " << error << (running ? "" : "; pulse-node has exited")
                            << "\npulse-node stderr:\n" << n.proc->err());
  }
  std::string err;
  REQUIRE(ws.send_text(R"({"device":"alive","seq":)" + std::to_string(seq) +
                           R"(,"values":{"ok":1}})",
                       err));
  auto ack = read_until(ws, "ack")["ack"];
  CHECK(ack["device"] == "alive");
  CHECK(ack["seq"] == seq);
}

// Sends `frame` on `ws`, then a good reading as a marker, and returns the
// errors that arrived before the marker's ack: the frame's own errors, since
// a session answers frames in order. The ack also proves the connection is
// still open and serving.
std::vector<json> errors_of(net::ws_blocking_client& ws, const std::string& frame,
                            bool binary = false) {
  static std::uint64_t marker = 0;
  ++marker;
  std::string err;
  REQUIRE((binary ? ws.send_binary(frame, err) : ws.send_text(frame, err)));
  REQUIRE(ws.send_text(R"({"device":"marker","seq":)" + std::to_string(marker) +
                           R"(,"values":{"m":1}})",
                       err));
  std::vector<json> errors;
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (std::chrono::steady_clock::now() < deadline) {
    auto msg = ws.read(200ms);
    if (!msg) {
      INFO("closed with " << ws.close_code() << " " << ws.close_reason());
      REQUIRE_FALSE(ws.closed());
      continue;
    }
    auto j = json::parse(*msg, nullptr, false);
    REQUIRE_FALSE(j.is_discarded());
    if (j.contains("error")) {
      auto& e = j["error"];
      INFO(*msg);
      CHECK(e["code"].is_string());
      CHECK(e["message"].is_string());
      errors.push_back(e);
    } else if (j.contains("ack") && j["ack"]["device"] == "marker" && j["ack"]["seq"] == marker) {
      return errors;
    }
  }
  FAIL("no ack for the marker reading after a bad frame");
  return errors;
}

struct ws_case {
  std::string name;
  std::string frame;
  std::string code;     // the first error's code
  std::string message;  // a part of some error's message ("" = any)
};

std::string repeat(const std::string& s, std::size_t n, const std::string& sep = "") {
  std::string out;
  out.reserve((s.size() + sep.size()) * n);
  for (std::size_t i = 0; i < n; ++i) {
    if (i) out += sep;
    out += s;
  }
  return out;
}

std::string reading(const std::string& fields) {
  return R"({"device":"bad-r",)" + fields + "}";
}

std::int64_t now_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

std::vector<ws_case> ws_cases() {
  std::vector<ws_case> c;
  auto add = [&](std::string name, std::string frame, std::string code, std::string msg = "") {
    c.push_back({std::move(name), std::move(frame), std::move(code), std::move(msg)});
  };
  const std::string vals = R"("values":{"v":1})";

  // Malformed JSON: always exactly invalid_json.
  add("truncated object", R"({"device":"bad-j","values":{"v":1})", "invalid_json");
  add("not json", "{not json", "invalid_json");
  add("empty frame", "", "invalid_json");
  add("whitespace only", " \r\n\t ", "invalid_json");
  add("bare number", "42", "invalid_json");
  add("bare string", R"("meter-7")", "invalid_json");
  add("null", "null", "invalid_json");
  add("trailing garbage", R"({"device":"bad-j","values":{"v":1}} {"x":1})", "invalid_json");
  add("trailing comma", R"({"device":"bad-j","values":{"v":1},})", "invalid_json");
  add("single quotes", R"({'device':'bad-j','values':{'v':1}})", "invalid_json");
  add("leading zero", R"({"device":"bad-j","values":{"v":01}})", "invalid_json");
  add("hex number", R"({"device":"bad-j","values":{"v":0x10}})", "invalid_json");
  add("raw newline in string", "{\"device\":\"bad\nj\",\"values\":{\"v\":1}}", "invalid_json");
  add("broken JSON inside an ignored field", R"({"device":"bad-j","values":{"v":1},"x":[1,}})",
      "invalid_json");
  add("bad escape", R"({"device":"bad-j\q","values":{"v":1}})", "invalid_json");
  add("lone surrogate escape", R"({"device":"bad-j","values":{"v":1},"meta":{"k":"\ud800"}})",
      "invalid_json");
  add("unterminated string", R"({"device":"bad-j)", "invalid_json");

  // Deep nesting: simdjson's depth limit (1024) makes it invalid JSON, wherever it is.
  add("100,000 open brackets", std::string(100000, '['), "invalid_json");
  add("5,000 nested arrays", std::string(5000, '[') + std::string(5000, ']'), "invalid_json");
  add("2,000 nested objects in a reading",
      R"({"device":"bad-n",)" + vals + R"(,"x":)" + repeat(R"({"a":)", 2000) + "1" +
          std::string(2000, '}') + "}",
      "invalid_json");
  add("nesting within the limit in meta",
      R"({"device":"bad-n",)" + vals + R"(,"meta":{"a":)" + std::string(500, '[') +
          std::string(500, ']') + "}}",
      "invalid_reading", "meta.a is not a string or number");

  // Huge arrays: more than wire::max_readings_per_frame (100,000) readings.
  add("array of 100,001 non-readings", "[" + repeat("0", 100001, ",") + "]", "too_large");
  add("batch of 100,001 empty readings",
      R"({"device":"bad-big","readings":[)" + repeat("{}", 100001, ",") + "]}", "too_large");
  add("30,000 metrics in one reading",
      [] {
        std::string v;
        for (int i = 0; i < 30000; ++i) v += (i ? ",\"m" : "\"m") + std::to_string(i) + "\":1";
        return R"({"device":"bad-big","values":{)" + v + "}}";
      }(),
      "invalid_reading", "more than 64 metrics");

  // Too many metrics: 65 (64 is the limit; checked to pass separately).
  {
    std::string v;
    for (int i = 0; i < 65; ++i) v += (i ? ",\"m" : "\"m") + std::to_string(i) + "\":1";
    add("65 metrics", R"({"device":"bad-m","values":{)" + v + "}}", "invalid_reading",
        "more than 64 metrics");
  }
  add("empty values", reading(R"("values":{})"), "invalid_reading", "values is empty");
  add("missing values", reading(R"("seq":1)"), "invalid_reading", "values is missing");
  add("values is an array", reading(R"("values":[1,2])"), "invalid_reading");
  add("metric name with a space", reading(R"("values":{"volt age":1})"), "invalid_reading",
      "not a valid metric name");
  add("metric name of 65 chars", reading(R"("values":{")" + std::string(65, 'm') + R"(":1})"),
      "invalid_reading", "not a valid metric name");
  add("metric twice", reading(R"("values":{"v":1,"v":2})"), "invalid_reading", "appears twice");

  // Values that are not finite numbers.
  add("NaN literal", reading(R"("values":{"v":NaN})"), "invalid_json");
  add("Infinity literal", reading(R"("values":{"v":Infinity})"), "invalid_json");
  add("-Infinity literal", reading(R"("values":{"v":-Infinity})"), "invalid_json");
  add("\"NaN\" string", reading(R"("values":{"v":"NaN"})"), "invalid_reading",
      "values.v is not a number");
  add("numeric string", reading(R"("values":{"v":"1.5"})"), "invalid_reading",
      "values.v is not a number");
  add("1e400", reading(R"("values":{"v":1e400})"), "invalid_reading", "not a finite number");
  add("-1e400", reading(R"("values":{"v":-1e400})"), "invalid_reading", "not a finite number");
  add("null value", reading(R"("values":{"v":null})"), "invalid_reading");
  add("bool value", reading(R"("values":{"v":true})"), "invalid_reading");
  add("object value", reading(R"("values":{"v":{"x":1}})"), "invalid_reading");
  add("array value", reading(R"("values":{"v":[1]})"), "invalid_reading");

  // Device ids: [A-Za-z0-9:._-]{1,128}.
  for (auto& [name, dev] : std::vector<std::pair<std::string, std::string>>{
           {"empty device", R"("")"},
           {"129-char device", "\"" + std::string(129, 'd') + "\""},
           {"device with a space", R"("bad dev")"},
           {"device with a slash", R"("bad/dev")"},
           {"path traversal device", R"("../../etc/passwd")"},
           {"non-ASCII device", "\"z\xc3\xa4hler\""},
           {"escaped NUL in device", R"("bad\u0000dev")"},
           {"wildcard device", R"("bad-*")"},
           {"numeric device", "5"},
           {"null device", "null"},
           {"object device", R"({"id":"x"})"}})
    add(name, R"({"device":)" + dev + "," + vals + "}", "invalid_reading", "device");
  add("missing device", "{" + vals + "}", "invalid_reading", "device");

  // seq: an unsigned 64-bit integer.
  for (auto& seq : {"-1", "1.5", "1e3", "\"5\"", "18446744073709551616", "null", "true", "-0.0"})
    add(std::string("seq ") + seq, reading(std::string(R"("seq":)") + seq + "," + vals),
        "invalid_reading", "seq");

  // ts: ms since epoch or RFC 3339, not before 1970, at most 7 days ahead.
  auto future = std::to_string(now_ms() + 8 * 24 * 3600 * 1000LL);
  for (auto& ts : std::vector<std::string>{
           future, "253402300800000", "9223372036854775807", "9223372036854775808",
           "18446744073709551615", "-1", "-9223372036854775808", "1.5", "1e12", "null", "true",
           R"("1969-12-31T23:59:59Z")", R"("0000-01-01T00:00:00Z")", R"("2023-02-30T00:00:00Z")",
           R"("2023-09-17 20:29:59")", R"("yesterday")", R"("")", R"("9999-12-31T23:59:59Z")"})
    add("ts " + ts, reading(R"("ts":)" + ts + "," + vals), "invalid_reading", "ts");

  // Messages of no known type, and misused control messages.
  add("empty object", "{}", "invalid_reading", "unknown message type");
  add("unknown key", R"({"foo":1})", "invalid_reading", "unknown message type");
  add("server message echoed", R"({"ack":{"device":"x","seq":1}})", "invalid_reading",
      "unknown message type");
  add("reading with an unknown key", reading(vals + R"(,"colour":"red")"), "invalid_reading",
      "unknown field colour");
  add("reading and batch mixed", reading(vals + R"(,"readings":[])"), "invalid_reading",
      "unknown field readings");
  add("array of numbers", "[1,2,3]", "invalid_reading", "is not an object");
  add("batch in an array", R"([{"device":"bad-a","readings":[{"values":{"v":1}}]}])",
      "invalid_reading");
  add("hello with a bad device", R"({"hello":{"device":"bad id"}})", "invalid_reading", "hello");
  add("hello not an object", R"({"hello":"meter-7"})", "invalid_reading", "hello");
  add("subscribe not a list", R"({"subscribe":"meter-*"})", "invalid_reading", "subscribe");
  add("subscribe pattern with an inner star", R"({"subscribe":["a*b"]})", "invalid_reading",
      "subscribe");
  add("OCPP payload string not JSON", R"({"charge_point_id":"bad-cp","payload":"{\"meterValue\":["})",
      "invalid_json", "payload string");
  add("OCPP sampled value NaN",
      R"({"charge_point_id":"bad-cp","payload":{"connectorId":1,"meterValue":[{"timestamp":"2023-09-17T20:29:59Z","sampledValue":[{"value":"NaN"}]}]}})",
      "invalid_reading", "is not a number");
  add("OCPP without timestamp",
      R"({"charge_point_id":"bad-cp","payload":{"meterValue":[{"sampledValue":[{"value":"1"}]}]}})",
      "invalid_reading", "timestamp");
  return c;
}

// --- raw WebSocket frames --------------------------------------------------------

// A client frame (masked unless `masked` is false) with a chosen header.
std::string ws_frame(std::uint8_t first_byte, const std::string& payload, bool masked = true,
                     std::uint64_t claimed_len = UINT64_MAX) {
  std::uint64_t len = claimed_len == UINT64_MAX ? payload.size() : claimed_len;
  std::string f(1, static_cast<char>(first_byte));
  std::uint8_t mask_bit = masked ? 0x80 : 0;
  if (len < 126) {
    f += static_cast<char>(mask_bit | len);
  } else if (len <= 0xffff) {
    f += static_cast<char>(mask_bit | 126);
    f += static_cast<char>(len >> 8);
    f += static_cast<char>(len & 0xff);
  } else {
    f += static_cast<char>(mask_bit | 127);
    for (int i = 7; i >= 0; --i) f += static_cast<char>((len >> (8 * i)) & 0xff);
  }
  const char key[4] = {0x12, 0x34, 0x56, 0x78};
  if (masked) f.append(key, 4);
  for (std::size_t i = 0; i < payload.size(); ++i)
    f += masked ? static_cast<char>(payload[i] ^ key[i % 4]) : payload[i];
  return f;
}

// The close code of the first close frame the server sent after the 101
// answer, 1006 if the connection ended without one, 0 if it is still open.
int server_close_code(raw_conn& c, std::chrono::milliseconds timeout) {
  const auto& bytes = c.read_until_close(timeout);
  auto pos = bytes.find("\r\n\r\n");
  if (pos == std::string::npos) return -1;
  pos += 4;
  while (pos + 2 <= bytes.size()) {
    auto op = static_cast<std::uint8_t>(bytes[pos]) & 0x0f;
    std::uint64_t len = static_cast<std::uint8_t>(bytes[pos + 1]) & 0x7f;
    std::size_t hdr = 2;
    if (len == 126) {
      if (pos + 4 > bytes.size()) break;
      len = (static_cast<std::uint8_t>(bytes[pos + 2]) << 8) | static_cast<std::uint8_t>(bytes[pos + 3]);
      hdr = 4;
    } else if (len == 127) {
      if (pos + 10 > bytes.size()) break;
      len = 0;
      for (int i = 0; i < 8; ++i) len = (len << 8) | static_cast<std::uint8_t>(bytes[pos + 2 + i]);
      hdr = 10;
    }
    if (pos + hdr + len > bytes.size()) break;
    if (op == 0x8) {
      if (len < 2) return 1005;
      return (static_cast<std::uint8_t>(bytes[pos + hdr]) << 8) |
             static_cast<std::uint8_t>(bytes[pos + hdr + 1]);
    }
    pos += hdr + len;
  }
  return c.peer_closed() ? 1006 : 0;
}

bool raw_ws_handshake(raw_conn& c, const test::node_process& n) {
  if (!c.connect(n.port)) return false;
  c.write("GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
          "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n");
  return c.read_until("\r\n\r\n", 5s) && c.received().rfind("HTTP/1.1 101", 0) == 0;
}

// --- raw HTTP ----------------------------------------------------------------------

struct raw_response {
  int status = 0;
  std::string head;
  std::string body;
};

// Sends `request` as is and reads the answer until the node closes.
raw_response raw_http(const test::node_process& n, const std::string& request) {
  raw_conn c;
  REQUIRE(c.connect(n.port));
  c.write(request);  // the node may answer and close before it has read it all
  const auto& bytes = c.read_until_close(10s);
  raw_response r;
  auto end = bytes.find("\r\n\r\n");
  if (bytes.rfind("HTTP/1.1 ", 0) != 0 || end == std::string::npos) return r;
  r.status = std::stoi(bytes.substr(9, 3));
  r.head = bytes.substr(0, end);
  r.body = bytes.substr(end + 4);
  return r;
}

// The JSON error shape of docs/api.md: {"error":{"code":..,"message":..}}.
void check_error_shape(const std::string& body, const std::string& code = "") {
  INFO(body);
  auto j = json::parse(body, nullptr, false);
  REQUIRE_FALSE(j.is_discarded());
  REQUIRE(j.is_object());
  CHECK(j.size() == 1);
  REQUIRE(j.contains("error"));
  CHECK(j["error"]["code"].is_string());
  CHECK(j["error"]["message"].is_string());
  if (!code.empty()) CHECK(j["error"]["code"] == code);
}

}  // namespace

TEST_CASE("hostile WebSocket frames get their documented error and the node keeps serving") {
  test::temp_dir dir;
  auto node = start_hostile_node(dir);
  net::ws_blocking_client ws;
  connect(ws, node);

  for (auto& c : ws_cases()) {
    INFO("bad frame: " << c.name);
    ++bad_inputs;
    auto errors = errors_of(ws, c.frame);
    REQUIRE_FALSE(errors.empty());
    CHECK(errors[0]["code"] == c.code);
    if (!c.message.empty()) {
      bool found = false;
      for (auto& e : errors)
        found = found || e["message"].get<std::string>().find(c.message) != std::string::npos;
      INFO("errors: " << json(errors).dump().substr(0, 2000));
      CHECK(found);
    }
    check_alive(node);
  }

  // A binary frame: invalid_json, and the connection stays open.
  ++bad_inputs;
  auto errors = errors_of(ws, std::string("\x00\xff{\"device\":\"bad-b\"}", 19), true);
  REQUIRE(errors.size() == 1);
  CHECK(errors[0]["code"] == "invalid_json");
  check_alive(node);

  // The limits themselves are not off by one: 64 metrics are fine, and a
  // meta of 4096 bytes as stored ({"x":"..."}), but not one of 4097.
  std::string v;
  for (int i = 0; i < 64; ++i) v += (i ? ",\"m" : "\"m") + std::to_string(i) + "\":1";
  CHECK(errors_of(ws, R"({"device":"edge-64","seq":1,"values":{)" + v + "}}").empty());
  auto with_meta = [](std::size_t meta_bytes) {
    return R"({"device":"edge-meta","values":{"v":1},"meta":{"x":")" +
           std::string(meta_bytes - 8, 'a') + "\"}}";
  };
  CHECK(errors_of(ws, with_meta(4096)).empty());
  ++bad_inputs;
  errors = errors_of(ws, with_meta(4097));
  REQUIRE(errors.size() == 1);
  CHECK(errors[0]["message"] == "meta is larger than 4096 bytes");
  // OCPP meta (units are client strings) has the same cap; the reading is kept.
  ++bad_inputs;
  errors = errors_of(ws, R"({"charge_point_id":"edge-ocpp","payload":{"meterValue":[{"timestamp":)"
                         R"("2023-09-17T20:29:59Z","sampledValue":[{"value":"1","unit":")" +
                             std::string(5000, 'W') + "\"}]}]}}");
  REQUIRE(errors.size() == 1);
  CHECK(errors[0]["message"].get<std::string>().rfind("meta is larger than 4096 bytes", 0) == 0);

  // Nothing of the bad frames was stored: no device named by one exists.
  net::http_response res;
  std::string err;
  // /metrics counted the errors by code (docs/api.md).
  REQUIRE(net::http_request(node.host, node.port, "GET", "/metrics", "", res, err));
  for (auto code : {"invalid_json", "invalid_reading", "too_large"}) {
    auto line = std::string("pulse_errors_total{code=\"") + code + "\"} ";
    auto pos = res.body.find(line);
    REQUIRE(pos != std::string::npos);
    CHECK(std::stoull(res.body.substr(pos + line.size())) > 0);
  }
  for (auto prefix : {"bad", "z"}) {
    REQUIRE(net::http_request(node.host, node.port, "GET",
                              std::string("/api/v1/devices?prefix=") + prefix, "", res, err));
    INFO(res.body);
    REQUIRE(res.status == 200);
    CHECK(json::parse(res.body)["devices"].empty());
  }
}

TEST_CASE("frames over net.max-frame-bytes and WebSocket protocol violations close the connection") {
  test::temp_dir dir;
  auto node = start_hostile_node(dir);

  SECTION("oversized frames close with 1009") {
    for (bool binary : {false, true}) {
      ++bad_inputs;
      net::ws_blocking_client ws;
      connect(ws, node);
      std::string big = R"({"device":"bad-o","values":{"v":1},"meta":{"pad":")" +
                        std::string(max_frame_bytes, 'x') + "\"}}";
      std::string err;
      // The node may close before the whole frame is written; either is fine.
      (void)(binary ? ws.send_binary(big, err) : ws.send_text(big, err));
      auto deadline = std::chrono::steady_clock::now() + 5s;
      while (!ws.closed() && std::chrono::steady_clock::now() < deadline) ws.read(100ms);
      REQUIRE(ws.closed());
      CHECK(ws.close_code() == 1009);
      check_alive(node);
    }
    // A header that only claims a huge length is refused before any payload.
    ++bad_inputs;
    raw_conn c;
    REQUIRE(raw_ws_handshake(c, node));
    c.write(ws_frame(0x81, "", true, std::uint64_t{1} << 62));
    CHECK(server_close_code(c, 5s) == 1009);
    check_alive(node);
  }

  SECTION("protocol violations close the connection, the node keeps serving") {
    struct raw_case {
      const char* name;
      std::string bytes;
      int close_code;  // 1002 protocol error, 1007 invalid payload data
    };
    std::vector<raw_case> cases = {
      {"unmasked client frame", ws_frame(0x81, R"({"device":"bad-u","values":{"v":1}})", false), 1002},
      {"reserved opcode 0x3", ws_frame(0x83, "x"), 1002},
      {"reserved bit RSV1 without an extension", ws_frame(0xC1, "x"), 1002},
      {"continuation without a start", ws_frame(0x80, "x"), 1002},
      {"fragmented ping", ws_frame(0x09, "x"), 1002},
      {"ping over 125 bytes", ws_frame(0x89, std::string(126, 'p')), 1002},
      {"close with an invalid code", ws_frame(0x88, std::string("\x03\xe7", 2)), 1002},
      {"text frame with invalid UTF-8", ws_frame(0x81, "{\"device\":\"bad\xff\"}"), 1007},
      {"new message inside a fragmented one", ws_frame(0x01, "[") + ws_frame(0x81, "{}"), 1002},
      {"fragments adding up past net.max-frame-bytes",
       ws_frame(0x01, std::string(max_frame_bytes / 2, ' ')) +
           ws_frame(0x00, std::string(max_frame_bytes / 2, ' ')) + ws_frame(0x80, "{}"),
       1009},
    };
    for (auto& c : cases) {
      INFO("raw frame: " << c.name);
      ++bad_inputs;
      raw_conn conn;
      REQUIRE(raw_ws_handshake(conn, node));
      conn.write(c.bytes);
      CHECK(server_close_code(conn, 5s) == c.close_code);
      check_alive(node);
    }
    // Fragments within the limit make one frame as usual (the control
    // case for the two above): the reading is acked.
    {
      raw_conn conn;
      REQUIRE(raw_ws_handshake(conn, node));
      conn.received().clear();
      conn.write(ws_frame(0x01, R"({"device":"frag","seq":1,)") + ws_frame(0x89, "ping") +
                 ws_frame(0x00, R"("values":{"v":1})") + ws_frame(0x80, "}"));
      CHECK(conn.read_until(R"({"ack":{"device":"frag","seq":1}})", 10s));
    }
    // Garbage instead of a handshake, and a handshake with a bad version.
    ++bad_inputs;
    auto r = raw_http(node, std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11));
    CHECK((r.status == 400 || r.status == 0));
    check_alive(node);
    ++bad_inputs;
    r = raw_http(node, "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                       "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 7\r\n\r\n");
    CHECK(r.status >= 400);
    CHECK(r.status < 500);
    check_alive(node);
  }
}

TEST_CASE("hostile HTTP requests get 4xx JSON errors and the node keeps serving") {
  test::temp_dir dir;
  auto node = start_hostile_node(dir);
  // Some data, so that requests reach storage where they can.
  {
    net::ws_blocking_client ws;
    connect(ws, node);
    std::string err;
    REQUIRE(ws.send_text(R"({"device":"meter-1","seq":1,"ts":1731801600000,"values":{"voltage":230}})", err));
    read_until(ws, "ack");
  }

  SECTION("oversized headers: 431") {
    for (auto& req : std::vector<std::string>{
             "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(20000, 'a') + "\r\n\r\n",
             "GET /healthz HTTP/1.1\r\nHost: x\r\n" + repeat("X-Many: 1234567890", 2000, "\r\n") +
                 "\r\n\r\n",
             "GET /api/v1/devices?prefix=" + std::string(20000, 'a') + " HTTP/1.1\r\nHost: x\r\n\r\n"}) {
      ++bad_inputs;
      auto r = raw_http(node, req);
      INFO(r.head << "\n" << r.body);
      CHECK(r.status == 431);
      check_error_shape(r.body, "too_large");
      check_alive(node);
    }
  }

  SECTION("HEAD answers have no body, so a keep-alive client stays in step") {
    for (auto target : {"/healthz", "/api/v1/devices/meter-1", "/api/v1/nope"}) {
      INFO("HEAD " << target);
      raw_conn c;
      REQUIRE(c.connect(node.port));
      REQUIRE(c.write(std::string("HEAD ") + target + " HTTP/1.1\r\nHost: x\r\n\r\n" +
                      "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
      const auto& bytes = c.read_until_close(5s);
      INFO(bytes);
      auto end = bytes.find("\r\n\r\n");
      REQUIRE(end != std::string::npos);
      CHECK(bytes.find("Content-Length: ") < end);  // the GET answer's length
      CHECK(bytes.substr(end + 4, 12) == "HTTP/1.1 200");
    }
  }

  SECTION("200 pipelined requests in one write are all answered, in order") {
    ++bad_inputs;
    raw_conn c;
    REQUIRE(c.connect(node.port));
    std::string reqs;
    for (int i = 0; i < 199; ++i)
      reqs += i % 2 ? "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
                    : "GET /api/v1/devices/nope HTTP/1.1\r\nHost: x\r\n\r\n";
    reqs += "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    REQUIRE(c.write(reqs));
    const auto& bytes = c.read_until_close(20s);
    std::vector<std::string> statuses;
    for (auto pos = bytes.find("HTTP/1.1 "); pos != std::string::npos;
         pos = bytes.find("HTTP/1.1 ", pos + 1))
      statuses.push_back(bytes.substr(pos + 9, 3));
    REQUIRE(statuses.size() == 200);
    for (std::size_t i = 0; i < statuses.size(); ++i) CHECK(statuses[i] == (i % 2 ? "200" : "404"));
    check_alive(node);
  }

  SECTION("bodies over net.max-body-bytes: 413") {
    ++bad_inputs;
    auto r = raw_http(node, "POST /api/v1/readings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                            "Content-Length: 99999999999\r\n\r\n[");
    CHECK(r.status == 413);
    check_error_shape(r.body, "too_large");
    check_alive(node);
    ++bad_inputs;
    net::http_response res;
    std::string err;
    std::string body = "[" + repeat(R"({"device":"bad-p","values":{"v":1}})", 40000, ",") + "]";
    REQUIRE(body.size() > max_body_bytes);
    // The node may answer 413 and close before the whole body is written.
    if (net::http_request(node.host, node.port, "POST", "/api/v1/readings", body, res, err)) {
      CHECK(res.status == 413);
      check_error_shape(res.body, "too_large");
    }
    check_alive(node);
  }

  SECTION("malformed HTTP: 400") {
    for (auto& req : std::vector<std::string>{
             "GARBAGE\r\n\r\n",
             "GET /healthz HTTP/9.9\r\nHost: x\r\n\r\n",
             "GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
             "GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
             "POST /api/v1/readings HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
             std::string("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Nul: a\0b\r\n\r\n", 42),
             "GET /healthz HTTP/1.1\r\nHost: x\r\nNo colon here\r\n\r\n",
             "GET /hea lthz HTTP/1.1\r\nHost: x\r\n\r\n"}) {
      INFO("request: " << req);
      ++bad_inputs;
      auto r = raw_http(node, req);
      INFO(r.head << "\n" << r.body);
      CHECK(r.status == 400);
      check_error_shape(r.body);
      check_alive(node);
    }
  }

  SECTION("path traversal: 400 or 404, never a file") {
    for (auto& target : {"/api/v1/devices/../../etc/passwd", "/api/v1/../../etc/passwd",
                         "/api/v1/devices/%2e%2e/%2e%2e/etc/passwd",
                         "/api/v1/devices/..%2f..%2fetc%2fpasswd",
                         "/api/v1/devices/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
                         "/api/v1/devices/..%252f..%252fetc%252fpasswd",
                         "/api/v1/devices/%c0%ae%c0%ae/%c0%ae%c0%ae/etc/passwd",
                         "/api/v1/devices/..\\..\\etc\\passwd", "/api/v1/devices/meter-1%00.json",
                         "/api/v1//devices", "/../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd",
                         "/..%2f..%2fetc%2fpasswd", "//etc/passwd", "/./healthz/../metrics",
                         "../../etc/passwd", "http://127.0.0.1/../../etc/passwd",
                         "/api/v1/devices/meter-1/readings/../../../../etc/passwd"}) {
      INFO("target: " << target);
      ++bad_inputs;
      auto r = raw_http(node, std::string("GET ") + target + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
      INFO(r.head << "\n" << r.body);
      CHECK((r.status == 400 || r.status == 404));
      check_error_shape(r.body);
      CHECK(r.body.find("root:") == std::string::npos);
      check_alive(node);
    }
  }

  SECTION("bad query parameters: 400 with the JSON error shape") {
    const std::string agg = "/api/v1/devices/meter-1/aggregate?";
    const std::string fleet = "/api/v1/aggregate?";
    const std::string readings = "/api/v1/devices/meter-1/readings?";
    for (auto& target : std::vector<std::string>{
             agg + "step=1h",                    // metric missing
             fleet + "step=1h",                  // metric missing
             agg + "metric=",                    // empty = missing
             agg + "metric=volt%20age",
             agg + "metric=" + std::string(65, 'm'),
             agg + "metric=voltage&from=abc",
             agg + "metric=voltage&from=-1",
             agg + "metric=voltage&from=1e3",
             agg + "metric=voltage&from=2023-13-01T00:00:00Z",
             agg + "metric=voltage&from=99999999999999999999999",
             agg + "metric=voltage&to=253402300800001",
             agg + "metric=voltage&from=1731801600000&to=1731801600000",
             agg + "metric=voltage&from=1731801600001&to=1731801600000",
             agg + "metric=voltage&step=0s",
             agg + "metric=voltage&step=-1s",
             agg + "metric=voltage&step=1x",
             agg + "metric=voltage&step=1.5h",
             agg + "metric=voltage&step=h",
             agg + "metric=voltage&step=99999999999999999999d",
             agg + "metric=voltage&step=1ms&from=0",  // too many buckets
             agg + "metric=voltage&fn=median",
             agg + "metric=voltage&fn=avg,,max",
             agg + "metric=voltage&fn=AVG",
             agg + "metric=voltage&metric=current",  // duplicate
             agg + "metric=voltage&form=0",          // typo of from
             agg + "metric=voltage&from=%zz",
             agg + "metric=voltage&from=%4",
             fleet + "metric=voltage&group_by=node",
             fleet + "metric=voltage&prefix=bad%20prefix",
             readings + "limit=0",
             readings + "limit=-1",
             readings + "limit=abc",
             readings + "limit=10001",
             readings + "limit=1e3",
             readings + "limit=18446744073709551616",
             readings + "cursor=garbage",
             readings + "cursor=c" + std::string(32, 'f'),  // ts past year 9999
             readings + "cursor=%ff%fe%00",
             readings + "metric=voltage",  // not a parameter here
             "/api/v1/devices?limit=1001",
             "/api/v1/devices?cursor=a%20b",
             "/api/v1/devices?prefix=%2F",
             "/api/v1/devices/meter-1?x=1",
             "/api/v1/devices/" + std::string(129, 'd'),
             "/api/v1/devices/bad%20id",
             "/api/v1/devices/a%2Fb/readings"}) {
      INFO("target: " << target);
      ++bad_inputs;
      net::http_response res;
      std::string err;
      REQUIRE(net::http_request(node.host, node.port, "GET", target, "", res, err));
      INFO(res.body);
      CHECK(res.status == 400);
      CHECK(res.content_type == "application/json");
      check_error_shape(res.body, "bad_request");
      check_alive(node);
    }
  }

  SECTION("bad POST bodies and methods: 400, 405") {
    struct post_case {
      std::string method, target, body;
      int status;
      std::string code;
    };
    for (auto& c : std::vector<post_case>{
             {"POST", "/api/v1/readings", "{not json", 400, "invalid_json"},
             {"POST", "/api/v1/readings", R"([{"device":"bad-p","values":{"v":"NaN"}}])", 400, "invalid_reading"},
             {"POST", "/api/v1/readings", R"({"hello":{"device":"bad-p"}})", 400, "invalid_reading"},
             {"POST", "/api/v1/readings", "[" + repeat("0", 100001, ",") + "]", 413, "too_large"},
             {"POST", "/api/v1/readings", std::string(5000, '['), 400, "invalid_json"},
             {"POST", "/api/v1/readings", "{\"device\":\"bad-p\xff\",\"values\":{\"v\":1}}", 400, "invalid_json"},
             {"POST", "/api/v1/readings", "\n\n \r\n", 400, "invalid_reading"},  // no readings
             {"DELETE", "/api/v1/devices/meter-1", "", 405, "method_not_allowed"},
             {"PUT", "/api/v1/readings", "[]", 405, "method_not_allowed"},
             {"GET", "/api/v1/readings", "", 405, "method_not_allowed"}}) {
      INFO(c.method << " " << c.target << " " << c.body.substr(0, 80));
      ++bad_inputs;
      net::http_response res;
      std::string err;
      REQUIRE(net::http_request(node.host, node.port, c.method, c.target, c.body, res, err));
      INFO(res.body.substr(0, 500));
      CHECK(res.status == c.status);
      check_error_shape(res.body, c.code);
      check_alive(node);
    }
    // An upgrade to anything but /ws.
    ++bad_inputs;
    auto r = raw_http(node, "GET /api/v1/devices HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                            "Sec-WebSocket-Version: 13\r\n\r\n");
    CHECK(r.status == 404);
    check_error_shape(r.body);
    check_alive(node);
  }
}

TEST_CASE("slow-loris HTTP clients are cut off and do not stop the node serving others") {
  // net.http-timeout runs from a request's first byte to its last, so
  // trickling bytes does not extend it.
  test::temp_dir dir;
  auto node = start_hostile_node(dir);
  constexpr int slow_clients = 20;
  std::vector<std::unique_ptr<raw_conn>> conns;
  const std::string starts[] = {
    "GET /healthz HTTP/1.1\r\nHost: x\r\n",                                      // never-ending headers
    "POST /api/v1/readings HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n[",  // never-ending body
    "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n",                    // never-ending handshake
    "",                                                                          // silent
  };
  for (int i = 0; i < slow_clients; ++i) {
    conns.push_back(std::make_unique<raw_conn>());
    REQUIRE(conns.back()->connect(node.port));
    REQUIRE(conns.back()->write(starts[i % 4]));
    ++bad_inputs;
  }
  auto start = std::chrono::steady_clock::now();
  constexpr auto not_cut = std::chrono::steady_clock::duration::zero();
  std::vector<std::chrono::steady_clock::duration> cut_after(slow_clients, not_cut);
  int open = slow_clients, checks = 0;
  // Trickle a byte to each slow client every 500 ms; serve a good reading and
  // a health check meanwhile; stop once the node has cut every slow client.
  while (open > 0 && std::chrono::steady_clock::now() - start < http_timeout + 15s) {
    for (int i = 0; i < slow_clients; ++i) {
      auto& c = *conns[i];
      if (cut_after[i] != not_cut) continue;
      if (i % 4 != 3) c.write(i % 4 == 1 ? "0" : "X", 1s);  // header bytes without an end
      if (c.peer_closed()) {
        cut_after[i] = std::chrono::steady_clock::now() - start;
        --open;
      }
    }
    if (checks++ % 4 == 0) {
      check_alive(node);
      net::http_response res;
      std::string err;
      REQUIRE(net::http_request(node.host, node.port, "GET", "/healthz", "", res, err, 5s));
      CHECK(res.status == 200);
    }
    std::this_thread::sleep_for(500ms);
  }
  CHECK(open == 0);
  for (int i = 0; i < slow_clients; ++i) {
    INFO("slow client " << i);
    // Cut near the timeout: not much earlier (the loop checks every 500 ms),
    // nor much later.
    auto s = std::chrono::duration_cast<std::chrono::milliseconds>(cut_after[i]);
    CHECK(s > http_timeout - 1s);
    CHECK(s < http_timeout + 5s);
    // None of them got an answer to a request it never finished.
    CHECK(conns[i]->received().find("HTTP/1.1 200") == std::string::npos);
  }
  check_alive(node);
}
