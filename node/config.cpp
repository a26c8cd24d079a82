#include "node/config.hpp"

#include <algorithm>
#include <cstdio>
#include <string_view>
#include <vector>


#include <caf/config_option_set.hpp>
#include <caf/atom.hpp>
#include <caf/config_value.hpp>
#include <caf/settings.hpp>

#include <caf/io/middleman.hpp>

#include "actors/cluster.hpp"
#include "node/command_line.hpp"
#include "actors/query_api.hpp"
#include "node/config_file.hpp"

namespace pulse {

namespace {

template <class Rep, class Period>
caf::timespan span(std::chrono::duration<Rep, Period> d) {
  return std::chrono::duration_cast<caf::timespan>(d);
}

std::chrono::milliseconds ms(caf::timespan t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t);
}

// "" or "0": 0 (keep everything); else a duration of docs/api.md's syntax.
bool retention_ms(const std::string& text, std::int64_t& out) {
  out = 0;
  if (text.empty() || text == "0") return true;
  return api::parse_duration_ms(text, out);
}

}  // namespace

node_config::node_config() {
  // Measured here (bench/ingest.sh, 2 cores, simulator on the same machine):
  // CAF's work-stealing workers poll with short sleeps, which costs a syscall
  // per wake-up on this VM; the sharing policy sleeps on a condition variable.
  // With one cooperative thread (shards, query and I/O have threads of their
  // own) the node needs about half the CPU per reading of stealing x 4.
  set("scheduler.policy", caf::atom("sharing"));
  set("scheduler.max-threads", std::size_t{1});
  first_own_option_ = custom_options_.size();
  batch_max_delay = span(settings.batch_max_delay);
  head_max_age = span(settings.storage_head_max_age);
  coalesce_delay = span(settings.batch_coalesce_delay);
  supervisor_window = span(settings.supervisor_window);
  query_timeout = span(settings.query_timeout);
  ping_interval = span(net.ping_interval);
  idle_timeout = span(net.idle_timeout);
  write_timeout = span(net.write_timeout);
  http_timeout = span(net.http_timeout);
  heartbeat_interval = span(settings.cluster.heartbeat_interval);
  heartbeat_timeout = span(settings.cluster.heartbeat_timeout);
  reconnect_max = span(settings.cluster.reconnect_max);
  add_cluster_types(*this);
  opt_group{custom_options_, "node"}.add(settings.node_name, "name",
                                         "name of this node, in logs, welcome and cluster");
  opt_group{custom_options_, "net"}
    .add(net.address, "address", "IP address to listen on (HTTP and WebSocket)")
    .add(net.port, "port", "port to listen on; 0 picks a free port and logs it")
    .add(net.io_threads, "io-threads", "threads running network I/O")
    .add(net.max_frame_bytes, "max-frame-bytes",
         "largest WebSocket message accepted; bigger ones close the connection with 1009")
    .add(net.max_connections, "max-connections",
         "open WebSockets at most; further ones are closed with 1013")
    .add(net.max_body_bytes, "max-body-bytes", "largest HTTP request body (413 above)")
    .add(ping_interval, "ping-interval", "WebSocket ping period (0 = no pings)")
    .add(idle_timeout, "idle-timeout", "close a WebSocket that sent nothing for this long")
    .add(net.max_write_queue_bytes, "max-write-queue-bytes",
         "bytes queued for one WebSocket before it is closed with 1013 (a peer that does not read)")
    .add(write_timeout, "write-timeout",
         "close a connection whose peer has not taken a write for this long")
    .add(http_timeout, "http-timeout",
         "longest wait for an HTTP request's headers and body (slow clients are cut off)");
  opt_group{custom_options_, "http"}.add(
    net.cors_origins, "cors-origins",
    "origins whose browser pages may call the HTTP API (CORS), e.g. [\"https://grafana.example\"]; "
    "\"*\" = any; empty = none");
  opt_group{custom_options_, "session"}.add(
    settings.session_max_unacked, "max-unacked",
    "readings in flight per connection before the node stops reading its socket");
  opt_group{custom_options_, "batch"}
    .add(settings.batch_max_readings, "max-readings", "flush a shard at this many readings")
    .add(batch_max_delay, "max-delay", "flush a shard this long after its first buffered reading")
    .add(coalesce_delay, "coalesce-delay",
         "longest flush delay when many connections each have one reading per flush "
         "(coalesces their acks); at most max-delay turns this off")
    .add(settings.batch_max_pending, "max-pending",
         "readings buffered per shard before it answers overloaded");
  opt_group{custom_options_, "storage"}
    .add(settings.storage_path, "path", "RocksDB directory (created if missing)")
    .add(settings.storage_sync, "sync", "fsync every flush (survives power loss)")
    .add(settings.storage_min_free_bytes, "min-free-bytes",
         "refuse writes (storage_unavailable) while the file system has less free space; 0 = off")
    .add(settings.storage_cache_bytes, "cache-bytes",
         "RocksDB block cache in bytes (data blocks; index and filter blocks of rollups and readings)")
    .add(settings.storage_device_cache_bytes, "device-cache-bytes",
         "memory for device states (last_seq, dictionary, latest values), split between the shards; "
         "least recently used devices are dropped past it and read back when they send")
    .add(settings.storage_wal_recovery, "wal-recovery",
         "point-in-time (replay the WAL up to a damaged tail) or absolute-consistency (refuse to start)")
    .add(settings.shards, "shards", "shard (batcher) actors, each with its own thread")
    .add(settings.storage_head_max_readings, "head-max-readings",
         "readings a shard keeps in its head (log + memory) before writing chunks and rollups; 0 = no head")
    .add(head_max_age, "head-max-age",
         "longest a reading stays in the head before a checkpoint writes its chunk and rollups")
    .add(retention, "retention",
         "drop readings older than this, in whole hour buckets (e.g. \"30d\"; empty = keep everything)")
    .add(rollup_retention, "rollup-retention",
         "drop minute and hour rollups older than this (at least storage.retention; empty = as readings)");
  opt_group{custom_options_, "supervisor"}
    .add(settings.supervisor_max_restarts, "max-restarts",
         "shard restarts within supervisor.window before the node reports unhealthy")
    .add(supervisor_window, "window", "window for supervisor.max-restarts");
  opt_group{custom_options_, "query"}.add(query_timeout, "timeout",
                                          "longest wait for a query or a POST to finish");
  opt_group{custom_options_, "cluster"}
    .add(settings.cluster.port, "port",
         "port this node's cluster actor is published on (CAF's middleman); 0 = no cluster")
    .add(settings.cluster.address, "address",
         "address to publish on and that other members use to reach this node (empty = net.address)")
    .add(settings.cluster.seeds, "seeds", "host:port of cluster members to join, e.g. [\"10.0.0.1:7100\"]")
    .add(heartbeat_interval, "heartbeat-interval", "how often members exchange heartbeats")
    .add(heartbeat_timeout, "heartbeat-timeout",
         "a member silent this long is marked down (its connection dropping marks it down at once)")
    .add(reconnect_max, "reconnect-max",
         "longest wait between attempts to reach a member or seed that is down (backoff from 100ms)")
    .add(settings.cluster.replicas, "replicas",
         "members each reading is written on before it is acked (1-5; as many as are live when fewer)");
  opt_group{custom_options_, "auth"}.add(auth_tokens_file, "tokens-file",
                                         "device and reader tokens (empty = auth off)");
  opt_group{custom_options_, "debug"}.add(
    settings.fault_injection, "fault-injection",
    "allow POST /admin/shards/{n}/crash and /admin/storage/fault (tests and demos only)");
  opt_group{custom_options_, "log"}
    .add(log_level, "level", "trace, debug, info, warn, error, critical or off")
    .add(log_format, "format",
         "text (UTC time, level, message) or json (one object per line: ts, level, msg)");
}

node_config::outcome node_config::parse_command_line(int argc, char** argv,
                                                     std::string& problem) {
  auto cl = check_command_line(custom_options_, argc, argv);
  switch (cl.what) {
    case command_line::action::help:
      std::fputs(help().c_str(), stdout);
      return outcome::printed;
    case command_line::action::version:
      std::printf("pulse-node %s\n", version());
      return outcome::printed;
    case command_line::action::fail:
      problem = cl.message;
      return outcome::fail;
    case command_line::action::run:
      break;
  }
  if (auto err = parse(static_cast<int>(cl.args.size()), cl.args.data())) {
    problem = caf::actor_system_config::render(err);
    return outcome::fail;
  }
  if (cli_helptext_printed) return outcome::printed;  // --long-help, --dump-config
  cl.apply_flags();
  return outcome::run;
}

std::string node_config::help() const {
  return "usage: pulse-node [--config-file=FILE] [--section.key=value ...]\n"
         "Every key below can be set in the INI file (`[section]` then `key=value`) or on the\n"
         "command line; the command line wins. Defaults as shown; configs/pulse-node.ini\n"
         "and docs/configuration.md explain each one.\n"
         "  --config-file=FILE  read this INI file (default: caf-application.ini if present)\n"
         "  --help, --version   this text; the version\n"
         "  --long-help         also CAF's own options (scheduler, middleman, ...)\n"
         "keys:\n" +
         options_help(custom_options_, first_own_option_);
}

void node_config::finish() {
  settings.batch_max_delay = ms(batch_max_delay);
  settings.storage_head_max_age = ms(head_max_age);
  settings.batch_coalesce_delay = ms(coalesce_delay);
  settings.supervisor_window = ms(supervisor_window);
  settings.query_timeout = ms(query_timeout);
  retention_ms(retention, settings.retention_ms);  // checked by validate()
  retention_ms(rollup_retention, settings.rollup_retention_ms);
  net.ping_interval = ms(ping_interval);
  net.idle_timeout = ms(idle_timeout);
  net.write_timeout = ms(write_timeout);
  net.http_timeout = ms(http_timeout);
  auto& cs = settings.cluster;
  cs.heartbeat_interval = ms(heartbeat_interval);
  cs.heartbeat_timeout = ms(heartbeat_timeout);
  cs.reconnect_max = ms(reconnect_max);
  if (cs.address.empty()) cs.address = net.address;
  if (cs.enabled()) load<caf::io::middleman>();
}

std::string node_config::validate() const {
  if (auto problem = check_config_file(custom_options_, config_file_path); !problem.empty())
    return problem;
  auto positive = [](std::size_t v) { return v > 0; };
  if (settings.node_name.empty() || settings.node_name.size() > 64)
    return "node.name must be 1 to 64 characters";
  if (!positive(net.io_threads) || net.io_threads > 64) return "net.io-threads must be 1..64";
  if (net.max_frame_bytes < 1024) return "net.max-frame-bytes must be at least 1024";
  if (!positive(net.max_connections)) return "net.max-connections must be positive";
  if (net.max_body_bytes < 1024) return "net.max-body-bytes must be at least 1024";
  if (ping_interval.count() < 0) return "net.ping-interval must not be negative";
  if (idle_timeout.count() <= 0) return "net.idle-timeout must be positive";
  if (write_timeout.count() <= 0) return "net.write-timeout must be positive";
  if (net.max_write_queue_bytes < 4096) return "net.max-write-queue-bytes must be at least 4096";
  if (http_timeout.count() <= 0) return "net.http-timeout must be positive";
  if (!positive(settings.session_max_unacked)) return "session.max-unacked must be positive";
  if (!positive(settings.batch_max_readings)) return "batch.max-readings must be positive";
  if (batch_max_delay.count() <= 0) return "batch.max-delay must be positive";
  if (settings.batch_max_pending < settings.batch_max_readings)
    return "batch.max-pending must be at least batch.max-readings";
  if (settings.storage_path.empty()) return "storage.path must not be empty";
  if (settings.storage_wal_recovery != "point-in-time" &&
      settings.storage_wal_recovery != "absolute-consistency")
    return "storage.wal-recovery must be point-in-time or absolute-consistency";
  if (!positive(settings.shards) || settings.shards > 256) return "storage.shards must be 1..256";
  if (settings.storage_cache_bytes < (std::size_t{1} << 20))
    return "storage.cache-bytes must be at least 1048576 (1 MiB)";
  if (settings.storage_device_cache_bytes < 65536)
    return "storage.device-cache-bytes must be at least 65536";
  if (head_max_age.count() <= 0) return "storage.head-max-age must be positive";
  std::int64_t keep = 0, keep_rollups = 0;
  if (!retention_ms(retention, keep))
    return "storage.retention must be a duration such as 30d, 12h or 90m (empty: keep "
           "everything), got \"" + retention + "\"";
  if (!retention_ms(rollup_retention, keep_rollups))
    return "storage.rollup-retention must be a duration such as 365d (empty: as "
           "storage.retention), got \"" + rollup_retention + "\"";
  if (keep_rollups > 0 && (keep == 0 || keep_rollups < keep))
    return "storage.rollup-retention must be at least storage.retention (rollups outlive readings), "
           "and needs storage.retention set";
  if (keep > 0 && keep < 3'600'000) return "storage.retention must be at least 1h (buckets are hours)";
  if (supervisor_window.count() <= 0) return "supervisor.window must be positive";
  if (query_timeout.count() <= 0) return "query.timeout must be positive";
  static const char* levels[] = {"trace", "debug", "info", "warn", "error", "critical", "off"};
  if (std::find(std::begin(levels), std::end(levels), log_level) == std::end(levels))
    return "log.level must be one of trace, debug, info, warn, error, critical, off";
  if (log_format != "text" && log_format != "json") return "log.format must be text or json";
  auto& cs = settings.cluster;
  if (!cs.seeds.empty() && cs.port == 0)
    return "cluster.seeds needs cluster.port: a member must be reachable by the others";
  for (auto& seed : cs.seeds) {
    std::string host;
    std::uint16_t port = 0;
    if (!parse_endpoint(seed, host, port))
      return "cluster.seeds: \"" + seed + "\" is not host:port";
  }
  if (cs.replicas < 1 || cs.replicas > 5) return "cluster.replicas must be 1 to 5";
  if (cs.replicas > 1 && cs.port == 0)
    return "cluster.replicas needs cluster.port: replicas live on other members";
  if (cs.port != 0 && cs.port == net.port)
    return "cluster.port must differ from net.port";
  if (heartbeat_interval.count() <= 0) return "cluster.heartbeat-interval must be positive";
  if (heartbeat_timeout < 2 * heartbeat_interval)
    return "cluster.heartbeat-timeout must be at least twice cluster.heartbeat-interval";
  if (reconnect_max.count() < 100'000'000) return "cluster.reconnect-max must be at least 100ms";
  if (auth_tokens_file.empty()) {
    // Without tokens anybody who reaches the port may write and read.
    auto& a = net.address;
    bool loopback = a.rfind("127.", 0) == 0 || a == "::1";
    if (!loopback)
      return "net.address " + a +
             " is not loopback: with auth off (no auth.tokens-file) the node listens on "
             "127.0.0.1 only; set auth.tokens-file to serve other machines";
  }
  return {};
}

std::string node_config::load_tokens() {
  if (auth_tokens_file.empty()) return {};
  std::string error;
  auto store = auth::token_store::load(auth_tokens_file, error);
  if (!store) return "auth.tokens-file: " + error;
  settings.tokens = std::make_shared<const auth::token_store>(std::move(*store));
  return {};
}

}  // namespace pulse
