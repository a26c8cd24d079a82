#pragma once
// The dashboard: the files of web/ (index.html, app.js, style.css), compiled
// into pulse-node by cmake/embed_web.cmake, so the node is one binary and the
// page needs no internet. The page itself reads only the node's HTTP API,
// /metrics and its WebSocket subscriptions.

#include <string_view>
#include <vector>

namespace pulse::net {

struct web_asset {
  std::string_view path;          // "/" for index.html, else "/<file name>"
  std::string_view content_type;
  std::string_view body;
};

const std::vector<web_asset>& web_assets();

// The asset served at `path`, or nullptr.
inline const web_asset* find_web_asset(std::string_view path) {
  for (auto& a : web_assets())
    if (a.path == path) return &a;
  return nullptr;
}

}  // namespace pulse::net
