// WebSocket clients on Boost.Beast, shaped like Beast's websocket client
// examples: a strand per connection, do_x/on_x steps, one write in flight.

#include "net/ws_client.hpp"

#include <netinet/in.h>

#include <atomic>
#include <deque>
#include <mutex>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>

namespace pulse::net {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;
using steady = std::chrono::steady_clock;

constexpr auto connect_timeout = std::chrono::seconds(10);
constexpr auto handshake_timeout = std::chrono::seconds(10);  // also bounds the close handshake
// Silence from the server for half of this sends a ping; for all of it, fails the connection.
constexpr auto idle_timeout = std::chrono::seconds(30);
constexpr auto blocking_write_timeout = std::chrono::seconds(5);
constexpr auto blocking_close_timeout = std::chrono::seconds(1);
// Larger than Beast's 4 KiB default so a big frame takes fewer masking passes and syscalls.
constexpr std::size_t write_buffer_bytes = 16 * 1024;
constexpr const char* user_agent = "pulse-net-client";

// "host:port", with brackets around an IPv6 literal, for the Host header and messages.
std::string host_port(const std::string& host, std::uint16_t port) {
  bool v6 = host.find(':') != std::string::npos && host.front() != '[';
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

// Options shared by both clients; timeouts are set separately because the
// blocking client keeps its own deadlines.
template <class Stream>
void configure(Stream& ws) {
  websocket::permessage_deflate pmd;  // off: compression costs CPU the load generator needs
  pmd.client_enable = false;
  pmd.server_enable = false;
  ws.set_option(pmd);
  ws.read_message_max(ws_client::max_message_bytes);
  ws.auto_fragment(false);  // one message, one frame
  ws.write_buffer_bytes(write_buffer_bytes);
  ws.set_option(websocket::stream_base::decorator(
      [](websocket::request_type& req) { req.set(http::field::user_agent, user_agent); }));
}

std::string handshake_error(const beast::error_code& ec, const websocket::response_type& res) {
  if (ec == websocket::error::upgrade_declined)
    return "handshake declined: HTTP " + std::to_string(res.result_int()) +
           (res.body().empty() ? "" : " " + res.body().substr(0, 200));
  return "handshake: " + ec.message();
}

std::string close_text(const websocket::close_reason& r) {
  std::string s = std::to_string(r.code);
  if (!r.reason.empty()) s.append(" ").append(r.reason.data(), r.reason.size());
  return s;
}

}  // namespace

// ------------------------------------------------------------------ ws_client

struct ws_client::impl {
  enum class phase { idle, connecting, open, closing, done };

  impl(asio::io_context& ioc, handlers hs)
      : ws(asio::make_strand(ioc)), resolver(ws.get_executor()), h(std::move(hs)) {}

  ws_client* owner = nullptr;
  websocket::stream<beast::tcp_stream> ws;
  tcp::resolver resolver;
  handlers h;

  // Strand only.
  phase ph = phase::idle;
  bool close_requested = false;
  std::string peer;  // host:port
  std::string target;
  std::string source;  // local address to connect from; "" = the kernel's choice
  beast::flat_buffer rbuf;
  std::string current;  // the frame being written
  websocket::response_type handshake_res;

  // Guarded by mtx: the send queue is shared with callers on other threads.
  mutable std::mutex mtx;
  std::deque<std::string> queue;
  std::size_t queue_bytes = 0;
  bool accepting = true;   // send() queues; false after close() or a failure
  bool can_write = false;  // handshake done, not failed
  bool writing = false;    // a write chain is posted or running on the strand
  // Frames queued or being written; an atomic so queued() can be polled without the lock.
  std::atomic<std::size_t> pending{0};

  std::shared_ptr<ws_client> keep() { return owner->shared_from_this(); }

  template <class F>
  void post(F&& f) {
    asio::post(ws.get_executor(), std::forward<F>(f));
  }

  // Opens the socket and binds it to `source` (port chosen at connect time).
  bool bind_source(const asio::ip::address& to) {
    if (source.empty()) return true;
    beast::error_code ec;
    auto from = asio::ip::make_address(source, ec);
    if (ec) {
      fail("source address '" + source + "': " + ec.message());
      return false;
    }
    auto& sock = beast::get_lowest_layer(ws).socket();
    sock.open(to.is_v4() ? tcp::v4() : tcp::v6(), ec);
#ifdef IP_BIND_ADDRESS_NO_PORT
    // The port is picked by connect() for the whole 4-tuple, not by bind().
    if (!ec) {
      int one = 1;
      ::setsockopt(sock.native_handle(), IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    }
#endif
    if (!ec) sock.bind(tcp::endpoint(from, 0), ec);
    if (ec) {
      fail("bind to " + source + ": " + ec.message());
      return false;
    }
    return true;
  }

  void do_connect(const std::string& host, std::uint16_t port) {
    if (ph != phase::idle) return;  // one connection per client
    ph = phase::connecting;
    peer = host_port(host, port);
    beast::error_code ec;
    auto addr = asio::ip::make_address(host, ec);
    if (!ec) {  // a literal address needs no resolver round trip
      if (!bind_source(addr)) return;
      beast::get_lowest_layer(ws).expires_after(connect_timeout);
      beast::get_lowest_layer(ws).async_connect(
          tcp::endpoint(addr, port), [this, k = keep()](beast::error_code e) { on_connect(e); });
      return;
    }
    resolver.async_resolve(host, std::to_string(port),
                           [this, k = keep()](beast::error_code e, tcp::resolver::results_type r) {
                             on_resolve(e, r);
                           });
  }

  void on_resolve(beast::error_code ec, const tcp::resolver::results_type& results) {
    if (ph == phase::done) return;
    if (ec) return fail("resolve " + peer + ": " + ec.message());
    if (!source.empty()) {
      // Bound to one address family: connect to the first of the results.
      auto to = results.begin()->endpoint();
      if (!bind_source(to.address())) return;
      beast::get_lowest_layer(ws).expires_after(connect_timeout);
      beast::get_lowest_layer(ws).async_connect(
          to, [this, k = keep()](beast::error_code e) { on_connect(e); });
      return;
    }
    beast::get_lowest_layer(ws).expires_after(connect_timeout);
    beast::get_lowest_layer(ws).async_connect(
        results, [this, k = keep()](beast::error_code e, const tcp::endpoint&) { on_connect(e); });
  }

  void on_connect(beast::error_code ec) {
    if (ph == phase::done) return;
    if (ec) return fail("connect " + peer + ": " + ec.message());
    // The websocket stream keeps its own timeouts from here on.
    beast::get_lowest_layer(ws).expires_never();
    beast::error_code ignored;
    beast::get_lowest_layer(ws).socket().set_option(tcp::no_delay(true), ignored);
    configure(ws);
    websocket::stream_base::timeout t;
    t.handshake_timeout = handshake_timeout;
    t.idle_timeout = idle_timeout;
    t.keep_alive_pings = true;
    ws.set_option(t);
    ws.async_handshake(handshake_res, peer, target,
                       [this, k = keep()](beast::error_code e) { on_handshake(e); });
  }

  void on_handshake(beast::error_code ec) {
    if (ph == phase::done) return;
    if (ec) return fail(handshake_error(ec, handshake_res));
    handshake_res = {};
    ph = phase::open;
    bool start = false;
    {
      std::lock_guard<std::mutex> guard{mtx};
      can_write = true;
      if (!queue.empty() && !writing) writing = start = true;
    }
    do_read();
    if (start) write_next();
    if (h.on_open) h.on_open();
  }

  void do_read() {
    ws.async_read(rbuf, [this, k = keep()](beast::error_code e, std::size_t) { on_read(e); });
  }

  void on_read(beast::error_code ec) {
    if (ph == phase::done) return;
    if (ec == websocket::error::closed) return fail("closed by server: " + close_text(ws.reason()));
    if (ec) return fail("read: " + ec.message());
    auto data = rbuf.cdata();
    if (h.on_message) h.on_message({static_cast<const char*>(data.data()), data.size()});
    rbuf.consume(rbuf.size());
    // One huge message should not pin its memory for the life of the connection.
    if (rbuf.capacity() > (1u << 20)) rbuf.shrink_to_fit();
    if (ph != phase::done) do_read();
  }

  // Takes the next queued frame and writes it; ends the chain when the queue is empty.
  void write_next() {
    if (ph == phase::done) return;
    bool have = false;
    {
      std::lock_guard<std::mutex> guard{mtx};
      if (!queue.empty() && can_write) {
        current = std::move(queue.front());
        queue.pop_front();
        queue_bytes -= current.size();
        have = true;
      } else {
        writing = false;
      }
    }
    if (!have) {
      if (close_requested && ph == phase::open) start_close();
      return;
    }
    ws.async_write(asio::buffer(current), [this, k = keep()](beast::error_code e, std::size_t) {
      if (ph == phase::done) return;
      if (e) return fail("write: " + e.message());
      pending.fetch_sub(1, std::memory_order_relaxed);
      write_next();
    });
  }

  void do_close_request() {
    if (close_requested || ph == phase::done) return;
    close_requested = true;
    switch (ph) {
      case phase::idle:
        fail("closed by client");
        return;
      case phase::connecting: {
        // Aborting the pending resolve/connect/handshake makes it fail; fail() names the cause.
        beast::error_code ignored;
        resolver.cancel();
        beast::get_lowest_layer(ws).socket().close(ignored);
        return;
      }
      case phase::open: {
        bool busy;
        {
          std::lock_guard<std::mutex> guard{mtx};
          busy = writing;
        }
        if (!busy) start_close();  // otherwise write_next() closes once the queue is written
        return;
      }
      default:
        return;
    }
  }

  void start_close() {
    ph = phase::closing;
    ws.async_close(websocket::close_code::normal, [this, k = keep()](beast::error_code e) {
      // On success the pending read ends with `closed` and reports it.
      if (e) fail("close: " + e.message());
    });
  }

  // Ends the connection and reports it once; later completions see `done` and stop.
  void fail(const std::string& reason) {
    if (ph == phase::done) return;
    ph = phase::done;
    {
      std::lock_guard<std::mutex> guard{mtx};
      accepting = false;
      can_write = false;
      queue.clear();
      queue_bytes = 0;
      pending.store(0, std::memory_order_relaxed);  // completions after `done` do not count down
    }
    beast::error_code ignored;
    resolver.cancel();
    beast::get_lowest_layer(ws).socket().close(ignored);
    // Drop the callbacks now: they may hold handles the owner wants released.
    auto on_close = std::move(h.on_close);
    h = handlers{};
    if (on_close) on_close(close_requested ? "closed by client" : reason);
  }
};

ws_client::ws_client(asio::io_context& ioc, handlers h)
    : impl_(std::make_unique<impl>(ioc, std::move(h))) {}

ws_client::~ws_client() = default;

std::shared_ptr<ws_client> ws_client::create(asio::io_context& ioc, handlers h) {
  std::shared_ptr<ws_client> c{new ws_client(ioc, std::move(h))};
  c->impl_->owner = c.get();
  return c;
}

void ws_client::connect(const std::string& host, std::uint16_t port, const std::string& target,
                        const std::string& source) {
  impl_->post([this, k = shared_from_this(), host, port, target, source] {
    impl_->target = target;
    impl_->source = source;
    impl_->do_connect(host, port);
  });
}

void ws_client::send(std::string text) {
  auto& m = *impl_;
  bool start = false, overflow = false;
  {
    std::lock_guard<std::mutex> guard{m.mtx};
    if (!m.accepting) return;
    if (m.queue_bytes + text.size() > max_queued_bytes) {
      m.accepting = false;
      overflow = true;
    } else {
      m.queue_bytes += text.size();
      m.queue.push_back(std::move(text));
      m.pending.fetch_add(1, std::memory_order_relaxed);
      if (m.can_write && !m.writing) m.writing = start = true;
    }
  }
  if (overflow)
    m.post([k = shared_from_this(), &m] {
      m.fail("send queue full (more than " + std::to_string(max_queued_bytes >> 20) +
             " MiB waiting)");
    });
  else if (start)
    m.post([k = shared_from_this(), &m] { m.write_next(); });
}

void ws_client::close() {
  {
    std::lock_guard<std::mutex> guard{impl_->mtx};
    impl_->accepting = false;
  }
  impl_->post([k = shared_from_this(), &m = *impl_] { m.do_close_request(); });
}

std::size_t ws_client::queued() const { return impl_->pending.load(std::memory_order_relaxed); }

// ------------------------------------------------------------ ws_blocking_client

struct ws_blocking_client::impl {
  using stream = websocket::stream<beast::tcp_stream>;

  // Completion of one operation; shared with its handler, which may run
  // after the call that started it has timed out and returned.
  struct op_state {
    bool done = false;
    beast::error_code ec;
  };

  // Declared before the stream: pending handlers are destroyed with the io_context last.
  asio::io_context ioc;
  beast::flat_buffer rbuf;
  std::deque<std::string> inbox;
  std::unique_ptr<stream> ws;    // a new one per connect()
  std::uint64_t generation = 0;  // tells stale handlers of an earlier connection apart
  bool open = false;             // handshake done, not yet closed
  bool reading = false;
  bool closed = false;
  int code = 0;
  std::string reason;

  ~impl() {
    ws.reset();  // closes the socket; its aborted handlers are destroyed with ioc
  }

  // Runs handlers until done() holds or the deadline passes.
  template <class Done>
  bool run_until(Done done, steady::time_point deadline) {
    ioc.restart();
    ioc.poll();  // what is already due runs even when the deadline has passed
    while (!done())
      if (ioc.run_one_until(deadline) == 0) return done();  // deadline, or nothing left to run
    return true;
  }

  void abort_socket() {
    beast::error_code ignored;
    if (ws) beast::get_lowest_layer(*ws).socket().close(ignored);
  }

  void mark_closed(int c, std::string why) {
    if (closed) return;
    closed = true;
    open = false;
    code = c;
    reason = std::move(why);
  }

  void start_read() {
    reading = true;
    ws->async_read(rbuf, [this, gen = generation](beast::error_code ec, std::size_t) {
      if (gen != generation) return;
      reading = false;
      // A close frame from the server ends the read with `closed`, or with
      // operation_aborted when our own close() consumed it; either way its
      // code is the one to report.
      auto r = ws->reason();
      if (ec == websocket::error::closed || (ec && r.code != websocket::close_code::none)) {
        mark_closed(r.code, std::string(r.reason.data(), r.reason.size()));
        return;
      }
      if (ec) {
        mark_closed(static_cast<int>(websocket::close_code::abnormal), ec.message());
        abort_socket();
        return;
      }
      inbox.push_back(beast::buffers_to_string(rbuf.cdata()));
      rbuf.consume(rbuf.size());
      start_read();  // always reading, so pings and the server's close are seen promptly
    });
  }

  bool write(const std::string& data, bool binary, std::string& error) {
    if (!open) {
      error = closed ? "connection closed (" + std::to_string(code) + " " + reason + ")"
                     : "not connected";
      return false;
    }
    ws->binary(binary);
    auto st = std::make_shared<op_state>();
    ws->async_write(asio::buffer(data), [st](beast::error_code ec, std::size_t) {
      st->done = true;
      st->ec = ec;
    });
    if (!run_until([&] { return st->done; }, steady::now() + blocking_write_timeout)) {
      // The write still references `data`: abort it and wait for its handler before returning.
      abort_socket();
      run_until([&] { return st->done; }, steady::now() + blocking_close_timeout);
      mark_closed(static_cast<int>(websocket::close_code::abnormal), "write timed out");
      error = "write timed out";
      return false;
    }
    if (st->ec) {
      error = "write: " + st->ec.message();
      return false;
    }
    return true;
  }
};

ws_blocking_client::ws_blocking_client() : impl_(std::make_unique<impl>()) {}

ws_blocking_client::~ws_blocking_client() { close(); }

bool ws_blocking_client::connect(const std::string& host, std::uint16_t port, std::string& error,
                                 const std::string& target, std::chrono::milliseconds timeout) {
  auto& m = *impl_;
  if (m.open) {
    error = "already connected";
    return false;
  }
  auto deadline = steady::now() + timeout;
  auto ms = std::to_string(timeout.count()) + " ms";
  auto peer = host_port(host, port);
  if (m.ws) close();  // a client may connect again after a close
  ++m.generation;
  m.ws = std::make_unique<impl::stream>(m.ioc);
  m.inbox.clear();
  m.rbuf.clear();
  m.reading = m.closed = false;
  m.code = 0;
  m.reason.clear();

  std::vector<tcp::endpoint> endpoints;
  beast::error_code ec;
  auto addr = asio::ip::make_address(host, ec);
  if (!ec) {
    endpoints.emplace_back(addr, port);
  } else {
    // The results live in shared state: the handler may outlive this call after a timeout.
    struct resolve_state : impl::op_state {
      std::vector<tcp::endpoint> results;
    };
    tcp::resolver resolver{m.ioc};
    auto st = std::make_shared<resolve_state>();
    resolver.async_resolve(host, std::to_string(port),
                           [st](beast::error_code e, const tcp::resolver::results_type& r) {
                             st->done = true;
                             st->ec = e;
                             for (auto& entry : r) st->results.push_back(entry.endpoint());
                           });
    if (!m.run_until([&] { return st->done; }, deadline)) {
      resolver.cancel();
      error = "resolve " + host + ": timed out after " + ms;
      return false;
    }
    if (st->ec) {
      error = "resolve " + host + ": " + st->ec.message();
      return false;
    }
    endpoints = std::move(st->results);
  }

  auto& sock = beast::get_lowest_layer(*m.ws);
  auto st = std::make_shared<impl::op_state>();
  sock.async_connect(endpoints, [st](beast::error_code e, const tcp::endpoint&) {
    st->done = true;
    st->ec = e;
  });
  if (!m.run_until([&] { return st->done; }, deadline)) {
    m.abort_socket();
    m.run_until([&] { return st->done; }, steady::now() + blocking_close_timeout);
    error = "connect " + peer + ": timed out after " + ms;
    return false;
  }
  if (st->ec) {
    error = "connect " + peer + ": " + st->ec.message();
    return false;
  }
  beast::error_code ignored;
  sock.socket().set_option(tcp::no_delay(true), ignored);
  configure(*m.ws);

  websocket::response_type res;
  st = std::make_shared<impl::op_state>();
  m.ws->async_handshake(res, peer, target, [st](beast::error_code e) {
    st->done = true;
    st->ec = e;
  });
  if (!m.run_until([&] { return st->done; }, deadline)) {
    m.abort_socket();  // `res` is referenced by the handshake: wait for it to finish
    m.run_until([&] { return st->done; }, steady::now() + blocking_close_timeout);
    error = "handshake with " + peer + ": timed out after " + ms;
    return false;
  }
  if (st->ec) {
    m.abort_socket();
    error = handshake_error(st->ec, res);
    return false;
  }
  m.open = true;
  m.start_read();
  return true;
}

bool ws_blocking_client::send_text(const std::string& text, std::string& error) {
  return impl_->write(text, false, error);
}

bool ws_blocking_client::send_binary(const std::string& data, std::string& error) {
  return impl_->write(data, true, error);
}

std::optional<std::string> ws_blocking_client::read(std::chrono::milliseconds timeout) {
  auto& m = *impl_;
  auto pop = [&]() -> std::optional<std::string> {
    if (m.inbox.empty()) return std::nullopt;
    auto s = std::move(m.inbox.front());
    m.inbox.pop_front();
    return s;
  };
  if (!m.inbox.empty() || !m.open) return pop();
  m.run_until([&] { return !m.inbox.empty() || m.closed; }, steady::now() + timeout);
  return pop();
}

bool ws_blocking_client::closed() const { return impl_->closed; }

int ws_blocking_client::close_code() const { return impl_->code; }

std::string ws_blocking_client::close_reason() const { return impl_->reason; }

void ws_blocking_client::close() {
  auto& m = *impl_;
  if (!m.ws) return;
  if (m.open) {
    auto st = std::make_shared<impl::op_state>();
    m.ws->async_close(websocket::close_code::normal, [st](beast::error_code e) {
      st->done = true;
      st->ec = e;
    });
    // Done when our close is sent and the pending read has seen the server's answer.
    bool ok =
        m.run_until([&] { return st->done && !m.reading; }, steady::now() + blocking_close_timeout);
    if (!ok) m.mark_closed(static_cast<int>(websocket::close_code::abnormal), "close timed out");
    m.mark_closed(static_cast<int>(websocket::close_code::normal), "");
  }
  m.abort_socket();
  // Let aborted handlers run now, while everything they touch is alive.
  m.run_until([&] { return !m.reading; }, steady::now() + blocking_close_timeout);
  m.open = false;
}

}  // namespace pulse::net
