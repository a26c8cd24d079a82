#pragma once
// Node-wide counters for /metrics. Lock-free atomics, written from any thread
// (I/O threads, sessions, shards), read when /metrics is rendered.
// Lifecycle: one per node, owned by the bridge, outlives every actor and socket.

#include <array>
#include <atomic>
#include <cstdint>
#include <string>

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

// Error codes counted by /metrics, in wire::error_code order.
inline constexpr std::size_t error_code_count =
  static_cast<std::size_t>(wire::error_code::storage_unavailable) + 1;

struct node_metrics {
  std::atomic<std::int64_t> connections{0};          // open WebSocket sessions
  std::atomic<std::uint64_t> connections_total{0};   // accepted WebSocket sessions
  std::atomic<std::uint64_t> connections_refused{0}; // over net.max-connections
  std::atomic<std::uint64_t> connections_shed{0};    // closed 1013: a shard over max-pending
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
  histogram<8> flush_readings{{1, 10, 100, 1000, 5000, 10000, 50000, 100000}};
  histogram<9> flush_seconds{{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5}};

  // Prometheus text exposition of everything above.
  std::string render() const;
};

}  // namespace pulse
