#pragma once
// InfluxDB line protocol (what Telegraf's `influxdb` and `influxdb_v2`
// outputs send to POST /write and /api/v2/write), turned into the same
// wire::frame the JSON parser produces, so that the readings take the POST
// path to the shards and its durability promise.
//
//   measurement[,tag=value...] field=value[,field=value...] [timestamp]
//
// Mapping (docs/api.md "Line protocol"):
// - device id = the measurement, then the tag values in the order of their
//   keys (sorted bytewise), joined with ':' (`cpu,host=a,cpu=cpu0` ->
//   `cpu:cpu0:a`); every byte outside [A-Za-z0-9:._-] becomes '_'. At most
//   128 characters.
// - each field = one metric of the reading; bytes outside [A-Za-z0-9_.] in
//   its key become '_' (1..64 characters). Floats as they are, integers
//   (`12i`) and unsigned (`12u`) as doubles, booleans as 1 and 0. String
//   fields are skipped (Pulse stores numbers); a line with nothing but
//   string fields stores nothing.
// - the timestamp in units of `precision` (default ns), truncated to ms;
//   none -> the receive time. Readings get server-assigned seqs.
// All or nothing: the first bad line makes `out.errors` hold one error
// ("line N: ...") and `out.batches` empty.
//
// Concurrency: a plain function of its arguments; thread-safe.

#include <cstdint>
#include <optional>
#include <string_view>

#include "wire/codec.hpp"

namespace pulse::wire {

// `precision` of /write (n, u, ms, s, m, h) or /api/v2/write (ns, us, ms, s)
// as nanoseconds per unit; nullopt for anything else.
std::optional<std::int64_t> line_protocol_precision(std::string_view precision, bool v2);

// Parses `body` into `out` (cleared first). `ns_per_unit`: the timestamps'
// unit; `now_ms`: the receive time, for lines without a timestamp and the
// 7-day future limit. Never throws.
void parse_line_protocol(std::string_view body, std::int64_t ns_per_unit, std::int64_t now_ms,
                         frame& out);

}  // namespace pulse::wire
