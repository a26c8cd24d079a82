#include "net/server.hpp"

#include <deque>
#include <mutex>
#include <thread>
#include <unordered_set>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <spdlog/spdlog.h>

#include "actors/bridge.hpp"
#include "net/dashboard.hpp"
#include "wire/codec.hpp"

namespace pulse::net {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;

namespace {

// {"error":{"code":..,"message":..}}, for HTTP codes the wire has no enum for.
std::string json_error_body(std::string_view code, std::string_view message) {
  std::string out = "{\"error\":{\"code\":";
  wire::append_json_string(out, code);
  out += ",\"message\":";
  wire::append_json_string(out, message);
  out += "}}";
  return out;
}

class ws_session;

// Everything the connections share; outlives them (held by shared_ptr).
struct shared_state {
  bridge& b;
  server_options opts;
  std::mutex mtx;
  std::unordered_set<ws_session*> sessions;
  bool closing = false;
  shared_state(bridge& br, server_options o) : b(br), opts(std::move(o)) {}
};

// The sink a session actor writes through. Holds the connection weakly, so an
// actor that outlives its socket keeps no socket alive.
class ws_sink final : public session_sink {
 public:
  explicit ws_sink(std::weak_ptr<ws_session> s) : session_(std::move(s)) {}
  void send_text(std::string text) override;
  void send_texts(std::vector<std::string> texts) override;
  void set_reading(bool on) override;
  void post(std::function<void()> fn) override;
  void close(std::uint16_t code, std::string reason) override;

 private:
  std::weak_ptr<ws_session> session_;
};

// One WebSocket connection, on its own strand. One write in flight, a queue
// bounded in bytes behind it; reading stops while the session actor pushes back.
class ws_session : public std::enable_shared_from_this<ws_session> {
 public:
  ws_session(beast::tcp_stream&& stream, std::shared_ptr<shared_state> shared)
      : ws_(std::move(stream)),
        shared_(std::move(shared)),
        ping_timer_(ws_.get_executor()),
        write_timer_(ws_.get_executor()) {}

  ~ws_session() {
    std::lock_guard<std::mutex> guard{shared_->mtx};
    shared_->sessions.erase(this);
  }

  template <class Body, class Allocator>
  void run(http::request<Body, http::basic_fields<Allocator>> req, bool over_limit) {
    over_limit_ = over_limit;
    beast::get_lowest_layer(ws_).expires_never();
    websocket::stream_base::timeout t;
    t.handshake_timeout = std::chrono::seconds(10);
    t.idle_timeout = shared_->opts.idle_timeout;
    // Beast re-arms its idle timer only when a read starts, so without its
    // keep-alive pings a peer that only answers pings (a subscriber) would be
    // closed after idle_timeout. With them, any frame received (a pong too)
    // resets the count, and a peer silent for idle_timeout is closed. Our own
    // timer still pings every net.ping-interval.
    t.keep_alive_pings = true;
    ws_.set_option(t);
    ws_.read_message_max(shared_->opts.max_frame_bytes);
    ws_.auto_fragment(false);
    ws_.set_option(websocket::stream_base::decorator([](websocket::response_type& res) {
      res.set(http::field::server, "pulse-node");
    }));
    peer_ = endpoint_string();
    ws_.async_accept(req, beast::bind_front_handler(&ws_session::on_accept, shared_from_this()));
  }

  // --- called on the strand (posted by ws_sink) ---
  void queue(std::string text) {
    if (closed_ || close_sent_) return;
    queued_bytes_ += text.size();
    queue_.push_back(std::move(text));
    if (queued_bytes_ > shared_->opts.max_write_queue_bytes) {
      spdlog::warn("ws {}: peer does not read ({} bytes queued), closing", peer_, queued_bytes_);
      shared_->b.metrics().write_queue_full.fetch_add(1);
      // The frame being written stays: Beast still reads from its buffer.
      queue_.erase(writing_ ? std::next(queue_.begin()) : queue_.begin(), queue_.end());
      queued_bytes_ = queue_.empty() ? 0 : queue_.front().size();
      do_close(websocket::close_code::try_again_later, "write queue full");
      return;
    }
    if (!writing_) do_write();
  }

  void set_reading(bool on) {
    reading_ = on;
    // Within on_read (the ingest path answering a frame) the read is
    // restarted there, once the frame's bytes are consumed.
    if (on && !read_in_flight_ && !in_frame_ && !closed_ && open_) do_read();
  }

  void do_close(std::uint16_t code, std::string reason) {
    if (closed_ || close_sent_) return;
    close_sent_ = true;
    if (writing_) {  // Beast allows one write at a time; close after it
      pending_close_ = websocket::close_reason(static_cast<websocket::close_code>(code), reason);
      return;
    }
    arm_write_timer();
    ws_.async_close(websocket::close_reason(static_cast<websocket::close_code>(code), reason),
                    beast::bind_front_handler(&ws_session::on_close, shared_from_this()));
  }

  auto executor() { return ws_.get_executor(); }

 private:
  std::string endpoint_string() {
    beast::error_code ec;
    auto ep = beast::get_lowest_layer(ws_).socket().remote_endpoint(ec);
    if (ec) return "?";
    return ep.address().to_string() + ":" + std::to_string(ep.port());
  }

  void on_accept(beast::error_code ec) {
    if (ec) {
      spdlog::debug("ws {}: handshake failed: {}", peer_, ec.message());
      return;
    }
    if (over_limit_) {
      shared_->b.metrics().connections_refused.fetch_add(1);
      do_close(websocket::close_code::try_again_later, "net.max-connections reached");
      return;
    }
    {
      std::lock_guard<std::mutex> guard{shared_->mtx};
      if (shared_->closing) {
        do_close(websocket::close_code::going_away, "node shutting down");
        return;
      }
      shared_->sessions.insert(this);
    }
    open_ = true;
    auto& m = shared_->b.metrics();
    m.connections.fetch_add(1);
    m.connections_total.fetch_add(1);
    counted_ = true;
    auto sink = std::make_shared<ws_sink>(weak_from_this());
    handle_ = shared_->b.open_session(std::move(sink), peer_);
    schedule_ping();
    do_read();
  }

  void schedule_ping() {
    if (shared_->opts.ping_interval.count() <= 0) return;
    ping_timer_.expires_after(shared_->opts.ping_interval);
    ping_timer_.async_wait([self = shared_from_this()](beast::error_code ec) {
      if (ec || self->closed_) return;
      self->ws_.async_ping({}, [self](beast::error_code ec) {
        if (!ec) self->schedule_ping();
      });
    });
  }

  void do_read() {
    read_in_flight_ = true;
    ws_.async_read(buffer_, beast::bind_front_handler(&ws_session::on_read, shared_from_this()));
  }

  void on_read(beast::error_code ec, std::size_t bytes) {
    read_in_flight_ = false;
    if (ec) {
      if (ec == websocket::error::message_too_big)
        spdlog::info("ws {}: frame over net.max-frame-bytes, closed with 1009", peer_);
      else if (ec != websocket::error::closed)
        spdlog::debug("ws {}: read ended: {}", peer_, ec.message());
      finish();
      return;
    }
    if (!ws_.got_text()) {
      buffer_.consume(buffer_.size());
      queue(wire::encode_error(wire::error_code::invalid_json,
                               "binary frames are not accepted; send JSON text frames"));
      shared_->b.metrics().count_error(wire::error_code::invalid_json);
    } else {
      // Parsed in place: the ingest path copies what it keeps.
      auto data = buffer_.data();
      in_frame_ = true;
      handle_->frame(std::string_view(static_cast<const char*>(data.data()), data.size()));
      in_frame_ = false;
      buffer_.consume(buffer_.size());
    }
    if (reading_ && !read_in_flight_ && !closed_) do_read();
  }

  // A peer that does not take a write (or the close) within net.write-timeout
  // is cut off: its queue must not grow without bound, nor its socket linger.
  void arm_write_timer() {
    auto gen = ++write_gen_;
    write_timer_.expires_after(shared_->opts.write_timeout);
    write_timer_.async_wait([self = shared_from_this(), gen](beast::error_code ec) {
      if (ec || gen != self->write_gen_ || self->closed_) return;
      spdlog::warn("ws {}: peer took no data for {} ms (net.write-timeout), closing", self->peer_,
                   self->shared_->opts.write_timeout.count());
      self->shared_->b.metrics().write_timeouts.fetch_add(1);
      beast::error_code ignored;
      beast::get_lowest_layer(self->ws_).socket().close(ignored);
      self->finish();
    });
  }

  void disarm_write_timer() {
    ++write_gen_;  // a wait already queued sees it is stale
    write_timer_.cancel();
  }

  void do_write() {
    writing_ = true;
    arm_write_timer();
    ws_.text(true);
    ws_.async_write(asio::buffer(queue_.front()),
                    beast::bind_front_handler(&ws_session::on_write, shared_from_this()));
  }

  void on_write(beast::error_code ec, std::size_t) {
    writing_ = false;
    disarm_write_timer();
    if (ec) {
      spdlog::debug("ws {}: write failed: {}", peer_, ec.message());
      queue_.clear();
      queued_bytes_ = 0;
      finish();
      return;
    }
    queued_bytes_ -= queue_.front().size();
    queue_.pop_front();
    if (closed_) return;
    if (!queue_.empty()) {
      do_write();
      return;
    }
    if (pending_close_) {  // the close goes out after everything queued before it
      auto reason = *pending_close_;
      pending_close_.reset();
      arm_write_timer();
      ws_.async_close(reason, beast::bind_front_handler(&ws_session::on_close, shared_from_this()));
    }
  }

  void on_close(beast::error_code) {
    disarm_write_timer();
    finish();
  }

  void finish() {
    if (closed_) return;
    closed_ = true;
    ping_timer_.cancel();
    write_timer_.cancel();
    if (handle_) handle_->closed();
    handle_.reset();
    if (counted_) shared_->b.metrics().connections.fetch_sub(1);
    counted_ = false;
    beast::error_code ignored;
    beast::get_lowest_layer(ws_).socket().close(ignored);
  }

  websocket::stream<beast::tcp_stream> ws_;
  std::shared_ptr<shared_state> shared_;
  asio::steady_timer ping_timer_;
  asio::steady_timer write_timer_;
  std::uint64_t write_gen_ = 0;  // which write (or close) the timer is for
  beast::flat_buffer buffer_;
  std::deque<std::string> queue_;
  std::size_t queued_bytes_ = 0;
  std::unique_ptr<bridge::session> handle_;
  std::optional<websocket::close_reason> pending_close_;
  std::string peer_;
  bool over_limit_ = false;
  bool open_ = false;
  bool counted_ = false;
  bool reading_ = true;
  bool read_in_flight_ = false;
  bool in_frame_ = false;  // handle_->frame() is running (reads buffer_)
  bool writing_ = false;
  bool close_sent_ = false;
  bool closed_ = false;
};

// dispatch: at once when called on the connection's strand (the ingest
// path), else posted there (the session actor, the shards).
void ws_sink::send_text(std::string text) {
  if (auto s = session_.lock())
    asio::dispatch(s->executor(), [s, t = std::move(text)]() mutable { s->queue(std::move(t)); });
}

void ws_sink::send_texts(std::vector<std::string> texts) {
  if (auto s = session_.lock())
    asio::dispatch(s->executor(), [s, ts = std::move(texts)]() mutable {
      for (auto& t : ts) s->queue(std::move(t));
    });
}

void ws_sink::set_reading(bool on) {
  if (auto s = session_.lock()) asio::dispatch(s->executor(), [s, on] { s->set_reading(on); });
}

void ws_sink::post(std::function<void()> fn) {
  if (auto s = session_.lock()) asio::post(s->executor(), [s, fn = std::move(fn)] { fn(); });
}

void ws_sink::close(std::uint16_t code, std::string reason) {
  if (auto s = session_.lock())
    asio::dispatch(s->executor(), [s, code, r = std::move(reason)] { s->do_close(code, r); });
}

// One HTTP connection: answers requests until it is upgraded to a WebSocket
// at /ws, closes, or times out.
class http_session : public std::enable_shared_from_this<http_session> {
 public:
  http_session(tcp::socket&& socket, std::shared_ptr<shared_state> shared)
      : stream_(std::move(socket)), shared_(std::move(shared)) {}

  void run() {
    asio::dispatch(stream_.get_executor(),
                   beast::bind_front_handler(&http_session::do_read, shared_from_this()));
  }

 private:
  void do_read() {
    head_ = false;
    parser_.emplace();
    parser_->header_limit(16 * 1024);
    parser_->body_limit(shared_->opts.max_body_bytes);
    stream_.expires_after(shared_->opts.http_timeout);
    http::async_read(stream_, buffer_, *parser_,
                     beast::bind_front_handler(&http_session::on_read, shared_from_this()));
  }

  void on_read(beast::error_code ec, std::size_t) {
    if (ec == http::error::end_of_stream) return close();
    if (ec) {
      if (ec == http::error::body_limit)
        return send_simple(http::status::payload_too_large, "too_large",
                           "request body over the limit", false);
      if (ec == http::error::header_limit)
        return send_simple(http::status::request_header_fields_too_large, "too_large",
                           "request headers over 16 KiB", false);
      if (ec != beast::error::timeout && ec != asio::error::operation_aborted &&
          ec != asio::error::connection_reset)
        return send_simple(http::status::bad_request, "bad_request",
                           "malformed HTTP request: " + ec.message(), false);
      return close();
    }
    auto& req = parser_->get();
    shared_->b.metrics().http_requests.fetch_add(1);
    if (websocket::is_upgrade(req)) {
      auto target = req.target();
      if (target != "/ws" && target.substr(0, 4) != "/ws?")
        return send_simple(http::status::not_found, "not_found", "WebSocket endpoint is /ws",
                           false);
      bool over = shared_->b.metrics().connections.load() >=
                  static_cast<std::int64_t>(shared_->opts.max_connections);
      auto ws = std::make_shared<ws_session>(std::move(stream_), shared_);
      ws->run(parser_->release(), over);
      return;
    }
    handle(parser_->release());
  }

  void handle(http::request<http::string_body> req) {
    keep_alive_ = req.keep_alive();
    head_ = req.method() == http::verb::head;
    auto target = std::string(req.target());
    auto path = target.substr(0, target.find('?'));
    bool get = req.method() == http::verb::get || req.method() == http::verb::head;
    if (path == "/healthz" && get) return send(200, "application/json", "{\"status\":\"ok\"}");
    if (path == "/readyz" && get) {
      bool ready = shared_->b.ready();
      return send(ready ? 200 : 503, "application/json",
                  ready ? "{\"status\":\"ready\"}" : "{\"status\":\"not ready\"}");
    }
    if (path == "/metrics" && get)
      return send(200, "text/plain; version=0.0.4", shared_->b.metrics_text());
    if (path == "/" && get) return send(200, "text/html; charset=utf-8", dashboard_html());
    if (path.rfind("/admin/", 0) == 0) return handle_admin(req.method(), path);
    if (path.rfind("/api/", 0) == 0) {
      std::string method(req.method_string());
      std::optional<auth::grant> writer;
      if (auto& tokens = shared_->b.settings().tokens) {
        auto g = tokens->find(auth::bearer_token(req[http::field::authorization]));
        bool post = req.method() == http::verb::post;
        if (g.none() || (!post && !g.may_read())) {
          shared_->b.metrics().count_error(wire::error_code::unauthorized);
          return send_simple(http::status::unauthorized, "unauthorized",
                             g.none() ? "a valid Authorization: Bearer token is required"
                                      : "this token may not read",
                             keep_alive_);
        }
        if (post) writer = std::move(g);
      }
      if (path == "/api/v1/readings") {
        if (req.method() != http::verb::post)
          return send_simple(http::status::method_not_allowed, "method_not_allowed",
                             "use POST for /api/v1/readings", keep_alive_);
      } else if (!get) {
        return send_simple(http::status::method_not_allowed, "method_not_allowed",
                           "use GET for " + path, keep_alive_);
      }
      shared_->b.http(method == "HEAD" ? "GET" : method, target, std::move(req.body()),
                      std::move(writer), reply_on_strand());
      return;
    }
    send_simple(http::status::not_found, "not_found", "no such endpoint: " + path, keep_alive_);
  }

  // The callback the actors answer through (from an actor thread): the reply
  // is sent from this connection's strand.
  http_callback reply_on_strand() {
    return [self = shared_from_this()](http_reply r) {
      asio::post(self->stream_.get_executor(), [self, r = std::move(r)] {
        self->send(r.status, r.content_type, std::move(r.body));
      });
    };
  }

  // POST /admin/shards/{n}/crash (debug.fault-injection only; 404 otherwise).
  void handle_admin(http::verb method, const std::string& path) {
    static constexpr std::string_view prefix = "/admin/shards/", suffix = "/crash";
    std::string_view p = path;
    if (p.size() > prefix.size() + suffix.size() && p.substr(0, prefix.size()) == prefix &&
        p.substr(p.size() - suffix.size()) == suffix) {
      auto digits = p.substr(prefix.size(), p.size() - prefix.size() - suffix.size());
      std::uint64_t n = 0;
      bool ok = !digits.empty() && digits.size() <= 6;
      for (char c : digits) {
        ok = ok && c >= '0' && c <= '9';
        n = n * 10 + static_cast<std::uint64_t>(c - '0');
      }
      if (ok) {
        if (method != http::verb::post)
          return send_simple(http::status::method_not_allowed, "method_not_allowed",
                             "use POST for " + path, keep_alive_);
        shared_->b.crash_shard(n, reply_on_strand());
        return;
      }
    }
    send_simple(http::status::not_found, "not_found", "no such endpoint: " + path, keep_alive_);
  }

  void send_simple(http::status status, std::string_view code, const std::string& message,
                   bool keep_alive) {
    keep_alive_ = keep_alive;
    send(static_cast<int>(status), "application/json", json_error_body(code, message));
  }

  void send(int status, std::string_view content_type, std::string body) {
    res_ = std::make_shared<http::response<http::string_body>>(static_cast<http::status>(status),
                                                                11);
    res_->set(http::field::server, "pulse-node");
    res_->set(http::field::content_type, content_type);
    if (status == 401) res_->set(http::field::www_authenticate, "Bearer");
    res_->keep_alive(keep_alive_);
    res_->body() = std::move(body);
    res_->prepare_payload();
    // HEAD: the GET answer's headers, no body (a body would be read by a
    // keep-alive client as the start of the next response).
    if (head_) res_->body().clear();
    stream_.expires_after(shared_->opts.http_timeout);
    http::async_write(stream_, *res_,
                      beast::bind_front_handler(&http_session::on_write, shared_from_this()));
  }

  void on_write(beast::error_code ec, std::size_t) {
    res_.reset();
    if (ec || !keep_alive_) return close();
    do_read();
  }

  void close() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
  }

  beast::tcp_stream stream_;
  std::shared_ptr<shared_state> shared_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::shared_ptr<http::response<http::string_body>> res_;
  bool keep_alive_ = true;
  bool head_ = false;
};

}  // namespace

struct server::impl {
  asio::io_context ioc;
  std::shared_ptr<shared_state> shared;
  tcp::acceptor acceptor{ioc};
  asio::steady_timer retry_timer{ioc};
  std::vector<std::thread> threads;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
  std::uint16_t port = 0;
  std::chrono::steady_clock::time_point last_accept_log{};

  impl(bridge& b, server_options o)
      : ioc(static_cast<int>(std::max<std::size_t>(1, o.io_threads))),
        shared(std::make_shared<shared_state>(b, std::move(o))) {}

  void do_accept() {
    acceptor.async_accept(asio::make_strand(ioc), [this](beast::error_code ec, tcp::socket s) {
      if (ec == asio::error::operation_aborted || !acceptor.is_open()) return;
      if (ec) {
        // EMFILE/ENFILE: descriptors run out. Keep serving the connections we
        // have and try again shortly; log once per burst, not every 100 ms.
        shared->b.metrics().accept_failures.fetch_add(1);
        auto now = std::chrono::steady_clock::now();
        if (now - last_accept_log > std::chrono::seconds(10)) {
          last_accept_log = now;
          spdlog::warn("net: accept failed: {}; retrying every 100 ms", ec.message());
        }
        retry_timer.expires_after(std::chrono::milliseconds(100));
        retry_timer.async_wait([this](beast::error_code e) {
          if (!e && acceptor.is_open()) do_accept();
        });
        return;
      }
      beast::error_code ignored;
      s.set_option(tcp::no_delay(true), ignored);
      std::make_shared<http_session>(std::move(s), shared)->run();
      do_accept();
    });
  }
};

server::server(bridge& b, server_options opts) : impl_(std::make_unique<impl>(b, std::move(opts))) {}

server::~server() { stop(); }

bool server::start(std::string& error) {
  auto& d = *impl_;
  beast::error_code ec;
  auto addr = asio::ip::make_address(d.shared->opts.address, ec);
  if (ec) {
    error = "net.address \"" + d.shared->opts.address + "\" is not an IP address";
    return false;
  }
  tcp::endpoint ep{addr, d.shared->opts.port};
  d.acceptor.open(ep.protocol(), ec);
  if (!ec) d.acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) d.acceptor.bind(ep, ec);
  if (!ec) d.acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    error = "cannot listen on " + d.shared->opts.address + ":" +
            std::to_string(d.shared->opts.port) + ": " + ec.message();
    return false;
  }
  d.port = d.acceptor.local_endpoint().port();
  d.work.emplace(d.ioc.get_executor());
  asio::post(asio::make_strand(d.ioc), [&d] { d.do_accept(); });
  for (std::size_t i = 0; i < std::max<std::size_t>(1, d.shared->opts.io_threads); ++i)
    d.threads.emplace_back([&d] { d.ioc.run(); });
  return true;
}

std::uint16_t server::port() const { return impl_->port; }

void server::stop_accepting() {
  auto& d = *impl_;
  asio::post(d.ioc, [&d] {
    beast::error_code ignored;
    d.acceptor.close(ignored);
    d.retry_timer.cancel();
  });
}

void server::close_sessions() {
  auto& d = *impl_;
  std::vector<std::shared_ptr<ws_session>> all;
  {
    std::lock_guard<std::mutex> guard{d.shared->mtx};
    d.shared->closing = true;
    for (auto* s : d.shared->sessions) {
      auto p = s->weak_from_this().lock();
      if (p) all.push_back(std::move(p));
    }
  }
  for (auto& s : all)
    asio::post(s->executor(), [s] {
      s->do_close(websocket::close_code::going_away, "node shutting down");
    });
}

void server::stop() {
  auto& d = *impl_;
  if (d.threads.empty()) return;
  d.work.reset();
  // Give close frames a moment to go out before the loop is stopped.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (std::chrono::steady_clock::now() < deadline) {
    {
      std::lock_guard<std::mutex> guard{d.shared->mtx};
      if (d.shared->sessions.empty()) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  d.ioc.stop();
  for (auto& t : d.threads) t.join();
  d.threads.clear();
}

}  // namespace pulse::net
