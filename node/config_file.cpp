#include "node/config_file.hpp"

#include <fstream>

#include <caf/actor_system_config.hpp>
#include <caf/config_value.hpp>
#include <caf/settings.hpp>

namespace pulse {

std::string check_config_file(const caf::config_option_set& options, const std::string& path) {
  if (path.empty() || !std::ifstream{path}) return {};
  auto raw = caf::actor_system_config::parse_config_file(path.c_str());
  if (!raw) return "cannot read " + path + ": " + caf::actor_system_config::render(raw.error());
  for (auto& [section, val] : *raw) {
    auto* tbl = caf::get_if<caf::settings>(&val);
    if (!tbl) {
      // Keys of CAF's "global" category are stored at the top level.
      auto* opt = options.qualified_name_lookup("global", section);
      if (!opt) return path + ": unknown key " + section;
      if (auto err = opt->check(val))
        return path + ": bad value for " + section + ": " + caf::to_string(val) +
               " (a real number needs a decimal point, a string quotes)";
      continue;
    }
    for (auto& [key, v] : *tbl) {
      auto* opt = options.qualified_name_lookup(section, key);
      if (!opt) return path + ": unknown key " + section + "." + key;
      if (auto err = opt->check(v))
        return path + ": bad value for " + section + "." + key + ": " + caf::to_string(v);
    }
  }
  return {};
}

}  // namespace pulse
