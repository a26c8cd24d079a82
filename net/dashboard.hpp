#pragma once
// The page served at GET /: devices, their latest values and a chart of one
// metric's aggregates, all read from the node's own HTTP API.

#include <string>

namespace pulse::net {

const std::string& dashboard_html();

}  // namespace pulse::net
