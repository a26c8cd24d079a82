#include "net/server.hpp"

#include <algorithm>
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
#include "net/gzip.hpp"
#include "net/ws_frame.hpp"
#include "wire/codec.hpp"

namespace pulse::net {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;

namespace {

using header_list = std::vector<std::pair<std::string, std::string>>;

// The methods each fixed path answers (the Allow header of 405 and OPTIONS);
// empty for paths the node does not know.
std::string_view allowed_methods(std::string_view path) {
  if (path == "/healthz" || path == "/readyz" || path == "/metrics" || path == "/" ||
      path == "/ws")
    return "GET, HEAD, OPTIONS";
  if (path == "/api/v1/readings" || path == "/write" || path == "/api/v2/write" ||
      path == "/admin/backup" || path == "/admin/clock" ||
      (path.rfind("/admin/shards/", 0) == 0))
    return "POST, OPTIONS";
  if (path.rfind("/api/", 0) == 0) return "GET, HEAD, OPTIONS";
  return {};
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

// "address:port" of the peer, for logs.
std::string endpoint_string(tcp::socket& s) {
  beast::error_code ec;
  auto ep = s.remote_endpoint(ec);
  if (ec) return "?";
  return ep.address().to_string() + ":" + std::to_string(ep.port());
}

// After its close frame a connection reads and discards at most this much
// while waiting for the peer's close (e.g. the rest of a 10 MB frame that
// got 1009), then cuts the peer off.
constexpr std::size_t close_drain_bytes = 64 * 1024 * 1024;

// One WebSocket connection, on its own strand. Beast does the opening
// handshake; after it the connection speaks RFC 6455 framing itself on the
// bare socket, because the per-message path is the node's hot path:
// - one read takes whatever the socket holds and every complete frame in it
//   is handled in that one completion (Beast's stream completes one message
//   per read, so a connection's frames went round the scheduler one by one
//   and were split across flushes);
// - frames are parsed and unmasked in place in the read buffer, and a frame
//   that is a whole message goes to the ingest path without a copy;
// - every queued message goes out in one write (acks of several flushes,
//   pongs, errors): one sendmsg for all of them;
// - one timer per connection (ping, idle and write deadlines) and buffers
//   that start small, so an idle connection costs little memory.
// Protocol errors close with 1002 (1007 for invalid UTF-8 in a text message,
// 1009 past net.max-frame-bytes), as Beast did.
class ws_session : public std::enable_shared_from_this<ws_session> {
 public:
  ws_session(beast::tcp_stream&& stream, std::shared_ptr<shared_state> shared)
      : handshake_(std::make_unique<websocket::stream<beast::tcp_stream>>(std::move(stream))),
        socket_(handshake_->get_executor()),
        shared_(std::move(shared)),
        timer_(socket_.get_executor()) {}

  ~ws_session() {
    std::lock_guard<std::mutex> guard{shared_->mtx};
    shared_->sessions.erase(this);
  }

  template <class Body, class Allocator>
  void run(http::request<Body, http::basic_fields<Allocator>> req, bool over_limit) {
    over_limit_ = over_limit;
    auto& hs = *handshake_;
    beast::get_lowest_layer(hs).expires_after(std::chrono::seconds(10));
    hs.set_option(websocket::stream_base::decorator([](websocket::response_type& res) {
      res.set(http::field::server, "pulse-node");
    }));
    peer_ = endpoint_string(beast::get_lowest_layer(hs).socket());
    hs.async_accept(req, beast::bind_front_handler(&ws_session::on_accept, shared_from_this()));
  }

  // --- called on the strand (by ws_sink or the ingest path) ---
  void queue(std::string text) { queue_frame(0x1, std::move(text)); }

  void set_reading(bool on) {
    reading_ = on;
    // Within a read completion the frames left in the buffer and the next
    // read are taken care of there.
    if (on && !in_read_ && open_ && !closed_) resume_reading();
  }

  void do_close(std::uint16_t code, std::string reason) {
    if (closed_ || close_sent_) return;
    close_sent_ = true;
    std::string payload;
    payload.push_back(static_cast<char>(code >> 8));
    payload.push_back(static_cast<char>(code & 0xff));
    payload += reason.substr(0, 123);
    enqueue(0x8, std::move(payload));
  }

  auto executor() { return socket_.get_executor(); }

 private:
  void on_accept(beast::error_code ec) {
    if (ec) {
      spdlog::debug("ws {}: handshake failed: {}", peer_, ec.message());
      return;
    }
    socket_ = beast::get_lowest_layer(*handshake_).release_socket();
    handshake_.reset();
    beast::error_code nb;
    socket_.non_blocking(true, nb);  // on_ready reads without blocking
    last_rx_ = std::chrono::steady_clock::now();
    last_ping_ = last_rx_;
    open_ = true;
    arm_timer();
    if (over_limit_) {
      shared_->b.metrics().connections_refused.fetch_add(1);
      if (auto n = shared_->b.metrics().shed_log.admit())
        spdlog::warn("ws {}: net.max-connections reached, closed with 1013 ({} sheds in the last "
                     "second)", peer_, n);
      do_close(1013, "net.max-connections reached");
      resume_reading();
      return;
    }
    {
      std::lock_guard<std::mutex> guard{shared_->mtx};
      if (shared_->closing) {
        do_close(1001, "node shutting down");
        resume_reading();
        return;
      }
      shared_->sessions.insert(this);
    }
    auto& m = shared_->b.metrics();
    m.connections.fetch_add(1);
    m.connections_total.fetch_add(1);
    counted_ = true;
    auto sink = std::make_shared<ws_sink>(weak_from_this());
    handle_ = shared_->b.open_session(std::move(sink), peer_);
    resume_reading();
  }

  // --- timers: one per connection, ticking at a fraction of the shortest deadline ---
  std::chrono::milliseconds tick() const {
    auto& o = shared_->opts;
    auto t = std::min(o.idle_timeout, o.write_timeout);
    if (o.ping_interval.count() > 0) t = std::min(t, o.ping_interval);
    return std::max(std::chrono::milliseconds(10), t / 4);
  }

  void arm_timer() {
    timer_.expires_after(tick());
    timer_.async_wait([self = shared_from_this()](beast::error_code ec) {
      if (ec || self->closed_) return;
      self->on_tick();
    });
  }

  void on_tick() {
    auto now = std::chrono::steady_clock::now();
    auto& o = shared_->opts;
    if (writing_ && now - write_started_ >= o.write_timeout) {
      // A peer that takes no data (or not our close) within net.write-timeout
      // is cut off: its queue must not grow without bound, nor its socket linger.
      spdlog::warn("ws {}: peer took no data for {} ms (net.write-timeout), closing", peer_,
                   o.write_timeout.count());
      shared_->b.metrics().write_timeouts.fetch_add(1);
      return finish();
    }
    if (close_sent_ && !writing_ && now - close_time_ >= o.write_timeout) return finish();
    // A connection paused by back-pressure is not idle: it is we who do not read.
    if (!reading_) last_rx_ = now;
    if (!close_sent_ && now - last_rx_ >= o.idle_timeout) {
      spdlog::debug("ws {}: silent for {} ms (net.idle-timeout), closing", peer_,
                    o.idle_timeout.count());
      do_close(1001, "idle timeout");
    } else if (!close_sent_ && o.ping_interval.count() > 0 && now - last_ping_ >= o.ping_interval) {
      last_ping_ = now;
      enqueue(0x9, std::string());
    }
    arm_timer();
  }

  // --- reading ---
  // Bytes not yet handled (a partial frame, or frames left while reading is
  // paused) live in rbuf_[0, rlen_). With none, the connection waits for its
  // socket to be readable and reads into its I/O thread's buffer instead: an
  // idle connection holds no read buffer, and no read is tried before the
  // socket has data (Asio's async_read_some first tries one speculatively,
  // a wasted syscall per frame on a connection that sends one at a time).
  void resume_reading() {
    if (closed_ || read_in_flight_ || in_read_) return;
    if (rlen_ > 0)
      consume(rbuf_.get(), rlen_);
    else
      do_read();
  }

  void do_read() {
    read_in_flight_ = true;
    if (rlen_ > 0) {  // the rest of a partial frame goes after it
      if (rcap_ - rlen_ < 512) grow(std::max<std::size_t>(rcap_ * 2, rlen_ + 1024));
      socket_.async_read_some(asio::buffer(rbuf_.get() + rlen_, rcap_ - rlen_),
                              beast::bind_front_handler(&ws_session::on_read, shared_from_this()));
      return;
    }
    socket_.async_wait(tcp::socket::wait_read,
                       beast::bind_front_handler(&ws_session::on_ready, shared_from_this()));
  }

  void grow(std::size_t cap) {
    auto n = std::make_unique<char[]>(cap);
    if (rlen_) std::memcpy(n.get(), rbuf_.get(), rlen_);
    rbuf_ = std::move(n);
    rcap_ = cap;
  }

  void on_ready(beast::error_code ec) {
    read_in_flight_ = false;
    if (ec) return finish();
    constexpr std::size_t thread_buffer_bytes = 64 * 1024;
    thread_local std::unique_ptr<char[]> tl(new char[thread_buffer_bytes]);
    auto n = socket_.read_some(asio::buffer(tl.get(), thread_buffer_bytes), ec);
    if (ec == asio::error::would_block || ec == asio::error::try_again) return do_read();
    if (!ec && n == 0) ec = asio::error::eof;
    if (ec) {
      if (ec != asio::error::eof) spdlog::debug("ws {}: read ended: {}", peer_, ec.message());
      return finish();
    }
    last_rx_ = std::chrono::steady_clock::now();
    consume(tl.get(), n);
  }

  void on_read(beast::error_code ec, std::size_t bytes) {
    read_in_flight_ = false;
    if (ec) {
      if (ec != asio::error::eof && ec != asio::error::operation_aborted)
        spdlog::debug("ws {}: read ended: {}", peer_, ec.message());
      return finish();
    }
    rlen_ += bytes;
    last_rx_ = std::chrono::steady_clock::now();
    consume(rbuf_.get(), rlen_);
  }

  // Handles the frames in buf[0, len) (rbuf_ or the thread's buffer), keeps
  // what is left in rbuf_, and reads on unless paused or closing for good.
  void consume(char* buf, std::size_t len) {
    bool more = true;
    std::size_t used = len;
    need_ = 0;
    if (close_sent_) {
      // Closing: RFC 6455 wants our close answered by the peer's, so a peer
      // still sending (say the rest of a frame over net.max-frame-bytes) is
      // read and discarded until its close or EOF, whatever back-pressure
      // said; closing the socket on unread bytes would reset the connection
      // and lose our close frame. Bounded: close_drain_bytes here, and
      // net.write-timeout after our close in on_tick().
      drained_ += len;
      if (drained_ > close_drain_bytes) {
        spdlog::debug("ws {}: still sending {} bytes after our close, cut off", peer_, drained_);
        return finish();
      }
      more = !peer_closed_;
    } else {
      in_read_ = true;
      used = process(buf, len, more);
      in_read_ = false;
    }
    if (closed_) return;
    const std::size_t left = len - used;
    if (left == 0) {
      rlen_ = 0;
      rbuf_.reset();  // an idle connection holds no read buffer
      rcap_ = 0;
    } else {
      const std::size_t cap = std::max(left, need_) + 512;
      if (buf == rbuf_.get()) {
        std::memmove(rbuf_.get(), buf + used, left);
        rlen_ = left;
        if (cap > rcap_) grow(cap);
      } else {
        if (cap > rcap_) {
          rbuf_ = std::make_unique<char[]>(cap);
          rcap_ = cap;
        }
        std::memcpy(rbuf_.get(), buf + used, left);
        rlen_ = left;
      }
    }
    if (msg_.capacity() > 4096 && msg_.empty()) std::string().swap(msg_);
    if (more && (reading_ || close_sent_) && !read_in_flight_) do_read();
  }

  // Handles every complete frame in buf[0, len); returns the bytes used. A
  // frame not complete yet is left (need_: its whole size). `more` false:
  // the connection reads no further frames (a close, a protocol error).
  std::size_t process(char* buf, std::size_t len, bool& more) {
    std::size_t pos = 0;
    while (reading_) {
      const std::size_t avail = len - pos;
      ws_frame_header h;
      auto r = read_ws_header(reinterpret_cast<const unsigned char*>(buf + pos), avail,
                              in_message_, msg_.size(), shared_->opts.max_frame_bytes, h);
      if (r == ws_protocol_error) return fail(1002, "protocol error", len, more);
      if (r == ws_too_big) return fail(1009, "message too big", len, more);
      if (r == ws_incomplete) break;
      if (avail - h.header_bytes < h.len) {
        need_ = h.header_bytes + static_cast<std::size_t>(h.len);  // bounded by the checks
        break;
      }
      const unsigned op = h.op;
      const auto n = static_cast<std::size_t>(h.len);
      char* payload = buf + pos + h.header_bytes;
      unmask(payload, n, h.key);
      pos += h.header_bytes + n;
      std::string_view data(payload, n);
      if (h.control()) {
        if (!on_control(op, data)) {  // a close (ours or the peer's): nothing after it is read
          more = !closed_ && !close_sent_;
          return len;
        }
        continue;
      }
      if (op != 0) {
        in_message_ = true;
        binary_ = op == 0x2;
      }
      if (h.fin && msg_.empty()) {
        in_message_ = false;
        on_message(data);
      } else {
        msg_.append(data);
        if (h.fin) {
          in_message_ = false;
          std::string m = std::move(msg_);
          msg_.clear();
          on_message(m);
        }
      }
      if (closed_ || close_sent_) {
        more = false;
        return len;
      }
    }
    return pos;
  }

  void on_message(std::string_view data) {
    auto& m = shared_->b.metrics();
    if (binary_) {
      m.count_error(wire::error_code::invalid_json);
      return queue(wire::encode_error(wire::error_code::invalid_json,
                                      "binary frames are not accepted; send JSON text frames"));
    }
    if (!wire::valid_utf8(data)) {
      spdlog::debug("ws {}: invalid UTF-8 in a text message, closing with 1007", peer_);
      return do_close(1007, "invalid UTF-8 in a text message");
    }
    if (handle_) handle_->frame(data);
  }

  // False when the connection stops reading frames (a close).
  bool on_control(unsigned op, std::string_view data) {
    if (op == 0x9) {
      enqueue(0xA, std::string(data));
    } else if (op == 0x8) {
      peer_closed_ = true;
      std::uint16_t code = 1000;
      if (data.size() == 1) return do_close(1002, "protocol error"), false;
      if (data.size() >= 2) {
        code = static_cast<std::uint16_t>((static_cast<unsigned char>(data[0]) << 8) |
                                          static_cast<unsigned char>(data[1]));
        if (!valid_close_code(code)) return do_close(1002, "invalid close code"), false;
        if (!wire::valid_utf8(data.substr(2)))
          return do_close(1007, "invalid UTF-8 in close reason"), false;
      }
      do_close(code, "");
      return false;
    }
    return true;  // pong
  }

  // Closes with `code`; the rest of the input is dropped (`used` = all of it).
  std::size_t fail(std::uint16_t code, const char* why, std::size_t all, bool& more) {
    if (code != 1009) {
      spdlog::debug("ws {}: {}, closing with {}", peer_, why, code);
    } else if (auto n = shared_->b.metrics().refused_log.admit()) {
      spdlog::info("ws {}: frame over net.max-frame-bytes, closed with 1009 ({} refusals in the "
                   "last second)", peer_, n);
    }
    do_close(code, why);
    more = false;
    return all;
  }

  // --- writing: every queued message in one write ---
  void queue_frame(unsigned op, std::string payload) {
    if (closed_ || close_sent_) return;
    enqueue(op, std::move(payload));
  }

  void enqueue(unsigned op, std::string payload) {
    if (closed_) return;
    queued_bytes_ += payload.size();
    out_.push_back(outgoing{static_cast<std::uint8_t>(op), std::move(payload)});
    if (op == 0x8) close_time_ = std::chrono::steady_clock::now();
    if (queued_bytes_ > shared_->opts.max_write_queue_bytes && op != 0x8) {
      if (auto n = shared_->b.metrics().shed_log.admit())
        spdlog::warn("ws {}: peer does not read ({} bytes queued), closed with 1013 ({} sheds in "
                     "the last second)", peer_, queued_bytes_, n);
      shared_->b.metrics().write_queue_full.fetch_add(1);
      out_.clear();
      queued_bytes_ = 0;
      close_sent_ = false;
      do_close(1013, "write queue full");
      return;
    }
    if (!writing_) do_write();
  }

  static void append_header(std::string& out, unsigned op, std::size_t n) {
    out.push_back(static_cast<char>(0x80 | op));
    if (n < 126) {
      out.push_back(static_cast<char>(n));
    } else if (n <= 0xffff) {
      out.push_back(static_cast<char>(126));
      out.push_back(static_cast<char>(n >> 8));
      out.push_back(static_cast<char>(n & 0xff));
    } else {
      out.push_back(static_cast<char>(127));
      for (int i = 7; i >= 0; --i) out.push_back(static_cast<char>((std::uint64_t{n} >> (8 * i)) & 0xff));
    }
  }

  void do_write() {
    if (out_.empty() || closed_) return;
    wbuf_.clear();
    bool close = false;
    for (auto& o : out_) {
      append_header(wbuf_, o.op, o.payload.size());
      wbuf_ += o.payload;
      if (o.op == 0x8) {
        close = true;  // nothing goes after a close frame
        break;
      }
    }
    in_flight_bytes_ = 0;
    for (auto& o : out_) in_flight_bytes_ += o.payload.size();
    out_.clear();
    writing_ = true;
    write_started_ = std::chrono::steady_clock::now();
    asio::async_write(socket_, asio::buffer(wbuf_),
                      [self = shared_from_this(), close](beast::error_code ec, std::size_t) {
                        self->on_write(ec, close);
                      });
  }

  void on_write(beast::error_code ec, bool close) {
    writing_ = false;
    queued_bytes_ -= std::min(queued_bytes_, in_flight_bytes_);
    if (wbuf_.capacity() > 4096) std::string().swap(wbuf_);
    if (ec) {
      spdlog::debug("ws {}: write failed: {}", peer_, ec.message());
      return finish();
    }
    if (close) {
      // Our close is out: no more data from us. A peer that already closed
      // is done; otherwise its close or EOF (or net.write-timeout) ends it.
      beast::error_code ignored;
      socket_.shutdown(tcp::socket::shutdown_send, ignored);
      if (peer_closed_) return finish();
      if (!read_in_flight_ && !in_read_) resume_reading();
      return;
    }
    if (!out_.empty()) do_write();
  }

  void finish() {
    if (closed_) return;
    closed_ = true;
    timer_.cancel();
    if (handle_) handle_->closed();
    handle_.reset();
    if (counted_) shared_->b.metrics().connections.fetch_sub(1);
    counted_ = false;
    beast::error_code ignored;
    socket_.close(ignored);
  }

  struct outgoing {
    std::uint8_t op;
    std::string payload;
  };

  std::unique_ptr<websocket::stream<beast::tcp_stream>> handshake_;  // until accepted
  tcp::socket socket_;
  std::shared_ptr<shared_state> shared_;
  asio::steady_timer timer_;
  std::unique_ptr<char[]> rbuf_;  // raw bytes read, frames unmasked in place
  std::size_t rcap_ = 0, rlen_ = 0;
  std::size_t need_ = 0;  // size of the incomplete frame at the end of the input
  std::size_t drained_ = 0;  // bytes read and discarded after our close
  std::string msg_;  // a fragmented message being assembled
  std::vector<outgoing> out_;
  std::string wbuf_;  // the write in flight
  std::size_t queued_bytes_ = 0, in_flight_bytes_ = 0;
  std::unique_ptr<bridge::session> handle_;
  std::string peer_;
  std::chrono::steady_clock::time_point last_rx_, last_ping_, write_started_, close_time_;
  bool over_limit_ = false;
  bool open_ = false;
  bool counted_ = false;
  bool reading_ = true;
  bool read_in_flight_ = false;
  bool in_read_ = false;  // process() is running (the ingest path may call back)
  bool in_message_ = false;
  bool binary_ = false;
  bool writing_ = false;
  bool close_sent_ = false;
  bool peer_closed_ = false;
  bool closed_ = false;
};

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
    started_ = std::chrono::steady_clock::now();
    route_ = http_route::other;
    origin_.clear();
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
    origin_ = std::string(req[http::field::origin]);
    auto target = std::string(req.target());
    auto path = target.substr(0, target.find('?'));
    bool get = req.method() == http::verb::get || req.method() == http::verb::head;
    route_ = route_of(path, req.method() == http::verb::post);
    if (req.method() == http::verb::options) return preflight(path);
    if (path == "/ws" && get) {
      // A plain GET of the WebSocket endpoint (no Upgrade): say what is needed.
      extra_headers_ = {{"Upgrade", "websocket"}};
      return send_simple(http::status::upgrade_required, "bad_request",
                         "/ws is a WebSocket endpoint: send Upgrade: websocket", keep_alive_);
    }
    if (path == "/healthz" && get) return send(200, "application/json", "{\"status\":\"ok\"}");
    if (path == "/readyz" && get) {
      auto why = shared_->b.not_ready();
      if (why.empty()) return send(200, "application/json", "{\"status\":\"ready\"}");
      std::string body = "{\"status\":\"not ready\",\"reason\":";
      wire::append_json_string(body, why);
      body += '}';
      return send(503, "application/json", std::move(body));
    }
    if (path == "/metrics" && get)
      return send(200, "text/plain; version=0.0.4", shared_->b.metrics_text());
    if (get)
      if (auto* asset = find_web_asset(path))
        return send(200, asset->content_type, std::string(asset->body));
    if (path == "/admin/backup") return handle_backup(req, target);
    if (path == "/admin/clock") {
      if (req.method() != http::verb::post) return method_not_allowed(path);
      http_request r;
      r.method = "POST";
      r.target = std::move(target);
      shared_->b.http(std::move(r), std::nullopt, reply_on_strand());
      return;
    }
    if (path.rfind("/admin/", 0) == 0) return handle_admin(req.method(), path, target);
    if (path.rfind("/api/", 0) == 0 || path == "/write") {
      std::string method(req.method_string());
      std::optional<auth::grant> writer;
      if (auto& tokens = shared_->b.settings().tokens) {
        auto g = tokens->find(request_token(req[http::field::authorization]));
        bool post = req.method() == http::verb::post;
        if (g.none() || (!post && !g.may_read())) {
          shared_->b.metrics().count_error(wire::error_code::unauthorized);
          if (auto n = shared_->b.metrics().auth_log.admit())
            spdlog::warn("http {}: 401 for {} {}: {} ({} auth failures in the last second)",
                         endpoint_string(stream_.socket()), method, path,
                         g.none() ? "no valid bearer token" : "token may not read", n);
          return send_simple(http::status::unauthorized, "unauthorized",
                             g.none() ? "a valid Authorization: Bearer token is required"
                                      : "this token may not read",
                             keep_alive_);
        }
        if (post) writer = std::move(g);
      }
      const bool post_path =
        path == "/api/v1/readings" || path == "/write" || path == "/api/v2/write";
      if (post_path) {
        if (req.method() != http::verb::post) return method_not_allowed(path);
      } else if (!get) {
        return method_not_allowed(path);
      }
      http_request r;
      r.method = method == "HEAD" ? "GET" : method;
      r.target = std::move(target);
      r.body = std::move(req.body());
      if (post_path && !decode_body(req[http::field::content_encoding], r.body)) return;
      r.accept = std::string(req[http::field::accept]);
      if (shared_->b.settings().fault_injection)
        if (auto d = req["X-Pulse-Debug-Delay"]; !d.empty() && d.size() <= 5 &&
                                                 std::all_of(d.begin(), d.end(), [](char c) {
                                                   return c >= '0' && c <= '9';
                                                 }))
          r.debug_delay = std::chrono::milliseconds(std::stoi(std::string(d)));
      shared_->b.http(std::move(r), std::move(writer), reply_on_strand());
      return;
    }
    if (!allowed_methods(path).empty()) return method_not_allowed(path);
    send_simple(http::status::not_found, "not_found", "no such endpoint: " + path, keep_alive_);
  }

  // "Authorization: Bearer <t>", or "Token <t>" as InfluxDB 2 clients
  // (Telegraf's influxdb_v2 output) send it.
  static std::string_view request_token(std::string_view header) {
    auto h = header;
    while (!h.empty() && (h.front() == ' ' || h.front() == '\t')) h.remove_prefix(1);
    if (h.size() > 6 && beast::iequals(h.substr(0, 6), "Token ")) {
      auto t = h.substr(6);
      while (!t.empty() && (t.front() == ' ' || t.front() == '\t')) t.remove_prefix(1);
      while (!t.empty() && (t.back() == ' ' || t.back() == '\t')) t.remove_suffix(1);
      return t.find_first_of(" \t") == std::string_view::npos ? t : std::string_view{};
    }
    return auth::bearer_token(header);
  }

  // Content-Encoding of a POST body: identity or gzip (inflated here, at most
  // net.max-body-bytes). false: the error answer was sent.
  bool decode_body(std::string_view encoding, std::string& body) {
    if (encoding.empty() || beast::iequals(encoding, "identity")) return true;
    if (!beast::iequals(encoding, "gzip")) {
      send_simple(http::status::unsupported_media_type, "bad_request",
                  "Content-Encoding " + std::string(encoding.substr(0, 40)) +
                    " is not supported; use gzip or none",
                  keep_alive_);
      return false;
    }
    std::string inflated, error;
    auto r = gunzip(body, shared_->opts.max_body_bytes, inflated, error);
    if (r == gunzip_result::too_large) {
      shared_->b.metrics().count_error(wire::error_code::too_large);
      send_simple(http::status::payload_too_large, "too_large", error, keep_alive_);
      return false;
    }
    if (r == gunzip_result::corrupt) {
      send_simple(http::status::bad_request, "bad_request", error, keep_alive_);
      return false;
    }
    body = std::move(inflated);
    return true;
  }

  void method_not_allowed(const std::string& path) {
    auto allow = allowed_methods(path);
    extra_headers_ = {{"Allow", std::string(allow)}};
    send_simple(http::status::method_not_allowed, "method_not_allowed",
                "use " + std::string(allow.substr(0, allow.find(','))) + " for " + path,
                keep_alive_);
  }

  // OPTIONS: the methods of the path; for an allowed origin also the CORS
  // preflight answer (browsers then send the real request).
  void preflight(const std::string& path) {
    auto allow = allowed_methods(path);
    if (allow.empty() && path != "*")
      return send_simple(http::status::not_found, "not_found", "no such endpoint: " + path,
                         keep_alive_);
    if (allow.empty()) allow = "GET, HEAD, POST, OPTIONS";
    extra_headers_ = {{"Allow", std::string(allow)}};
    if (cors_allowed()) {
      extra_headers_.emplace_back("Access-Control-Allow-Methods", std::string(allow));
      extra_headers_.emplace_back("Access-Control-Allow-Headers",
                                  "Authorization, Content-Type, Content-Encoding, Accept");
      extra_headers_.emplace_back("Access-Control-Max-Age", "600");
    }
    send(204, "application/json", {});
  }

  // Whether the request's Origin is one of http.cors-origins ("*" allows any).
  bool cors_allowed() const {
    if (origin_.empty()) return false;
    auto& list = shared_->opts.cors_origins;
    return std::any_of(list.begin(), list.end(),
                       [&](const std::string& o) { return o == "*" || o == origin_; });
  }

  // The callback the actors answer through (from an actor thread): the reply
  // is sent from this connection's strand.
  http_callback reply_on_strand() {
    return [self = shared_from_this()](http_reply r) {
      asio::post(self->stream_.get_executor(), [self, r = std::move(r)]() mutable {
        self->extra_headers_ = std::move(r.headers);
        self->send(r.status, r.content_type, std::move(r.body));
      });
    };
  }

  // POST /admin/backup (docs/operations.md): with auth on, an admin token.
  void handle_backup(http::request<http::string_body>& req, std::string& target) {
    if (req.method() != http::verb::post) return method_not_allowed("/admin/backup");
    if (auto& tokens = shared_->b.settings().tokens) {
      auto g = tokens->find(auth::bearer_token(req[http::field::authorization]));
      if (!g.may_admin()) {
        shared_->b.metrics().count_error(wire::error_code::unauthorized);
        return send_simple(http::status::unauthorized, "unauthorized",
                           g.none() ? "a valid Authorization: Bearer admin token is required"
                                    : "this token is not an admin token",
                           keep_alive_);
      }
    }
    http_request r;
    r.method = "POST";
    r.target = std::move(target);
    r.body = std::move(req.body());
    shared_->b.http(std::move(r), std::nullopt, reply_on_strand());
  }

  // POST /admin/shards/{n}/crash and POST /admin/storage/fault?mode=...
  // (debug.fault-injection only; 404 otherwise).
  void handle_admin(http::verb method, const std::string& path, const std::string& target) {
    if (path == "/admin/storage/fault") {
      if (method != http::verb::post) return method_not_allowed(path);
      auto q = target.find("?mode=");
      auto mode = q == std::string::npos ? std::string() : target.substr(q + 6);
      if (shared_->b.inject_storage_fault(mode)) {
        std::string body = "{\"storage_fault\":";
        wire::append_json_string(body, mode);
        body += '}';
        return send(200, "application/json", std::move(body));
      }
      return send_simple(http::status::not_found, "not_found",
                         "mode must be eio-write, eio-sync, no-space or off, and "
                         "debug.fault-injection on",
                         keep_alive_);
    }
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
        if (method != http::verb::post) return method_not_allowed(path);
        shared_->b.crash_shard(n, reply_on_strand());
        return;
      }
    }
    send_simple(http::status::not_found, "not_found", "no such endpoint: " + path, keep_alive_);
  }

  void send_simple(http::status status, std::string_view code, const std::string& message,
                   bool keep_alive) {
    keep_alive_ = keep_alive;
    send(static_cast<int>(status), "application/json", wire::encode_error(code, message));
  }

  void send(int status, std::string_view content_type, std::string body) {
    res_ = std::make_shared<http::response<http::string_body>>(static_cast<http::status>(status),
                                                                11);
    res_->set(http::field::server, "pulse-node");
    res_->set(http::field::content_type, content_type);
    if (status == 401) res_->set(http::field::www_authenticate, "Bearer");
    if (status == 503) res_->set(http::field::retry_after, std::to_string(retry_after_seconds));
    for (auto& [name, value] : extra_headers_) res_->set(name, value);
    extra_headers_.clear();
    if (cors_allowed()) {
      res_->set(http::field::access_control_allow_origin, origin_);
      res_->set(http::field::vary, "Origin");
      res_->set(http::field::access_control_expose_headers, "X-Next-Cursor");
    }
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
    shared_->b.metrics().http_seconds.observe(
      static_cast<std::size_t>(route_),
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count());
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
  std::chrono::steady_clock::time_point started_;  // request read (pulse_http_request_duration_seconds)
  http_route route_ = http_route::other;
  std::string origin_;        // the request's Origin header (CORS)
  header_list extra_headers_;  // for the next answer only
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
