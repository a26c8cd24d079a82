#include "actors/metrics.hpp"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <vector>

#include "pulse_version.hpp"

namespace pulse {

const char* to_string(http_route r) {
  static const char* names[] = {"healthz",         "readyz",       "metrics",   "dashboard",
                                "devices",         "device",       "readings",  "device_aggregate",
                                "fleet_aggregate", "post_readings", "admin",    "other"};
  return names[static_cast<std::size_t>(r)];
}

http_route route_of(std::string_view path, bool post) {
  if (path == "/healthz") return http_route::healthz;
  if (path == "/readyz") return http_route::readyz;
  if (path == "/metrics") return http_route::metrics;
  if (path == "/") return http_route::dashboard;
  if (path.rfind("/admin/", 0) == 0) return http_route::admin;
  if (path == "/api/v1/readings") return post ? http_route::post_readings : http_route::other;
  if (path == "/api/v1/devices") return http_route::devices;
  if (path == "/api/v1/aggregate") return http_route::fleet_aggregate;
  constexpr std::string_view device = "/api/v1/devices/";
  if (path.rfind(device, 0) == 0 && path.size() > device.size()) {
    auto rest = path.substr(device.size());
    auto slash = rest.find('/');
    if (slash == std::string_view::npos) return http_route::device;
    auto tail = rest.substr(slash);
    if (tail == "/readings") return http_route::readings;
    if (tail == "/aggregate") return http_route::device_aggregate;
  }
  return http_route::other;
}

namespace {

void line(std::string& out, const char* name, const char* type, const char* help, double v) {
  char buf[512];
  std::snprintf(buf, sizeof(buf), "# HELP %s %s\n# TYPE %s %s\n%s %.17g\n", name, help, name, type,
                name, v);
  out += buf;
}

// process_* as Prometheus' client libraries define them, from /proc.
void process_metrics(std::string& out) {
  const double tick = static_cast<double>(sysconf(_SC_CLK_TCK));
  const double page = static_cast<double>(sysconf(_SC_PAGESIZE));
  std::ifstream stat_file{"/proc/self/stat"};
  std::string stat((std::istreambuf_iterator<char>(stat_file)), std::istreambuf_iterator<char>());
  auto paren = stat.rfind(')');  // the command name may hold spaces and parentheses
  if (paren != std::string::npos) {
    std::istringstream fields{stat.substr(paren + 2)};
    std::vector<std::string> f;  // f[0] is field 3 (state) of proc(5)
    for (std::string w; fields >> w;) f.push_back(w);
    if (f.size() > 21) {
      double utime = std::strtod(f[11].c_str(), nullptr), stime = std::strtod(f[12].c_str(), nullptr);
      double start_ticks = std::strtod(f[19].c_str(), nullptr);
      double rss_pages = std::strtod(f[21].c_str(), nullptr);
      line(out, "process_cpu_seconds_total", "counter", "User and system CPU time spent in seconds.",
           (utime + stime) / tick);
      line(out, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.",
           rss_pages * page);
      std::ifstream proc_stat{"/proc/stat"};
      for (std::string text; std::getline(proc_stat, text);) {
        if (text.rfind("btime ", 0) != 0) continue;
        line(out, "process_start_time_seconds", "gauge",
             "Start time of the process since unix epoch in seconds.",
             std::strtod(text.c_str() + 6, nullptr) + start_ticks / tick);
        break;
      }
    }
  }
  if (DIR* d = opendir("/proc/self/fd")) {
    std::size_t n = 0;
    while (auto* e = readdir(d))
      if (e->d_name[0] != '.' && std::atoi(e->d_name) != dirfd(d)) ++n;
    closedir(d);
    line(out, "process_open_fds", "gauge", "Number of open file descriptors.", static_cast<double>(n));
  }
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) == 0)
    line(out, "process_max_fds", "gauge", "Maximum number of open file descriptors.",
         static_cast<double>(lim.rlim_cur));
}

// One histogram's series: `labels` is "" or `key="value",` (a trailing comma).
void render_series(std::string& out, const char* name, const std::string& labels,
                   const double* bounds, std::size_t n, const std::atomic<std::uint64_t>* counts,
                   double sum, std::uint64_t count) {
  char buf[256];
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i <= n; ++i) {
    cumulative += counts[i].load(std::memory_order_relaxed);
    char le[32];
    if (i < n)
      std::snprintf(le, sizeof(le), "%g", bounds[i]);
    else
      std::snprintf(le, sizeof(le), "+Inf");
    std::snprintf(buf, sizeof(buf), "%s_bucket{%sle=\"%s\"} %llu\n", name, labels.c_str(), le,
                  static_cast<unsigned long long>(cumulative));
    out += buf;
  }
  std::string plain = labels.empty() ? "" : "{" + labels.substr(0, labels.size() - 1) + "}";
  std::snprintf(buf, sizeof(buf), "%s_sum%s %.17g\n%s_count%s %llu\n", name, plain.c_str(), sum,
                name, plain.c_str(), static_cast<unsigned long long>(count));
  out += buf;
}

void histogram_header(std::string& out, const char* name, const char* help) {
  out += "# HELP ";
  out += name;
  out += ' ';
  out += help;
  out += "\n# TYPE ";
  out += name;
  out += " histogram\n";
}

}  // namespace

template <std::size_t N>
void histogram<N>::render(std::string& out, const char* name, const char* help) const {
  histogram_header(out, name, help);
  render_series(out, name, "", bounds.data(), N, counts.data(), sum.load(std::memory_order_relaxed),
                count.load(std::memory_order_relaxed));
}

std::string node_metrics::render() const {
  std::string out;
  auto g = [](const auto& a) { return static_cast<double>(a.load(std::memory_order_relaxed)); };
  line(out, "pulse_connections_open", "gauge", "Open WebSocket sessions.", g(connections));
  line(out, "pulse_connections_total", "counter", "WebSocket sessions accepted.",
       g(connections_total));
  line(out, "pulse_connections_refused_total", "counter",
       "Connections refused over net.max-connections.", g(connections_refused));
  line(out, "pulse_connections_shed_total", "counter",
       "Connections closed with 1013 because a shard was over batch.max-pending.",
       g(connections_shed));
  line(out, "pulse_cluster_writes_refused_total", "counter",
       "Cluster: forwarded writes refused because their shard here was over batch.max-pending "
       "(the sending member sends them again).",
       g(owner_refused));
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
  std::uint64_t cached = 0, cached_bytes = 0;
  for (const auto& c : device_caches) {
    cached += c.devices.load(std::memory_order_relaxed);
    cached_bytes += c.bytes.load(std::memory_order_relaxed);
  }
  line(out, "pulse_device_cache_devices", "gauge",
       "Device states the shards keep in memory (storage.device-cache-bytes).", cached);
  line(out, "pulse_device_cache_bytes", "gauge", "Their estimated footprint.", cached_bytes);
  line(out, "pulse_device_cache_evictions_total", "counter",
       "Device states dropped past storage.device-cache-bytes (read back when they send again).",
       g(device_evictions));
  flush_readings.render(out, "pulse_flush_readings", "Readings per flush.");
  flush_seconds.render(out, "pulse_flush_seconds", "Time of one flush (WriteBatch write).");
  ack_seconds.render(out, "pulse_ack_latency_seconds",
                     "A frame's readings taken from the socket until their ack is queued for it.");
  const char* http_name = "pulse_http_request_duration_seconds";
  histogram_header(out, http_name, "HTTP request read until its response is written, by route.");
  for (std::size_t r = 0; r < http_route_count; ++r)
    render_series(out, http_name,
                  std::string("route=\"") + to_string(static_cast<http_route>(r)) + "\",",
                  http_seconds.bounds.data(), http_seconds.bounds.size(),
                  http_seconds.counts[r].data(), http_seconds.sum[r].load(std::memory_order_relaxed),
                  http_seconds.count[r].load(std::memory_order_relaxed));
  out += "# HELP pulse_build_info The version of this pulse-node (always 1).\n"
         "# TYPE pulse_build_info gauge\npulse_build_info{version=\"" PULSE_VERSION "\"} 1\n";
  process_metrics(out);
  return out;
}

template struct histogram<8>;
template struct histogram<9>;
template struct histogram<12>;

}  // namespace pulse
