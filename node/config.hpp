#pragma once
// pulse-node's options: declared once here with their names, descriptions and
// defaults (the defaults are node_settings' and server_options' initialisers);
// configs/pulse-node.ini mirrors them.

#include <string>

#include <caf/actor_system_config.hpp>

#include "actors/bridge.hpp"
#include "net/server.hpp"

namespace pulse {

class node_config : public caf::actor_system_config {
 public:
  node_config();

  // Checks every argument (node/command_line.hpp) before
  // caf::actor_system_config::parse reads the file and the command line.
  // `--key=true|false` is accepted for bool keys (CAF 0.17 takes only a bare
  // flag; DESIGN.md promises `--section.key=value` for every key).
  // run: go on; help/version: printed, exit 0; fail: `problem` says why.
  enum class outcome { run, printed, fail };
  outcome parse_command_line(int argc, char** argv, std::string& problem);

  // --help: usage and every pulse-node key with its default.
  std::string help() const;

  // CAF's INI reader skips unknown keys and drops bad values silently; this
  // reads the file again and names the first unknown key or bad value.
  // Then checks the ranges CAF cannot express. Empty string = fine.
  std::string validate() const;

  node_settings settings;
  net::server_options net;
  std::string log_level = "info";
  std::string log_format = "text";
  std::string auth_tokens_file;
  // storage.retention / storage.rollup-retention as written ("30d"; "" = keep
  // everything): CAF 0.17's timespans have no day unit, so they are strings,
  // parsed by retention_ms() (query_api's duration syntax: ms, s, m, h, d).
  std::string retention;
  std::string rollup_retention;
  caf::timespan batch_max_delay;
  caf::timespan head_max_age;
  caf::timespan coalesce_delay;
  caf::timespan supervisor_window;
  caf::timespan query_timeout;
  caf::timespan ping_interval;
  caf::timespan idle_timeout;
  caf::timespan write_timeout;
  caf::timespan http_timeout;
  caf::timespan heartbeat_interval;
  caf::timespan heartbeat_timeout;
  caf::timespan reconnect_max;

  // Copies the timespans into settings/net (CAF stores them as timespan);
  // with cluster.port set, loads CAF's middleman (before the actor system
  // is built from this config).
  void finish();

 private:
  std::size_t first_own_option_ = 0;  // CAF's options come before pulse-node's

 public:
  // Reads auth.tokens-file into settings.tokens (nothing when empty).
  // Empty string = fine, else the message for the user.
  std::string load_tokens();
};

}  // namespace pulse
