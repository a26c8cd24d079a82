#pragma once
// The command line of both binaries, checked before CAF sees it.
// CAF 0.17's actor_system_config::parse stops at the first argument that is
// not an option and keeps the rest as `remainder`, so a stray word made every
// option after it silently ineffective. Here every argument must be a declared
// option with a value of its type, and the messages are written for people.
// CAF's own options (scheduler, middleman, ...) stay accepted and are listed
// by --long-help; --help lists only the program's own keys.

#include <string>
#include <utility>
#include <vector>

#include <caf/config_option_set.hpp>

namespace pulse {

// The version both binaries report (--version, pulse_build_info).
const char* version();

struct command_line {
  enum class action { run, help, version, fail };
  action what = action::run;
  // fail: what is wrong, naming the argument or the file and line.
  std::string message;
  // run: the arguments for caf::actor_system_config::parse, without the
  // `--flag=true|false` ones (CAF 0.17 takes a bool only as a bare flag).
  std::vector<char*> args;
  // Those bool values; apply_flags() stores them after CAF's parse, so the
  // command line still wins over the file.
  std::vector<std::pair<const caf::config_option*, bool>> flags;
  void apply_flags() const;
};

// Checks argv[1..argc) against `options`: `--help`/`-h`, `--version`, or
// `--key[=value]` for a declared key with a value it can parse. Also reads the
// config file (`--config-file=`, else CAF's default if present) for syntax
// errors, so those name the file and line.
command_line check_command_line(const caf::config_option_set& options, int argc, char** argv);

// Every option from index `first_own` on (the program's own keys; CAF's come
// first), one line each: `--section.key=<default>  description`.
std::string options_help(const caf::config_option_set& options, std::size_t first_own);

}  // namespace pulse
