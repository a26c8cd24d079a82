// pulse-node: one server node. Reads its configuration, opens storage, spawns
// the actors, listens, and on SIGINT/SIGTERM shuts down in order: stop
// accepting, flush every shard (acking what was written), close sessions with
// 1001, exit 0.

#include <csignal>
#include <cstdio>
#include <iostream>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <caf/actor_system.hpp>
#include <spdlog/spdlog.h>

#include "actors/bridge.hpp"
#include "net/server.hpp"
#include "node/config.hpp"
#include "node/logging.hpp"

int main(int argc, char** argv) {
  pulse::node_config cfg;
  std::string problem;
  switch (cfg.parse_command_line(argc, argv, problem)) {
    case pulse::node_config::outcome::printed:
      return 0;
    case pulse::node_config::outcome::fail:
      std::cerr << "pulse-node: " << problem << "\n";
      return 2;
    case pulse::node_config::outcome::run:
      break;
  }
  if (problem = cfg.validate(); !problem.empty()) {
    std::cerr << "pulse-node: " << problem << "\n";
    return 2;
  }
  cfg.finish();
  if (problem = cfg.load_tokens(); !problem.empty()) {
    std::cerr << "pulse-node: " << problem << "\n";
    return 2;
  }
  pulse::setup_logging(cfg.log_level, cfg.log_format);

  caf::actor_system sys{cfg};
  std::string error;
  auto node = pulse::bridge::start(sys, cfg.settings, error);
  if (!node) {
    // The store cannot be opened or its head log replayed: damaged or
    // unreadable data wants an operator (the message names the file and how
    // to repair), like a bad configuration.
    spdlog::critical("{}", error);
    return 2;
  }
  pulse::net::server server{*node, cfg.net};
  if (!server.start(error)) {
    spdlog::critical("{}", error);
    node->shutdown(std::chrono::seconds(10));
    return 1;
  }
  node->listening(cfg.net.address, server.port());
  spdlog::info("storage at {} (sync={}), {} shards, {} io threads, batch {} readings / {} ms",
               cfg.settings.storage_path, cfg.settings.storage_sync, cfg.settings.shards,
               cfg.net.io_threads, cfg.settings.batch_max_readings,
               cfg.settings.batch_max_delay.count());
  if (auto& tokens = cfg.settings.tokens)
    spdlog::info("auth is on: {} device and {} reader tokens from {}",
                 tokens->count(pulse::auth::role::device), tokens->count(pulse::auth::role::reader),
                 cfg.auth_tokens_file);
  else
    spdlog::info("auth is off (no auth.tokens-file): listening on loopback only");
  // The start-up line scripts and tests wait for, on stdout.
  std::printf("pulse-node %s listening on %s:%u\n", cfg.settings.node_name.c_str(),
              cfg.net.address.c_str(), static_cast<unsigned>(server.port()));
  std::fflush(stdout);

  boost::asio::io_context signals_ctx;
  boost::asio::signal_set signals{signals_ctx, SIGINT, SIGTERM};
  signals.async_wait([](const boost::system::error_code&, int sig) {
    spdlog::info("signal {}: shutting down", sig);
  });
  signals_ctx.run();

  server.stop_accepting();
  node->shutdown(std::chrono::seconds(20));
  server.close_sessions();
  server.stop();
  spdlog::info("stopped");
  return 0;
}
