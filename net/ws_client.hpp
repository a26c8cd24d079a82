#pragma once
// WebSocket clients: ws_client (asynchronous, for the simulator) and
// ws_blocking_client (for tests and small tools). Beast stays in
// net/ws_client.cpp so that the many files including this header compile
// quickly and never see Beast.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace boost::asio {
class io_context;
}

namespace pulse::net {

// Asynchronous WebSocket client sending and receiving text frames.
//
// Lifecycle: create() → connect() once → on_open → send()... → close() or a
// failure → on_close, exactly once, as the last callback. To reconnect,
// create a new client. Pending operations hold a shared_ptr to the client, so
// it lives until on_close has run even if the caller drops its handle;
// dropping the handle does not close the connection, close() does. If the
// io_context is stopped or destroyed first, pending handlers are discarded and
// on_close may never run.
//
// Concurrency: the connection runs on its own strand of the io_context, and
// all callbacks run on that strand (so never two at once for one client, but
// different clients' callbacks run in parallel on different io threads).
// Callbacks must not block and must not throw. send(), close() and queued()
// may be called from any thread, including from inside the callbacks.
//
// Limits: one write in flight; frames sent before on_open are queued and go
// out after the handshake. More than max_queued_bytes (64 MiB) waiting fails
// the connection ("send queue full"). Frames sent after close() or a failure
// are dropped. Incoming messages up to 64 MiB; TCP_NODELAY on; no
// permessage-deflate; keep-alive pings when the server is silent for 30 s.
class ws_client : public std::enable_shared_from_this<ws_client> {
 public:
  struct handlers {
    std::function<void()> on_open;
    // The view is valid only during the call.
    std::function<void(std::string_view text)> on_message;
    // Called once, on any failure or close: connect refused, reset, the
    // server's close (reason "closed by server: 1008 unauthorized"), or our
    // own close() ("closed by client").
    std::function<void(const std::string& reason)> on_close;
  };

  static constexpr std::size_t max_queued_bytes = 64u << 20;
  static constexpr std::size_t max_message_bytes = 64u << 20;

  static std::shared_ptr<ws_client> create(boost::asio::io_context& ioc, handlers h);
  ~ws_client();
  ws_client(const ws_client&) = delete;
  ws_client& operator=(const ws_client&) = delete;

  // Resolves, connects (10 s timeout) and performs the handshake (10 s).
  // `source`, when not empty, is the local address to connect from (e.g.
  // 127.0.0.2): each source address has its own ephemeral ports, and Linux
  // gives connect() only about half of ip_local_port_range (~14,000 here)
  // towards one server address and port.
  void connect(const std::string& host, std::uint16_t port, const std::string& target = "/ws",
               const std::string& source = "");
  // Queues one text frame. Thread-safe; one write in flight at a time.
  void send(std::string text);
  // Writes what is already queued, then sends a normal close (1000). Thread-safe.
  void close();
  // Frames waiting to be written, including the one in flight. Thread-safe, approximate.
  std::size_t queued() const;

 private:
  struct impl;
  ws_client(boost::asio::io_context& ioc, handlers h);
  std::unique_ptr<impl> impl_;
};

// Blocking WebSocket client: owns a private io_context that runs only inside
// its calls, and every call has a timeout, so a test can never hang on it.
//
// Lifecycle: connect() → send_text()/read()... → close() (the destructor
// closes too, waiting at most one second). Concurrency: not thread-safe; use
// from one thread at a time. A read that times out stays pending inside, so
// no frame is lost and the next read() picks it up. Messages up to 64 MiB.
class ws_blocking_client {
 public:
  ws_blocking_client();
  ~ws_blocking_client();
  ws_blocking_client(const ws_blocking_client&) = delete;
  ws_blocking_client& operator=(const ws_blocking_client&) = delete;

  // `timeout` covers resolve, TCP connect and the WebSocket handshake.
  bool connect(const std::string& host, std::uint16_t port, std::string& error,
               const std::string& target = "/ws",
               std::chrono::milliseconds timeout = std::chrono::seconds(5));
  // Each send waits at most 5 s for the write; a write that times out closes the connection.
  bool send_text(const std::string& text, std::string& error);
  bool send_binary(const std::string& data,
                   std::string& error);  // for tests of binary-frame rejection
  // Next frame (text, or binary as bytes), nullopt on timeout or close (then
  // closed() is true and close_code()/close_reason() tell why). A zero
  // timeout returns what has already arrived without waiting.
  std::optional<std::string> read(std::chrono::milliseconds timeout);
  bool closed() const;
  // The code of the server's close frame, 1006 if the connection ended
  // without one, 0 while open.
  int close_code() const;
  std::string close_reason() const;
  // Normal close (1000), waiting at most one second for the server's answer.
  void close();

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace pulse::net
