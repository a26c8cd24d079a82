#include "node/command_line.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string_view>

#include <caf/actor_system_config.hpp>
#include <caf/config_option.hpp>
#include <caf/config_value.hpp>
#include <caf/settings.hpp>

#include "pulse_version.hpp"

namespace pulse {

const char* version() { return PULSE_VERSION; }

void command_line::apply_flags() const {
  for (auto& [opt, value] : flags) opt->store(caf::config_value{value});
}

namespace {

std::string str(caf::string_view v) { return std::string(v.data(), v.size()); }

bool all_digits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  return true;
}

// A duration in the largest unit that shows it exactly, as the INI files write
// them (CAF prints a zero duration as "0d").
std::string duration_text(caf::timespan t) {
  auto ns = t.count();
  if (ns == 0) return "0s";
  static const std::pair<std::int64_t, const char*> units[] = {
    {3600'000'000'000, "h"}, {60'000'000'000, "min"}, {1'000'000'000, "s"},
    {1'000'000, "ms"},       {1'000, "us"},           {1, "ns"}};
  for (auto& [size, name] : units)
    if (ns % size == 0) return std::to_string(ns / size) + name;
  return std::to_string(ns) + "ns";
}

// What a value of CAF's type `type` looks like, for messages.
std::string expected_form(std::string_view type) {
  if (type == "timespan") return "a duration with a unit: ns, us, ms, s, min or h, e.g. 250ms";
  if (type == "boolean") return "true or false";
  if (type == "real64" || type == "real32") return "a number";
  if (type == "uint16") return "a whole number 0..65535";
  if (type.rfind("uint", 0) == 0) return "a whole number >= 0";
  if (type.rfind("int", 0) == 0) return "a whole number";
  if (type == "atom") return "a word in single quotes";
  if (type.rfind("list of", 0) == 0) return std::string{type} + ", e.g. [\"a\", \"b\"]";
  return std::string{type};
}

// "line 4, column 2" from a CAF parser error's context, "" if it has none.
std::string position(const caf::error& err) {
  auto& ctx = err.context();
  if (ctx.size() != 1 || !ctx.match_element<caf::settings>(0)) return {};
  auto& s = ctx.get_as<caf::settings>(0);
  auto line = caf::get_if<int64_t>(&s, "line");
  if (!line) return {};
  return ":" + std::to_string(*line);
}

// A syntax error in the INI file, "" when fine, absent or unreadable (CAF
// reports those itself).
std::string check_ini_syntax(const std::string& path) {
  if (!std::ifstream{path}) return {};
  auto parsed = caf::actor_system_config::parse_config_file(path.c_str());
  if (parsed) return {};
  auto& err = parsed.error();
  std::string what = caf::actor_system_config::render(err);
  auto paren = what.find('(');
  if (what.rfind("parser_error(", 0) == 0) {
    auto comma = what.find_first_of(",)", paren + 1);
    what = "syntax error (" + what.substr(paren + 1, comma - paren - 1) + ")";
  }
  return path + position(err) + ": " + what +
         " (a value is a number, \"a string\", a duration like 5ms, true/false or [a, list];"
         " comments start with ;)";
}

}  // namespace

command_line check_command_line(const caf::config_option_set& options, int argc, char** argv) {
  command_line cl;
  auto fail = [&](std::string message) {
    cl.what = command_line::action::fail;
    cl.message = std::move(message);
    return cl;
  };
  std::string config_file = "caf-application.ini";  // CAF's default, read if present
  bool explicit_file = false;
  cl.args.push_back(argv[0]);
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h" || arg == "-?") {
      cl.what = command_line::action::help;
      return cl;
    }
    if (arg == "--version") {
      cl.what = command_line::action::version;
      return cl;
    }
    if (arg.size() < 3 || arg.substr(0, 2) != "--")
      return fail("unexpected argument \"" + std::string{arg} +
                  "\": options are --section.key=value (a config file is given as "
                  "--config-file=FILE); --help lists them");
    auto eq = arg.find('=');
    auto name = arg.substr(2, eq == std::string_view::npos ? std::string_view::npos : eq - 2);
    auto* opt = options.cli_long_name_lookup(name);
    if (!opt) return fail("unknown option --" + std::string{name} + " (--help lists the options)");
    if (eq == std::string_view::npos) {
      if (!opt->is_flag())
        return fail("--" + std::string{name} + " needs a value: --" + std::string{name} + "=" +
                    expected_form(str(opt->type_name())));
      cl.args.push_back(argv[i]);
      continue;
    }
    auto value = arg.substr(eq + 1);
    if (opt->is_flag()) {
      if (value == "true" || value == "1" || value == "yes" || value == "on")
        cl.flags.emplace_back(opt, true);
      else if (value == "false" || value == "0" || value == "no" || value == "off")
        cl.flags.emplace_back(opt, false);
      else
        return fail("bad value for " + std::string{name} + ": \"" + std::string{value} +
                    "\" (true or false)");
      continue;
    }
    // (This parse stores into the bound member; CAF's parse below stores again.)
    if (!opt->parse(value)) {
      if (str(opt->type_name()) == "timespan" && all_digits(value))
        return fail(std::string{name} + " needs a unit, e.g. " + std::string{value} + "ms");
      return fail("bad value for " + std::string{name} + ": \"" + std::string{value} +
                  "\" (expected " + expected_form(str(opt->type_name())) + ")");
    }
    if (name == "config-file") {
      config_file = std::string{value};
      explicit_file = true;
    }
    cl.args.push_back(argv[i]);
  }
  if (explicit_file && !std::ifstream{config_file})
    return fail("cannot read the config file " + config_file + ": " + std::strerror(errno));
  if (auto problem = check_ini_syntax(config_file); !problem.empty()) return fail(problem);
  return cl;
}

std::string options_help(const caf::config_option_set& options, std::size_t first_own) {
  struct line {
    std::string key, text;
  };
  std::vector<line> lines;
  std::size_t width = 0;
  std::size_t i = 0;
  for (auto& opt : options) {
    if (i++ < first_own) continue;
    std::string key = "--";
    if (opt.category() != "global") key += str(opt.category()) + ".";
    key += str(opt.long_name());
    key += "=";
    if (auto v = opt.get()) {
      if (auto* t = caf::get_if<caf::timespan>(&*v)) {
        key += duration_text(*t);
      } else if (auto* d = caf::get_if<double>(&*v)) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%g", *d);
        key += buf;
      } else {
        key += caf::to_string(*v);
      }
    }
    width = std::max(width, key.size());
    lines.push_back({std::move(key), str(opt.description())});
  }
  std::string out;
  for (auto& l : lines) {
    out += "  " + l.key + std::string(width - l.key.size() + 2, ' ') + l.text + "\n";
  }
  return out;
}

}  // namespace pulse
