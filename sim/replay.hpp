#pragma once
// Replay files for pulse-sim's `replay` profile: an XLSX dump of OCPP
// MeterValues, a CSV table of readings, or NDJSON wire frames, turned into
// the WebSocket text frames each device sends, in timestamp order.
//
// load_replay() reads the whole file into memory on the calling thread and
// keeps no state; the result is plain data the simulator shares read-only
// between its device actors.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace pulse::sim {

// One WebSocket text frame to send and its timestamp (ms since epoch), used
// to order and pace the frames of a device.
struct replay_frame {
  std::int64_t ts = 0;
  std::string text;
};

// The frames of one device, sorted by ts; frames with equal ts keep file order.
struct replay_device {
  std::string device;
  std::vector<replay_frame> frames;
};

// Devices in order of their first appearance in the file.
struct replay_data {
  std::vector<replay_device> devices;
  std::size_t rows = 0;  // data rows / lines that became frames
};

// Loads an XLSX, CSV or NDJSON file. The format comes from the extension
// (.xlsx, .csv, .ndjson, .jsonl) unless `format` ("xlsx", "csv", "ndjson" or
// "jsonl") is given. On failure returns false with a message in `error` that
// names the problem (missing file, not a zip, no worksheet, missing columns,
// "row N: ..." / "line N: ...") but not the path, which the caller knows.
//
// Per format:
// - XLSX: columns `charge_point_id` and `payload` found by name in the first
//   row of the first worksheet; each row becomes the OCPP frame
//   {"charge_point_id":..,"payload":{..}} with ts = the first meterValue's
//   timestamp.
// - CSV: columns `device` (or `device_id`) and `ts` required, `seq` optional,
//   every other named column a numeric metric; each row becomes a reading.
// - NDJSON: each non-empty line is sent as it is; its device comes from
//   "device" or "charge_point_id", its ts from "ts", the first of "readings"
//   or the first meterValue.
// A frame whose timestamp is absent keeps its place in file order (it takes
// the ts of the frame before it); a timestamp that is present but unreadable
// is an error.
bool load_replay(const std::string& path, const std::string& format, replay_data& out,
                 std::string& error);

// Parses an RFC 3339 date-time ("2023-09-17T20:29:59.123Z", "...+02:00") to
// ms since the Unix epoch, independent of the local time zone. A space may
// stand for the `T`; fractions beyond milliseconds are truncated.
bool parse_rfc3339_ms(std::string_view text, std::int64_t& out);

}  // namespace pulse::sim
