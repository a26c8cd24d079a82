#pragma once
// CAF 0.17 reads INI files leniently: an unknown key is skipped and a value of
// the wrong type is dropped, leaving the default. This reads the file again
// against the declared options and names the first offender, so that both
// binaries can refuse to start on a config they would misread.

#include <string>

#include <caf/config_option_set.hpp>

namespace pulse {

// "" when `path` is empty, missing (CAF's default file is optional) or fine;
// otherwise a message naming the file and the key.
std::string check_config_file(const caf::config_option_set& options, const std::string& path);

}  // namespace pulse
