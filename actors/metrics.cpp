#include "actors/metrics.hpp"

#include <cstdio>

namespace pulse {

namespace {

void line(std::string& out, const char* name, const char* type, const char* help, double v) {
  char buf[512];
  std::snprintf(buf, sizeof(buf), "# HELP %s %s\n# TYPE %s %s\n%s %.17g\n", name, help, name, type,
                name, v);
  out += buf;
}

}  // namespace

template <std::size_t N>
void histogram<N>::render(std::string& out, const char* name, const char* help) const {
  char buf[256];
  std::snprintf(buf, sizeof(buf), "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
  out += buf;
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i <= N; ++i) {
    cumulative += counts[i].load(std::memory_order_relaxed);
    if (i < N)
      std::snprintf(buf, sizeof(buf), "%s_bucket{le=\"%g\"} %llu\n", name, bounds[i],
                    static_cast<unsigned long long>(cumulative));
    else
      std::snprintf(buf, sizeof(buf), "%s_bucket{le=\"+Inf\"} %llu\n", name,
                    static_cast<unsigned long long>(cumulative));
    out += buf;
  }
  std::snprintf(buf, sizeof(buf), "%s_sum %.17g\n%s_count %llu\n", name,
                sum.load(std::memory_order_relaxed), name,
                static_cast<unsigned long long>(count.load(std::memory_order_relaxed)));
  out += buf;
}

std::string node_metrics::render() const {
  std::string out;
  auto g = [](const auto& a) { return static_cast<double>(a.load(std::memory_order_relaxed)); };
  line(out, "pulse_connections", "gauge", "Open WebSocket sessions.", g(connections));
  line(out, "pulse_connections_total", "counter", "WebSocket sessions accepted.",
       g(connections_total));
  line(out, "pulse_connections_refused_total", "counter",
       "Connections refused over net.max-connections.", g(connections_refused));
  line(out, "pulse_connections_shed_total", "counter",
       "Connections closed with 1013 because a shard was over batch.max-pending.",
       g(connections_shed));
  line(out, "pulse_write_timeouts_total", "counter",
       "Connections cut off because the peer took no data for net.write-timeout.",
       g(write_timeouts));
  line(out, "pulse_write_queue_full_total", "counter",
       "Connections closed with 1013 past net.max-write-queue-bytes queued.", g(write_queue_full));
  line(out, "pulse_accept_failures_total", "counter",
       "Failed accepts (e.g. EMFILE: out of file descriptors).", g(accept_failures));
  line(out, "pulse_http_requests_total", "counter", "HTTP requests served.", g(http_requests));
  line(out, "pulse_frames_in_total", "counter", "WebSocket frames received.", g(frames_in));
  line(out, "pulse_bytes_in_total", "counter", "WebSocket payload bytes received.", g(bytes_in));
  line(out, "pulse_readings_in_total", "counter", "Valid readings handed to shards.",
       g(readings_in));
  line(out, "pulse_readings_stored_total", "counter", "Readings written to RocksDB.",
       g(readings_stored));
  line(out, "pulse_acks_total", "counter", "Acks sent to clients.", g(acks_out));
  out += "# HELP pulse_errors_total Error messages sent, by code.\n# TYPE pulse_errors_total counter\n";
  for (std::size_t i = 0; i < error_code_count; ++i) {
    char buf[128];
    std::snprintf(buf, sizeof(buf), "pulse_errors_total{code=\"%s\"} %llu\n", wire::to_string(static_cast<wire::error_code>(i)),
                  static_cast<unsigned long long>(errors[i].load(std::memory_order_relaxed)));
    out += buf;
  }
  line(out, "pulse_flushes_total", "counter", "Shard flushes (RocksDB WriteBatches).", g(flushes));
  line(out, "pulse_checkpoints_total", "counter",
       "Shard checkpoints (head written as chunks and rollups, log truncated).", g(checkpoints));
  line(out, "pulse_flush_failures_total", "counter", "Shard flushes that failed.",
       g(flush_failures));
  line(out, "pulse_shard_restarts_total", "counter", "Shards restarted by the supervisor.",
       g(shard_restarts));
  flush_readings.render(out, "pulse_flush_readings", "Readings per flush.");
  flush_seconds.render(out, "pulse_flush_seconds", "Time of one flush (WriteBatch write).");
  return out;
}

template struct histogram<8>;
template struct histogram<9>;

}  // namespace pulse
