#pragma once
// pulse-node's log lines on stderr: UTC timestamps with the zone (`Z`), as
// text (`2026-12-02T11:20:00.123Z info message`) or, with log.format=json,
// one JSON object per line: {"ts":"…Z","level":"info","msg":"…"}.

#include <string>

namespace pulse {

// Installs the default logger; `format` is "text" or "json" (validated before).
void setup_logging(const std::string& level, const std::string& format);

}  // namespace pulse
