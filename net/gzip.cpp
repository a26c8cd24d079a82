#include "net/gzip.hpp"

#include <zlib.h>

#include <algorithm>

namespace pulse::net {

gunzip_result gunzip(std::string_view in, std::size_t max_out, std::string& out,
                     std::string& error) {
  out.clear();
  z_stream z{};
  // 16 + MAX_WBITS: gzip only (not raw deflate or zlib), as Content-Encoding says.
  if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK) {
    error = "cannot initialise zlib";
    return gunzip_result::corrupt;
  }
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  char buf[64 * 1024];
  auto result = gunzip_result::ok;
  while (true) {
    z.next_out = reinterpret_cast<Bytef*>(buf);
    z.avail_out = sizeof buf;
    int rc = inflate(&z, Z_NO_FLUSH);
    auto produced = sizeof buf - z.avail_out;
    if (out.size() + produced > max_out) {
      error = "the inflated body is over " + std::to_string(max_out) + " bytes (net.max-body-bytes)";
      result = gunzip_result::too_large;
      break;
    }
    out.append(buf, produced);
    if (rc == Z_STREAM_END) {
      if (z.avail_in == 0) break;
      // Another gzip member follows.
      if (inflateReset(&z) != Z_OK) {
        error = "cannot continue with the next gzip member";
        result = gunzip_result::corrupt;
        break;
      }
      continue;
    }
    if (rc == Z_OK && (z.avail_in > 0 || produced > 0)) continue;
    error = rc == Z_OK || rc == Z_BUF_ERROR ? "the gzip body is truncated"
                                            : std::string("the gzip body is corrupt: ") +
                                                (z.msg ? z.msg : "zlib error " + std::to_string(rc));
    result = gunzip_result::corrupt;
    break;
  }
  inflateEnd(&z);
  if (result != gunzip_result::ok) out.clear();
  return result;
}

}  // namespace pulse::net
