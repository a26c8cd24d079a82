#pragma once
// Request bodies sent with Content-Encoding: gzip (Telegraf's default) are
// inflated here, with a bound on the inflated size (a small zip bomb must not
// become gigabytes in memory). zlib stays in net/gzip.cpp.

#include <cstddef>
#include <string>
#include <string_view>

namespace pulse::net {

enum class gunzip_result { ok, too_large, corrupt };

// Inflates the gzip stream `in` (one or more members, as `cat a.gz b.gz`
// makes) into `out`, at most `max_out` bytes. `error` says why when not ok.
gunzip_result gunzip(std::string_view in, std::size_t max_out, std::string& out,
                     std::string& error);

}  // namespace pulse::net
