#pragma once
// The one boundary between net/ (Beast) and the actors (CAF). Neither side's
// headers leak through it: net/ sees sinks, handles and callbacks, never CAF.
//
// Lifecycle: the node's main creates one bridge after the actor system, before
// the listener, and destroys it after the listener has stopped.
// Concurrency: every method may be called from any thread (I/O threads call
// it); calls never block on an actor.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "actors/auth.hpp"
#include "actors/metrics.hpp"

namespace caf {
class actor_system;
}

namespace pulse {

// Implemented by the WebSocket session in net/: how a session talks back to
// its socket. Thread-safe; every call runs on the connection's strand, at
// once when made there (the ingest path), else posted there.
class session_sink {
 public:
  virtual ~session_sink() = default;
  // Queues one text frame.
  virtual void send_text(std::string text) = 0;
  // Queues several text frames at once (one post for all of them).
  virtual void send_texts(std::vector<std::string> texts) = 0;
  // false: stop reading the socket (back-pressure); true: resume.
  virtual void set_reading(bool on) = 0;
  // Runs `fn` on the connection's strand (the ingest path lives there).
  virtual void post(std::function<void()> fn) = 0;
  // Sends a close frame with `code` and closes the connection.
  virtual void close(std::uint16_t code, std::string reason) = 0;
};

struct http_reply {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // extra ones (Allow, X-Next-Cursor)
};

// An HTTP request as the actors see it.
struct http_request {
  std::string method;  // HEAD arrives as GET
  std::string target;  // raw path and query string
  std::string body;    // already decompressed (Content-Encoding: gzip is undone by net/)
  std::string accept;  // the Accept header (text/csv selects CSV answers)
  // debug.fault-injection only: a GET waits this long before it runs
  // (X-Pulse-Debug-Delay: <ms>), so that tests can make a query slow.
  std::chrono::milliseconds debug_delay{0};
};
// Seconds a client is told to wait (Retry-After) with a 503.
inline constexpr int retry_after_seconds = 5;
using http_callback = std::function<void(http_reply)>;

// The [cluster] section (docs/cluster.md).
struct cluster_settings {
  std::uint16_t port = 0;          // cluster.port; 0 = no cluster
  std::string address;             // where the cluster actor is published; "" = net.address
  std::vector<std::string> seeds;  // host:port of members to join
  std::chrono::milliseconds heartbeat_interval{250};
  std::chrono::milliseconds heartbeat_timeout{2000};
  std::chrono::milliseconds reconnect_max{5000};  // reconnect backoff cap
  // cluster.replicas: the members each reading is written on before its ack
  // (as many as are live, when fewer are).
  std::size_t replicas = 1;
  bool enabled() const { return port != 0; }
};

// Splits "host:port" (a [v6] host loses its brackets); false if it is not one.
bool parse_endpoint(const std::string& text, std::string& host, std::uint16_t& port);

// Settings the actors need (filled from the node's configuration).
struct node_settings {
  std::string node_name = "node-a";
  std::string storage_path = "var/pulse";
  bool storage_sync = false;
  // Writes are refused (storage_unavailable) while the storage file system
  // has less free space than this; 0 = only when RocksDB reports it full.
  std::size_t storage_min_free_bytes = std::size_t{64} << 20;
  std::string storage_wal_recovery = "point-in-time";  // or "absolute-consistency"
  // RocksDB's block cache, and the budget of the device states the shards
  // keep in memory (split evenly between them; storage/batcher.hpp).
  std::size_t storage_cache_bytes = std::size_t{128} << 20;
  std::size_t storage_device_cache_bytes = std::size_t{512} << 20;
  std::size_t shards = 2;
  // The head (storage/batcher.hpp): readings a shard keeps in memory and in
  // its log before a checkpoint writes their chunks and rollups; and the
  // longest a reading stays there.
  std::size_t storage_head_max_readings = 250000;
  std::chrono::milliseconds storage_head_max_age{2000};
  std::size_t batch_max_readings = 10000;
  std::chrono::milliseconds batch_max_delay{5};
  // Under load the flush delay grows up to this (see shard.cpp, "coalescing").
  std::chrono::milliseconds batch_coalesce_delay{50};
  std::size_t batch_max_pending = 200000;
  std::size_t session_max_unacked = 10000;
  std::size_t supervisor_max_restarts = 5;
  std::chrono::milliseconds supervisor_window{60000};
  // Longest a GET or a POST may take: a GET still running then is answered
  // 503 (its worker stops at the next check), so one slow query holds nobody else.
  std::chrono::milliseconds query_timeout{10000};
  // storage.retention / storage.rollup-retention in ms; 0 = keep everything
  // (rollups: as long as readings). A background actor drops expired buckets.
  std::int64_t retention_ms = 0;
  std::int64_t rollup_retention_ms = 0;
  // debug.fault-injection: POST /admin/shards/{n}/crash, /admin/storage/fault,
  // and POST /admin/clock?offset=, which moves the node's notion of now
  bool fault_injection = false;
  // auth.tokens-file, loaded; null = auth off (the node then keeps to loopback).
  std::shared_ptr<const auth::token_store> tokens;
  cluster_settings cluster;
};

class bridge {
 public:
  // Opaque handle of one connection's session (its ingest path and its
  // actor), owned by the WebSocket session.
  class session {
   public:
    virtual ~session() = default;
    // One text frame received (already within net.max-frame-bytes), called
    // on the connection's strand; `text` is only valid during the call.
    virtual void frame(std::string_view text) = 0;
    // The socket is gone: the session actor stops; acks still on their way are dropped.
    virtual void closed() = 0;
  };

  // Spawns the node's actors (supervisor with its shards, router, query, hub)
  // on `sys`. Fails (returns nullptr, `error` set) if storage cannot be opened.
  static std::unique_ptr<bridge> start(caf::actor_system& sys, const node_settings& settings,
                                       std::string& error);
  virtual ~bridge() = default;

  // Opens the session (ingest path + actor) of a new WebSocket connection.
  virtual std::unique_ptr<session> open_session(std::shared_ptr<session_sink> sink,
                                                std::string peer) = 0;

  // HTTP requests that need the actors: GET /api/..., POST /api/v1/readings,
  // POST /write and /api/v2/write (line protocol), POST /admin/backup,
  // POST /admin/clock (debug.fault-injection).
  // `done` is called exactly once, from an actor thread. `writer`: with auth
  // on, the rights of the POST's bearer token (every device in the body must
  // be covered, else 401); nullopt with auth off.
  virtual void http(http_request req, std::optional<auth::grant> writer, http_callback done) = 0;

  // /readyz: "" when ready (shards up, storage taking writes, cluster
  // joined), else why not.
  virtual std::string not_ready() const = 0;

  // The HTTP/WebSocket listener is up at address:port (cluster members
  // learn where to send clients and queries).
  virtual void listening(const std::string& address, std::uint16_t port) = 0;

  // Fault injection (debug.fault-injection): makes shard n throw. `done`
  // gets 202 when the crash was sent, 404 when fault injection is off or
  // there is no shard n.
  virtual void crash_shard(std::uint64_t n, http_callback done) = 0;

  // Fault injection (debug.fault-injection): from now on RocksDB's file
  // writes fail as `mode` says: "eio-write", "eio-sync", "no-space", or "off".
  // false when fault injection is off or the mode is unknown.
  virtual bool inject_storage_fault(std::string_view mode) = 0;

  // Flushes every shard, lets the sessions pass on the resulting acks, and
  // stops the actors; blocks until done or `timeout`.
  virtual void shutdown(std::chrono::milliseconds timeout) = 0;

  virtual node_metrics& metrics() = 0;
  // /metrics: the node's counters plus RocksDB's, Prometheus text format.
  virtual std::string metrics_text() const = 0;
  virtual const node_settings& settings() const = 0;
};

}  // namespace pulse
