#pragma once
// Node-wide counters for /metrics. Lock-free atomics, written from any thread
// (I/O threads, sessions, shards), read when /metrics is rendered.
// Lifecycle: one per node, owned by the bridge, outlives every actor and socket.

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "wire/codec.hpp"

namespace pulse {

// A fixed-bucket histogram (Prometheus `le` buckets).
template <std::size_t N>
struct histogram {
  std::array<double, N> bounds;
  std::array<std::atomic<std::uint64_t>, N + 1> counts{};
  std::atomic<std::uint64_t> count{0};
  std::atomic<double> sum{0};

  explicit histogram(std::array<double, N> b) : bounds(b) {}
  void observe(double v) {
    std::size_t i = 0;
    while (i < N && v > bounds[i]) ++i;
    counts[i].fetch_add(1, std::memory_order_relaxed);
    count.fetch_add(1, std::memory_order_relaxed);
    double cur = sum.load(std::memory_order_relaxed);
    while (!sum.compare_exchange_weak(cur, cur + v, std::memory_order_relaxed)) {
    }
  }
  void render(std::string& out, const char* name, const char* help) const;
};

// HTTP routes timed by pulse_http_request_duration_seconds{route=...}.
enum class http_route : std::uint8_t {
  healthz, readyz, metrics, dashboard, devices, device, readings, device_aggregate,
  fleet_aggregate, post_readings, admin, other
};
inline constexpr std::size_t http_route_count = static_cast<std::size_t>(http_route::other) + 1;
const char* to_string(http_route r);
// The route of a request path (the method matters only for POST /api/v1/readings).
http_route route_of(std::string_view path, bool post);

// One histogram per label value (same buckets), e.g. per HTTP route.
template <std::size_t N, std::size_t L>
struct labelled_histogram {
  std::array<double, N> bounds;
  std::array<std::array<std::atomic<std::uint64_t>, N + 1>, L> counts{};
  std::array<std::atomic<std::uint64_t>, L> count{};
  std::array<std::atomic<double>, L> sum{};

  explicit labelled_histogram(std::array<double, N> b) : bounds(b) {}
  void observe(std::size_t label, double v) {
    std::size_t i = 0;
    while (i < N && v > bounds[i]) ++i;
    counts[label][i].fetch_add(1, std::memory_order_relaxed);
    count[label].fetch_add(1, std::memory_order_relaxed);
    double cur = sum[label].load(std::memory_order_relaxed);
    while (!sum[label].compare_exchange_weak(cur, cur + v, std::memory_order_relaxed)) {
    }
  }
};

// Rate limit for log lines about what peers do wrong (auth failures, refused
// readings, sheds): a misbehaving fleet must not flood the log. At most one
// line per period; admit() returns 0 for a line to skip, else 1 + the lines
// skipped since the last one (to say so in it). Lock-free, any thread.
class log_limiter {
 public:
  explicit log_limiter(std::chrono::milliseconds period) : period_ns_(period.count() * 1000000) {}
  std::uint64_t admit() {
    const std::int64_t now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                               std::chrono::steady_clock::now().time_since_epoch())
                               .count();
    std::int64_t next = next_ns_.load(std::memory_order_relaxed);
    if (now >= next && next_ns_.compare_exchange_strong(next, now + period_ns_))
      return skipped_.exchange(0, std::memory_order_relaxed) + 1;
    skipped_.fetch_add(1, std::memory_order_relaxed);
    return 0;
  }

 private:
  std::int64_t period_ns_;
  std::atomic<std::int64_t> next_ns_{0};
  std::atomic<std::uint64_t> skipped_{0};
};

// Error codes counted by /metrics, in wire::error_code order.
inline constexpr std::size_t error_code_count =
  static_cast<std::size_t>(wire::error_code::storage_unavailable) + 1;

struct node_metrics {
  std::atomic<std::int64_t> connections{0};          // open WebSocket sessions (pulse_connections_open)
  std::atomic<std::uint64_t> connections_total{0};   // accepted WebSocket sessions
  std::atomic<std::uint64_t> connections_refused{0}; // over net.max-connections
  std::atomic<std::uint64_t> connections_shed{0};    // closed 1013: a shard over max-pending
  // Cluster: forwarded writes the owner endpoint refused because the shard
  // they go to was over batch.max-pending (the sender sends them again).
  std::atomic<std::uint64_t> owner_refused{0};
  std::atomic<std::uint64_t> write_timeouts{0};      // peer took no data for net.write-timeout
  std::atomic<std::uint64_t> write_queue_full{0};    // closed 1013 past net.max-write-queue-bytes
  std::atomic<std::uint64_t> accept_failures{0};     // EMFILE and friends
  std::atomic<std::uint64_t> http_requests{0};
  std::atomic<std::uint64_t> frames_in{0};
  std::atomic<std::uint64_t> bytes_in{0};
  std::atomic<std::uint64_t> readings_in{0};         // valid readings handed to shards
  std::atomic<std::uint64_t> readings_stored{0};     // written by flushes
  std::atomic<std::uint64_t> acks_out{0};
  std::array<std::atomic<std::uint64_t>, error_code_count> errors{};  // by wire::error_code

  void count_error(wire::error_code code) {
    errors[static_cast<std::size_t>(code)].fetch_add(1, std::memory_order_relaxed);
  }
  std::atomic<std::uint64_t> flushes{0};
  std::atomic<std::uint64_t> flush_failures{0};
  std::atomic<std::uint64_t> checkpoints{0};  // heads written out as chunks and rollups
  std::atomic<std::uint64_t> shard_restarts{0};
  // Each shard's device cache (storage/batcher.hpp), set after its checkpoints.
  struct device_cache {
    std::atomic<std::uint64_t> devices{0};
    std::atomic<std::uint64_t> bytes{0};
  };
  std::array<device_cache, 256> device_caches{};  // storage.shards <= 256
  std::atomic<std::uint64_t> device_evictions{0};
  histogram<8> flush_readings{{1, 10, 100, 1000, 5000, 10000, 50000, 100000}};
  histogram<9> flush_seconds{{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5}};
  // A frame's readings taken by the ingest path -> their ack queued for the
  // socket (observed once per frame and shard, when the window drops it).
  histogram<12> ack_seconds{
    {0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10}};
  // HTTP request read -> response written, by route.
  labelled_histogram<10, http_route_count> http_seconds{
    {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5, 2.5, 10}};

  // One line per second at most for each kind of peer misbehaviour.
  log_limiter auth_log{std::chrono::seconds(1)};     // unauthorized (WebSocket and HTTP)
  log_limiter refused_log{std::chrono::seconds(1)};  // readings refused as invalid
  log_limiter shed_log{std::chrono::seconds(1)};     // connections shed (overloaded)

  // Prometheus text exposition of everything above, plus process_* (CPU,
  // memory, open fds, start time from /proc) and pulse_build_info.
  std::string render() const;
};

}  // namespace pulse
