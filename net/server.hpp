#pragma once
// net::server — the node's Beast listener: HTTP and WebSocket (`/ws`) on one
// port, `net.io-threads` threads running one io_context.
//
// Lifecycle: start() binds and begins accepting; stop_accepting() closes the
// listener; close_sessions() sends 1001 to every WebSocket; join() waits for
// the I/O threads after stop(). Concurrency: each connection lives on its own
// strand; the server object's methods are called from the main thread only.

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace pulse {
class bridge;
}

namespace pulse::net {

struct server_options {
  std::string address = "127.0.0.1";
  std::uint16_t port = 8080;
  std::size_t io_threads = 1;
  std::size_t max_frame_bytes = 1 << 20;
  std::size_t max_connections = 10000;
  std::size_t max_body_bytes = 64 << 20;        // POST /api/v1/readings
  std::size_t max_write_queue_bytes = 16 << 20;  // per WebSocket, before it is shed
  std::chrono::milliseconds ping_interval{20000};
  std::chrono::milliseconds idle_timeout{60000};
  std::chrono::milliseconds write_timeout{10000};
  std::chrono::milliseconds http_timeout{10000};
  // http.cors-origins: origins whose browser pages may call the API
  // ("https://grafana.example:3000"; "*" = any). Empty: no CORS headers.
  std::vector<std::string> cors_origins;
};

class server {
 public:
  server(bridge& b, server_options opts);
  ~server();
  server(const server&) = delete;
  server& operator=(const server&) = delete;

  // Binds and starts accepting on the I/O threads. false + `error` on failure.
  bool start(std::string& error);
  // The bound port (the real one when net.port was 0).
  std::uint16_t port() const;
  void stop_accepting();
  // Closes every WebSocket with 1001 (going away).
  void close_sessions();
  // Stops the io_context and joins the I/O threads.
  void stop();

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace pulse::net
