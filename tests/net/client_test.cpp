// Tests of the WebSocket and HTTP clients in net/ against tiny Beast servers
// that live in this file (test support only, not the node's server).

#include "net/http_client.hpp"
#include "net/ws_client.hpp"

#include <atomic>
#include <future>
#include <mutex>
#include <thread>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <catch2/catch.hpp>

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

const auto loopback = asio::ip::make_address("127.0.0.1");

// Echo WebSocket server on 127.0.0.1 and a free port, one I/O thread.
// Echoes text as text and binary as binary; the text "close:<code>" makes it
// close the connection with that code and the reason "policy test".
class ws_echo_server {
 public:
  ws_echo_server() : acceptor_(ioc_, {loopback, 0}) {
    do_accept();
    thread_ = std::thread([this] { ioc_.run(); });
  }
  ~ws_echo_server() {
    ioc_.stop();
    thread_.join();
  }
  std::uint16_t port() const { return acceptor_.local_endpoint().port(); }
  int connections() const { return connections_.load(); }

 private:
  struct session : std::enable_shared_from_this<session> {
    explicit session(tcp::socket s) : ws(std::move(s)) {}
    websocket::stream<beast::tcp_stream> ws;
    beast::flat_buffer buf;

    void run() {
      ws.set_option(websocket::stream_base::timeout::suggested(beast::role_type::server));
      ws.read_message_max(64u << 20);
      ws.async_accept([self = shared_from_this()](beast::error_code ec) {
        if (!ec) self->do_read();
      });
    }
    void do_read() {
      ws.async_read(buf, [self = shared_from_this()](beast::error_code ec, std::size_t) {
        if (!ec) self->on_read();
      });
    }
    void on_read() {
      auto text = beast::buffers_to_string(buf.cdata());
      if (ws.got_text() && text.rfind("close:", 0) == 0) {
        auto code = static_cast<websocket::close_code>(std::stoi(text.substr(6)));
        ws.async_close(websocket::close_reason(code, "policy test"),
                       [self = shared_from_this()](beast::error_code) {});
        return;
      }
      ws.text(ws.got_text());
      ws.async_write(buf.cdata(), [self = shared_from_this()](beast::error_code ec, std::size_t) {
        if (ec) return;
        self->buf.consume(self->buf.size());
        self->do_read();
      });
    }
  };

  void do_accept() {
    acceptor_.async_accept([this](beast::error_code ec, tcp::socket s) {
      if (ec) return;
      ++connections_;
      std::make_shared<session>(std::move(s))->run();
      do_accept();
    });
  }

  asio::io_context ioc_;
  tcp::acceptor acceptor_;
  std::atomic<int> connections_{0};
  std::thread thread_;
};

// HTTP server on 127.0.0.1 and a free port: GET /hello → 200 text/plain
// "hello"; POST /echo → 200 with the request's body and content type;
// GET /big → 200 with 8 MiB; anything else → 404 JSON.
class http_test_server {
 public:
  http_test_server() : acceptor_(ioc_, {loopback, 0}) {
    do_accept();
    thread_ = std::thread([this] { ioc_.run(); });
  }
  ~http_test_server() {
    ioc_.stop();
    thread_.join();
  }
  std::uint16_t port() const { return acceptor_.local_endpoint().port(); }

 private:
  struct session : std::enable_shared_from_this<session> {
    explicit session(tcp::socket s) : stream(std::move(s)) {}
    beast::tcp_stream stream;
    beast::flat_buffer buf;
    http::request<http::string_body> req;
    http::response<http::string_body> res;

    void run() {
      http::async_read(stream, buf, req,
                       [self = shared_from_this()](beast::error_code ec, std::size_t) {
                         if (!ec) self->respond();
                       });
    }
    void respond() {
      res.version(11);
      res.keep_alive(false);
      if (req.method() == http::verb::get && req.target() == "/hello") {
        res.result(http::status::ok);
        res.set(http::field::content_type, "text/plain");
        res.body() = "hello";
      } else if (req.method() == http::verb::post && req.target() == "/echo") {
        res.result(http::status::ok);
        res.set(http::field::content_type, req[http::field::content_type]);
        res.body() = req.body();
      } else if (req.method() == http::verb::get && req.target() == "/big") {
        res.result(http::status::ok);
        res.set(http::field::content_type, "application/octet-stream");
        res.body() = std::string(8u << 20, 'x');
      } else {
        res.result(http::status::not_found);
        res.set(http::field::content_type, "application/json");
        res.body() = R"({"error":{"code":"not_found","message":"no such route"}})";
      }
      res.prepare_payload();
      http::async_write(stream, res, [self = shared_from_this()](beast::error_code, std::size_t) {
        beast::error_code ignored;
        self->stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
      });
    }
  };

  void do_accept() {
    acceptor_.async_accept([this](beast::error_code ec, tcp::socket s) {
      if (ec) return;
      std::make_shared<session>(std::move(s))->run();
      do_accept();
    });
  }

  asio::io_context ioc_;
  tcp::acceptor acceptor_;
  std::thread thread_;
};

// A listening socket that never accepts: connects succeed (the kernel's
// backlog takes them) and then nothing is ever answered.
struct silent_server {
  asio::io_context ioc;
  tcp::acceptor acceptor{ioc, {loopback, 0}};
  std::uint16_t port() const { return acceptor.local_endpoint().port(); }
};

// A port nothing listens on.
std::uint16_t closed_port() {
  asio::io_context ioc;
  tcp::acceptor a{ioc, {loopback, 0}};
  auto port = a.local_endpoint().port();
  a.close();
  return port;
}

// io_context run by `n` threads for the duration of a test.
struct io_threads {
  asio::io_context ioc;
  asio::executor_work_guard<asio::io_context::executor_type> work = asio::make_work_guard(ioc);
  std::vector<std::thread> threads;
  explicit io_threads(int n) {
    for (int i = 0; i < n; ++i) threads.emplace_back([this] { ioc.run(); });
  }
  ~io_threads() {
    work.reset();
    ioc.stop();
    for (auto& t : threads) t.join();
  }
};

// Collects what a ws_client reports; the futures let the test wait with a timeout.
struct recorder {
  std::mutex mtx;
  std::vector<std::string> messages;
  std::promise<void> opened, all_received, closed;
  std::string close_reason;
  std::atomic<int> close_calls{0};
  std::size_t expect = 0;

  pulse::net::ws_client::handlers handlers() {
    pulse::net::ws_client::handlers h;
    h.on_open = [this] { opened.set_value(); };
    h.on_message = [this](std::string_view text) {
      std::lock_guard<std::mutex> guard{mtx};
      messages.emplace_back(text);
      if (messages.size() == expect) all_received.set_value();
    };
    h.on_close = [this](const std::string& reason) {
      close_reason = reason;
      if (close_calls++ == 0) closed.set_value();
    };
    return h;
  }
};

}  // namespace

TEST_CASE("ws_blocking_client: text, large and binary frames round trip", "[net][ws]") {
  ws_echo_server server;
  pulse::net::ws_blocking_client c;
  std::string error;
  REQUIRE(c.connect("127.0.0.1", server.port(), error));
  CHECK(error.empty());

  REQUIRE(c.send_text("hello", error));
  CHECK(c.read(2s) == std::optional<std::string>("hello"));

  std::string big(3u << 20, 'a');
  for (std::size_t i = 0; i < big.size(); i += 4096) big[i] = static_cast<char>('a' + i % 26);
  REQUIRE(c.send_text(big, error));
  auto back = c.read(5s);
  REQUIRE(back);
  CHECK(*back == big);

  std::string binary("\x00\x01\xff", 3);
  REQUIRE(c.send_binary(binary, error));
  CHECK(c.read(2s) == std::optional<std::string>(binary));

  CHECK_FALSE(c.closed());
  c.close();
  CHECK(c.closed());
  INFO(c.close_reason());
  CHECK(c.close_code() == 1000);
  CHECK_FALSE(c.send_text("late", error));
  CHECK(error.find("closed") != std::string::npos);
}

TEST_CASE("ws_blocking_client: a read timeout returns nullopt and loses nothing", "[net][ws]") {
  ws_echo_server server;
  pulse::net::ws_blocking_client c;
  std::string error;
  REQUIRE(c.connect("localhost", server.port(), error));  // through the resolver
  auto start = std::chrono::steady_clock::now();
  CHECK_FALSE(c.read(100ms));
  auto waited = std::chrono::steady_clock::now() - start;
  CHECK(waited >= 90ms);
  CHECK(waited < 2s);
  CHECK_FALSE(c.closed());
  CHECK(c.close_code() == 0);
  REQUIRE(c.send_text("after the timeout", error));
  CHECK(c.read(2s) == std::optional<std::string>("after the timeout"));

  // A zero timeout still picks up what has already arrived.
  REQUIRE(c.send_text("already here", error));
  std::this_thread::sleep_for(100ms);
  CHECK(c.read(0ms) == std::optional<std::string>("already here"));
  CHECK_FALSE(c.read(0ms));
}

TEST_CASE("ws_blocking_client: the server's close code is observed", "[net][ws]") {
  ws_echo_server server;
  pulse::net::ws_blocking_client c;
  std::string error;
  REQUIRE(c.connect("127.0.0.1", server.port(), error));
  REQUIRE(c.send_text("close:1008", error));
  CHECK_FALSE(c.read(2s));
  CHECK(c.closed());
  CHECK(c.close_code() == 1008);
  CHECK(c.close_reason() == "policy test");
  CHECK_FALSE(c.read(10ms));

  // The same client can connect again.
  REQUIRE(c.connect("127.0.0.1", server.port(), error));
  CHECK_FALSE(c.closed());
  REQUIRE(c.send_text("again", error));
  CHECK(c.read(2s) == std::optional<std::string>("again"));
}

TEST_CASE("ws_blocking_client: connect failures are errors, not hangs", "[net][ws]") {
  pulse::net::ws_blocking_client c;
  std::string error;

  SECTION("closed port") {
    auto port = closed_port();
    CHECK_FALSE(c.connect("127.0.0.1", port, error));
    CHECK(error.find("connect 127.0.0.1:" + std::to_string(port)) == 0);
    CHECK(error.find("refused") != std::string::npos);
  }
  SECTION("a server that never answers the handshake") {
    silent_server silent;
    auto start = std::chrono::steady_clock::now();
    CHECK_FALSE(c.connect("127.0.0.1", silent.port(), error, "/ws", 200ms));
    CHECK(std::chrono::steady_clock::now() - start < 2s);
    CHECK(error.find("timed out after 200 ms") != std::string::npos);
  }
  SECTION("an HTTP server declines the upgrade") {
    http_test_server http_server;
    CHECK_FALSE(c.connect("127.0.0.1", http_server.port(), error, "/ws"));
    CHECK(error.find("handshake declined: HTTP 404") == 0);
  }
  SECTION("an unknown host") {
    CHECK_FALSE(c.connect("no-such-host.invalid", 80, error, "/ws", 3s));
    CHECK(error.find("resolve no-such-host.invalid") == 0);
  }
  CHECK_FALSE(c.closed());
  CHECK_FALSE(c.read(10ms));
  CHECK_FALSE(c.send_text("x", error));
}

TEST_CASE("ws_client: 1,000 messages round trip in order", "[net][ws]") {
  ws_echo_server server;
  io_threads io{2};
  recorder rec;
  rec.expect = 1001;
  auto client = pulse::net::ws_client::create(io.ioc, rec.handlers());
  client->send("queued before open");  // goes out after the handshake
  client->connect("127.0.0.1", server.port());
  REQUIRE(rec.opened.get_future().wait_for(5s) == std::future_status::ready);
  for (int i = 0; i < 1000; ++i) client->send("message " + std::to_string(i));
  REQUIRE(rec.all_received.get_future().wait_for(10s) == std::future_status::ready);
  {
    std::lock_guard<std::mutex> guard{rec.mtx};
    REQUIRE(rec.messages.size() == 1001);
    CHECK(rec.messages[0] == "queued before open");
    for (int i = 0; i < 1000; ++i) REQUIRE(rec.messages[i + 1] == "message " + std::to_string(i));
  }
  CHECK(client->queued() == 0);
  client->close();
  REQUIRE(rec.closed.get_future().wait_for(5s) == std::future_status::ready);
  CHECK(rec.close_reason == "closed by client");
  client->send("after close");  // dropped, no crash
  std::this_thread::sleep_for(50ms);
  CHECK(rec.close_calls == 1);
  CHECK(client->queued() == 0);
}

TEST_CASE("ws_client: failures reach on_close once with a reason", "[net][ws]") {
  io_threads io{1};
  recorder rec;

  SECTION("connection refused") {
    auto client = pulse::net::ws_client::create(io.ioc, rec.handlers());
    client->connect("127.0.0.1", closed_port());
    REQUIRE(rec.closed.get_future().wait_for(5s) == std::future_status::ready);
    CHECK(rec.close_reason.find("connect 127.0.0.1:") == 0);
    CHECK(rec.close_reason.find("refused") != std::string::npos);
  }
  SECTION("the server closes with 1008") {
    ws_echo_server server;
    auto client = pulse::net::ws_client::create(io.ioc, rec.handlers());
    client->connect("127.0.0.1", server.port());
    REQUIRE(rec.opened.get_future().wait_for(5s) == std::future_status::ready);
    client->send("close:1008");
    REQUIRE(rec.closed.get_future().wait_for(5s) == std::future_status::ready);
    CHECK(rec.close_reason == "closed by server: 1008 policy test");
  }
  SECTION("an HTTP server declines the upgrade") {
    http_test_server http_server;
    auto client = pulse::net::ws_client::create(io.ioc, rec.handlers());
    client->connect("127.0.0.1", http_server.port(), "/ws");
    REQUIRE(rec.closed.get_future().wait_for(5s) == std::future_status::ready);
    CHECK(rec.close_reason.find("handshake declined: HTTP 404") == 0);
  }
  SECTION("close() before connect() and while connecting") {
    auto idle = pulse::net::ws_client::create(io.ioc, rec.handlers());
    idle->close();
    REQUIRE(rec.closed.get_future().wait_for(5s) == std::future_status::ready);
    CHECK(rec.close_reason == "closed by client");

    silent_server silent;
    recorder rec2;
    auto connecting = pulse::net::ws_client::create(io.ioc, rec2.handlers());
    connecting->connect("127.0.0.1", silent.port());
    std::this_thread::sleep_for(50ms);  // TCP is up, the handshake waits for an answer
    connecting->close();
    REQUIRE(rec2.closed.get_future().wait_for(5s) == std::future_status::ready);
    CHECK(rec2.close_reason == "closed by client");
  }
  std::this_thread::sleep_for(20ms);
  CHECK(rec.close_calls <= 1);
}

TEST_CASE("ws_client: many clients sending from many threads", "[net][ws]") {
  constexpr int clients = 50, per_client = 200;
  ws_echo_server server;
  io_threads io{2};
  std::vector<std::unique_ptr<recorder>> recs;
  std::vector<std::shared_ptr<pulse::net::ws_client>> conns;
  for (int i = 0; i < clients; ++i) {
    recs.push_back(std::make_unique<recorder>());
    recs.back()->expect = per_client;
    conns.push_back(pulse::net::ws_client::create(io.ioc, recs.back()->handlers()));
    conns.back()->connect("127.0.0.1", server.port());
  }
  for (auto& r : recs) REQUIRE(r->opened.get_future().wait_for(10s) == std::future_status::ready);
  // Four sender threads, each owning a quarter of the clients, interleaving them.
  std::vector<std::thread> senders;
  for (int t = 0; t < 4; ++t)
    senders.emplace_back([&, t] {
      for (int m = 0; m < per_client; ++m)
        for (int i = t; i < clients; i += 4) conns[i]->send(std::to_string(m));
    });
  for (auto& s : senders) s.join();
  for (int i = 0; i < clients; ++i) {
    REQUIRE(recs[i]->all_received.get_future().wait_for(20s) == std::future_status::ready);
    std::lock_guard<std::mutex> guard{recs[i]->mtx};
    for (int m = 0; m < per_client; ++m) REQUIRE(recs[i]->messages[m] == std::to_string(m));
  }
  for (auto& c : conns) c->close();
  for (auto& r : recs) REQUIRE(r->closed.get_future().wait_for(10s) == std::future_status::ready);
  CHECK(server.connections() == clients);
}

TEST_CASE("http_request: GET and POST with status, type and body", "[net][http]") {
  http_test_server server;
  pulse::net::http_response res;
  std::string error;

  REQUIRE(pulse::net::http_request("127.0.0.1", server.port(), "GET", "/hello", "", res, error));
  CHECK(res.status == 200);
  CHECK(res.content_type == "text/plain");
  CHECK(res.body == "hello");

  std::string body = R"([{"device":"meter-7","values":{"v":1}}])";
  REQUIRE(pulse::net::http_request("localhost", server.port(), "POST", "/echo", body, res, error));
  CHECK(res.status == 200);
  CHECK(res.content_type == "application/json");
  CHECK(res.body == body);

  REQUIRE(pulse::net::http_request("127.0.0.1", server.port(), "POST", "/echo", "a\nb\n", res,
                                   error, 5s, "application/x-ndjson"));
  CHECK(res.content_type == "application/x-ndjson");
  CHECK(res.body == "a\nb\n");

  REQUIRE(pulse::net::http_request("127.0.0.1", server.port(), "GET", "/nope", "", res, error));
  CHECK(res.status == 404);
  CHECK(res.body.find("not_found") != std::string::npos);

  REQUIRE(pulse::net::http_request("127.0.0.1", server.port(), "GET", "/big", "", res, error));
  CHECK(res.status == 200);
  CHECK(res.body.size() == (8u << 20));
}

TEST_CASE("http_request: timeouts and refused connections are errors", "[net][http]") {
  pulse::net::http_response res;
  std::string error;

  SECTION("a server that never answers") {
    silent_server silent;
    auto start = std::chrono::steady_clock::now();
    CHECK_FALSE(pulse::net::http_request("127.0.0.1", silent.port(), "GET", "/healthz", "", res,
                                         error, 200ms));
    auto took = std::chrono::steady_clock::now() - start;
    CHECK(took >= 190ms);
    CHECK(took < 2s);
    CHECK(error == "timed out after 200 ms while reading the response");
  }
  SECTION("nothing listening") {
    auto port = closed_port();
    CHECK_FALSE(pulse::net::http_request("127.0.0.1", port, "GET", "/", "", res, error, 2s));
    CHECK(error.find("connecting to 127.0.0.1:" + std::to_string(port)) == 0);
    CHECK(error.find("refused") != std::string::npos);
  }
  CHECK(res.status == 0);
}
